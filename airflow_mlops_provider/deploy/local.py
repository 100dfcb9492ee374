"""The ``local`` deploy target: MLflow's scoring server on this machine (``mlflow models serve``).

The wait: the server's process runs and answers ``/ping`` (:class:`LocalServerProbe`; the
triggerer must run on the machine that runs the server). What serves where: the model's state
file ``MLOPS_HOME/serving/<model>.json``. The operators are in
:mod:`airflow_mlops_provider.operators.deploy_local`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_mlops_provider.deploy.base import (
    DONE,
    FAILED,
    VERIFY_DEFAULTS,
    VERIFY_SCHEMA,
    DeployLane,
    DeployProbe,
    DeployTarget,
    serving_row,
)
from airflow_mlops_provider.exceptions import LocalServingError


@dataclass
class LocalServerProbe(DeployProbe):
    """Done when the server answers ``/ping``; failed when its process is gone.

    :param model_name: the registered model it serves.
    :param server: the server's record (``core.local_serving.Server.to_dict()``).
    Status: ``{"server", "alive", "healthy"}``.
    """

    model_name: str
    server: dict[str, Any]
    error = LocalServingError

    def _server(self) -> Any:
        from airflow_mlops_provider.core.local_serving import Server

        return Server.from_dict(self.server)

    def read(self) -> dict[str, Any]:
        from airflow_mlops_provider.core.local_serving import server_status

        return {"server": self.server, **server_status(self._server())}

    def classify(self, status: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if status.get("healthy"):
            return DONE, {}
        if not status.get("alive", True):
            return FAILED, {"message": "the server process exited"}
        return None

    @property
    def resource(self) -> str:
        return f"the local MLflow server of {self.model_name!r}"

    def context(self) -> dict[str, Any]:
        return {"model": self.model_name}

    def failure(self, status: dict[str, Any], payload: dict[str, Any], details: dict[str, Any]) -> Exception:
        from airflow_mlops_provider.core.local_serving import log_tail

        server = self._server()
        return LocalServingError(
            f"{self.resource}: the server of v{server.version} exited before it answered /ping; its log ends "
            f"with:\n{log_tail(server)}", **self.context(), reason="failed", version=server.version,
            log_path=server.log_path)

    def timeout_error(self, status: dict[str, Any], timeout: float, details: dict[str, Any]) -> Exception:
        server = self._server()
        return LocalServingError(
            f"{self.resource}: v{server.version} on {server.url} did not answer /ping within {float(timeout):g}s "
            f"(process alive: {status.get('alive')})", **self.context(), version=server.version, port=server.port,
            reason="timeout", log_path=server.log_path)


def serving(model_name: str) -> list[dict[str, Any]]:
    """The live server (all traffic) and the candidate beside it (none until promoted)."""
    from airflow_mlops_provider.core.local_serving import is_running, load_state, state_path
    from airflow_mlops_provider.core.settings import mlops_home

    state = load_state(state_path(mlops_home().root / "serving", model_name), model_name)
    rows = []
    for role, server in (("live", state.live), ("candidate", state.candidate)):
        if server is not None:
            running = is_running(server)
            rows.append(serving_row("local", resource=f"pid {server.pid}", role=role, version=server.version,
                                    url=server.url, traffic_percent=(100 if role == "live" else 0) if running else 0,
                                    running=running))
    return rows


def lane(*, config: str, model_name: Any, model_version: Any, challenger: Any) -> DeployLane:
    """Candidate beside the live server → verify → candidate goes live; rollback to ``@champion``."""
    from airflow_mlops_provider.operators.deploy import config_field, optional_config_field
    from airflow_mlops_provider.operators.deploy_local import (
        LocalDeployModelVersionOperator,
        LocalPromoteModelVersionOperator,
        LocalRollbackModelVersionOperator,
        LocalVerifyDeploymentOperator,
    )

    def cfg(key: str) -> str:
        return config_field(config, key)

    server = {"model_name": model_name, "timeout": cfg("ready_timeout_s"), "poll_interval": cfg("poll_interval_s")}
    deploy = LocalDeployModelVersionOperator(task_id="deploy", model_version=model_version, port=cfg("port"),
                                             capture=optional_config_field(config, "capture"),
                                             capture_path=optional_config_field(config, "capture_path"), **server)
    verify = LocalVerifyDeploymentOperator.from_config(config, deployment=deploy.output, challenger=challenger)
    promote_traffic = LocalPromoteModelVersionOperator(task_id="promote_traffic", **server)
    rollback = LocalRollbackModelVersionOperator(task_id="rollback", alias="champion", **server)
    return DeployLane(deploy=deploy, verify=verify, rollback=rollback, promote_traffic=promote_traffic)


TARGET = DeployTarget(
    name="local",
    description="MLflow's scoring server on this machine (mlflow models serve on loopback): no cloud needed",
    defaults={"ready_timeout_s": 120, "poll_interval_s": 0.5, "port": 0, "capture": False, "capture_path": "",
              **VERIFY_DEFAULTS},
    schema={
        "ready_timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "poll_interval_s": {"type": "number", "exclusiveMinimum": 0},
        "port": {"type": "integer", "minimum": 0, "maximum": 65535, "description": "0: any free port"},
        "capture": {"type": "boolean", "description": "Capture the served requests and responses (CloudEvents, "
                                                      "what online_monitoring_dag reads)"},
        "capture_path": {"type": "string", "description": "Where; empty: MLOPS_HOME/capture/<model>"},
        **VERIFY_SCHEMA,
    },
    lane=lane,
    serving=serving,
    error=LocalServingError,
)
