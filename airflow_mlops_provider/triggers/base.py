"""One trigger for every deploy target's wait: run the target's probe until it settles, yield one event.

The probe (:class:`~airflow_mlops_provider.deploy.base.DeployProbe`) is the target's one wait
rule — a status read and its classification — that the operator's synchronous loop runs too;
it arrives here as its classpath and JSON-safe kwargs and builds its hooks inside ``run()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

# What an event's "status" may be: the probe's two verdicts, and the trigger's own two.
EVENT_KINDS = ("done", "failed", "timeout", "error")


class DeployTargetWaitTrigger(BaseTrigger):
    """Poll a deployed resource through its probe; yield exactly one event.

    - ``{"status": "done" | "failed", ...payload}`` when the probe's ``classify`` says so,
    - ``{"status": "timeout"}`` at ``deadline`` (a UNIX timestamp; None: never),
    - ``{"status": "error", "message"}`` when the status cannot be read (errors the probe calls
      transient are retried at the next poll).

    Every event also carries ``probe`` (``{"classpath", "kwargs"}``), ``state`` (the last status
    read, None before the first) and ``details`` (whatever the task handed over, JSON-safe), so
    the resumed task needs nothing but the event: ``airflow dags test`` replaces the defer
    kwargs with the event when it runs a trigger in line.
    """

    def __init__(self, probe_classpath: str, probe_kwargs: dict[str, Any], poll_interval: float = 10.0,
                 deadline: float | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.probe_classpath = probe_classpath
        self.probe_kwargs = probe_kwargs
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.details = details

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"probe_classpath": self.probe_classpath, "probe_kwargs": self.probe_kwargs,
                 "poll_interval": self.poll_interval, "deadline": self.deadline, "details": self.details})

    def _event(self, kind: str, state: dict[str, Any] | None, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": kind, "probe": {"classpath": self.probe_classpath,
                                                       "kwargs": self.probe_kwargs},
                             "details": self.details, "state": state, **payload})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_mlops_provider.deploy.base import DeployProbe

        status: dict[str, Any] | None = None
        try:
            probe = DeployProbe.load(self.probe_classpath, self.probe_kwargs)
        except Exception as err:  # noqa: BLE001 - reported to the task, which raises it clearly
            yield self._event("error", None, message=str(err))
            return
        while True:
            try:
                status = await asyncio.to_thread(probe.read)
            except Exception as err:  # noqa: BLE001 - reported to the task, which raises it clearly
                if probe.is_transient(err):
                    await asyncio.sleep(self.poll_interval)
                    continue
                yield self._event("error", status, message=str(err))
                return
            outcome = probe.classify(status)
            if outcome is not None:
                kind, payload = outcome
                yield self._event(kind, status, **payload)
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield self._event("timeout", status)
                return
            await asyncio.sleep(self.poll_interval)
