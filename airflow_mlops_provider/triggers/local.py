"""Wait for a local MLflow scoring server to answer its health check, without a worker slot.

The triggerer must run on the machine that runs the server (the local target is one machine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_mlops_provider.triggers.base import DeployTargetWaitTrigger


class LocalServerReadyTrigger(DeployTargetWaitTrigger):
    """Poll a server's process and ``/ping``; yield exactly one event.

    - ``{"status": "ready", "server", "alive", "healthy"}`` when it answers 200,
    - ``{"status": "failed", "server", "message"}`` when its process is gone,
    - ``{"status": "timeout", ...}`` at ``deadline``; ``{"status": "error", "message"}``.

    :param server: the server's record (``core.local_serving.Server.to_dict()``).
    """

    def __init__(self, server: dict[str, Any], poll_interval: float = 0.5, deadline: float | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(poll_interval=poll_interval, deadline=deadline, details=details)
        self.server = server

    def identity(self) -> dict[str, Any]:
        return {"server": self.server}

    def status_reader(self) -> Callable[[], dict[str, Any]]:
        from airflow_mlops_provider.core.local_serving import Server, server_status

        server = Server.from_dict(self.server)
        return lambda: server_status(server)

    def classify(self, status: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if status["healthy"]:
            return "ready", status
        if not status["alive"]:
            return "failed", {**status, "message": "the server process exited"}
        return None

    def timeout_payload(self, status: dict[str, Any]) -> dict[str, Any]:
        return status
