"""Wait for a KServe InferenceService to serve the requested traffic split, without a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_mlops_provider.core.kserve import is_serving


class KServeInferenceServiceReadyTrigger(BaseTrigger):
    """Poll an InferenceService; yield exactly one event.

    - ``{"status": "ready", "name", "namespace", "url", "traffic", ...}`` when Ready=True on the
      latest created revision and the latest revision's traffic share is ``expected_canary_percent``
      (None: 100),
    - ``{"status": "failed", ..., "message"}`` when KServe reports a terminal failure
      (model failed to load, invalid spec),
    - ``{"status": "timeout", ...}`` at ``deadline`` (a UNIX timestamp; None: never),
    - ``{"status": "error", "message"}`` when the API cannot be read.

    Every event also carries ``expected_canary_percent`` and ``details`` (whatever the task
    handed over, JSON-safe) so the resumed task needs nothing but the event. Defer kwargs are not
    enough: ``airflow dags test`` replaces them with the event when it runs a trigger in line.
    """

    def __init__(self, name: str, namespace: str, kubernetes_conn_id: str = "kubernetes_default",
                 expected_canary_percent: int | None = None, poll_interval: float = 10.0,
                 deadline: float | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.name = name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.expected_canary_percent = expected_canary_percent
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.details = details

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"name": self.name, "namespace": self.namespace, "kubernetes_conn_id": self.kubernetes_conn_id,
                 "expected_canary_percent": self.expected_canary_percent, "poll_interval": self.poll_interval,
                 "deadline": self.deadline, "details": self.details})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_mlops_provider.hooks.kserve import KServeHook

        hook = KServeHook(kubernetes_conn_id=self.kubernetes_conn_id)
        where = {"name": self.name, "namespace": self.namespace, "details": self.details,
                 "expected_canary_percent": self.expected_canary_percent}
        last: dict[str, Any] = {}
        while True:
            try:
                last = await asyncio.to_thread(hook.status, self.name, self.namespace)
            except Exception as err:  # noqa: BLE001 - reported to the task, which raises it clearly
                yield TriggerEvent({"status": "error", **where, "message": str(err)})
                return
            if is_serving(last, self.expected_canary_percent):
                yield TriggerEvent({"status": "ready", **where, "url": last["url"], "traffic": last["traffic"],
                                    "latest_ready_revision": last["latest_ready_revision"],
                                    "storage_uri": last["storage_uri"]})
                return
            if last["failed"]:
                yield TriggerEvent({"status": "failed", **where, "message": last["failure_message"],
                                    "reason": last["failure_reason"], "traffic": last["traffic"],
                                    "latest_ready_revision": last["latest_ready_revision"]})
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", **where, "ready": last["ready"],
                                    "traffic": last["traffic"], "conditions": last["conditions"]})
                return
            await asyncio.sleep(self.poll_interval)
