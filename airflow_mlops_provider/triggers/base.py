"""One polling loop for every deploy target's wait: read a status, classify it, yield one event.

A target's trigger supplies what differs: the JSON-safe kwargs naming its resource, one status
read (synchronous, run in a thread, its hook built inside ``run()``), and how a status maps to
an event. The loop, the deadline, the timeout and error events and the serialization live here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DeployTargetWaitTrigger(BaseTrigger):
    """Poll a deployed resource until it settles; yield exactly one event.

    - ``{"status": <done or failed status>, ...}`` when :meth:`classify` says so,
    - ``{"status": "timeout", ...}`` at ``deadline`` (a UNIX timestamp; None: never),
    - ``{"status": "error", "message"}`` when the status cannot be read (transient errors, per
      :meth:`is_transient`, are retried at the next poll).

    Every event also carries :meth:`where` (the resource and ``details``, whatever the task
    handed over, JSON-safe) so the resumed task needs nothing but the event: ``airflow dags
    test`` replaces the defer kwargs with the event when it runs a trigger in line.
    """

    def __init__(self, *, poll_interval: float, deadline: float | None, details: dict[str, Any] | None) -> None:
        super().__init__()
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.details = details

    # -- what a target supplies -----------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """The JSON-safe constructor kwargs that name the resource (connection ids included)."""
        raise NotImplementedError

    def status_reader(self) -> Callable[[], dict[str, Any]]:
        """A synchronous status read; called inside ``run()``, so hooks are built there."""
        raise NotImplementedError

    def classify(self, status: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """(event status, payload) when the wait is over, else None."""
        raise NotImplementedError

    def timeout_payload(self, status: dict[str, Any]) -> dict[str, Any]:
        return {}

    def is_transient(self, err: Exception) -> bool:
        return False

    def where(self) -> dict[str, Any]:
        """What every event carries besides its status."""
        return {**self.identity(), "details": self.details}

    # -- the loop -------------------------------------------------------------------------------
    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {**self.identity(), "poll_interval": self.poll_interval, "deadline": self.deadline,
                 "details": self.details})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        read = self.status_reader()
        where = self.where()
        while True:
            try:
                status = await asyncio.to_thread(read)
            except Exception as err:  # noqa: BLE001 - reported to the task, which raises it clearly
                if self.is_transient(err):
                    await asyncio.sleep(self.poll_interval)
                    continue
                yield TriggerEvent({"status": "error", **where, "message": str(err)})
                return
            outcome = self.classify(status)
            if outcome is not None:
                kind, payload = outcome
                yield TriggerEvent({"status": kind, **where, **payload})
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", **where, **self.timeout_payload(status)})
                return
            await asyncio.sleep(self.poll_interval)
