"""Wait for a KServe InferenceService to serve the requested traffic split, without a worker slot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_mlops_provider.core.kserve import is_serving
from airflow_mlops_provider.triggers.base import DeployTargetWaitTrigger


class KServeInferenceServiceReadyTrigger(DeployTargetWaitTrigger):
    """Poll an InferenceService; yield exactly one event.

    - ``{"status": "ready", "name", "namespace", "url", "traffic", ...}`` when Ready=True on the
      latest created revision and the latest revision's traffic share is ``expected_canary_percent``
      (None: 100),
    - ``{"status": "failed", ..., "message"}`` when KServe reports a terminal failure
      (model failed to load, invalid spec),
    - ``{"status": "timeout", ...}`` at ``deadline`` (a UNIX timestamp; None: never),
    - ``{"status": "error", "message"}`` when the API cannot be read.

    Every event also carries ``expected_canary_percent`` and ``details`` (see
    :class:`~airflow_mlops_provider.triggers.base.DeployTargetWaitTrigger`).
    """

    def __init__(self, name: str, namespace: str, kubernetes_conn_id: str = "kubernetes_default",
                 expected_canary_percent: int | None = None, poll_interval: float = 10.0,
                 deadline: float | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(poll_interval=poll_interval, deadline=deadline, details=details)
        self.name = name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.expected_canary_percent = expected_canary_percent

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace, "kubernetes_conn_id": self.kubernetes_conn_id,
                "expected_canary_percent": self.expected_canary_percent}

    def where(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace, "details": self.details,
                "expected_canary_percent": self.expected_canary_percent}

    def status_reader(self) -> Callable[[], dict[str, Any]]:
        from airflow_mlops_provider.hooks.kserve import KServeHook

        hook = KServeHook(kubernetes_conn_id=self.kubernetes_conn_id)
        return lambda: hook.status(self.name, self.namespace)

    def classify(self, status: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if is_serving(status, self.expected_canary_percent):
            return "ready", {"url": status["url"], "traffic": status["traffic"],
                             "latest_ready_revision": status["latest_ready_revision"],
                             "storage_uri": status["storage_uri"]}
        if status["failed"]:
            return "failed", {"message": status["failure_message"], "reason": status["failure_reason"],
                              "traffic": status["traffic"], "latest_ready_revision": status["latest_ready_revision"]}
        return None

    def timeout_payload(self, status: dict[str, Any]) -> dict[str, Any]:
        return {"ready": status.get("ready"), "traffic": status.get("traffic"),
                "conditions": status.get("conditions")}
