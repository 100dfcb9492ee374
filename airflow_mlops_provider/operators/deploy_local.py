"""The local deploy target: registered versions served by MLflow's own scoring server on loopback.

``LocalDeployModelVersionOperator`` starts ``mlflow models serve -m models:/<name>/<version>``
beside the live server (a candidate) and waits for ``/ping``; ``LocalVerifyDeploymentOperator``
posts holdout rows to ``/invocations``; ``LocalPromoteModelVersionOperator`` makes the candidate
the live server and stops the old one; ``LocalRollbackModelVersionOperator`` stops the candidate
and makes sure the version ``@champion`` names is the live server; ``LocalUndeployModelOperator``
stops every server of a model. What serves where is in ``MLOPS_HOME/serving/<name>.json``.
The target itself (config, lane, wait rule, what serves where) is :mod:`airflow_mlops_provider.deploy.local`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from airflow_mlops_provider.deploy.local import LocalServerProbe
from airflow_mlops_provider.exceptions import LocalServingError
from airflow_mlops_provider.hooks.mlflow_serving import MlflowServingHook
from airflow_mlops_provider.operators.deploy import (
    DeploymentVerifyOperator,
    DeployTargetOperator,
    DeployTargetRollbackOperator,
    truthy,
)
from airflow_mlops_provider.version_compat import BaseOperator

__all__ = ["LocalDeployModelVersionOperator", "LocalPromoteModelVersionOperator", "LocalRollbackModelVersionOperator",
           "LocalUndeployModelOperator", "LocalVerifyDeploymentOperator"]


def _server_result(model_name: str, server: Any, **extra: Any) -> dict[str, Any]:
    """The XCom of every local operator: which version serves where."""
    return {"model_name": model_name, "model_version": server.version if server else None,
            "url": server.url if server else None, "host": server.host if server else None,
            "port": server.port if server else None, "pid": server.pid if server else None, **extra}


class _LocalServingOperator(DeployTargetOperator):
    """Shared: the serving hook, and the wait for one server's ``/ping``."""

    template_fields: Sequence[str] = (*DeployTargetOperator.template_fields, "model_name", "host")
    ui_color = "#9fc5e8"
    failure = LocalServingError

    def __init__(self, *, model_name: str, host: str = "127.0.0.1", timeout: float = 120,
                 poll_interval: float = 0.5, **kwargs: Any) -> None:
        super().__init__(timeout=timeout, poll_interval=poll_interval, **kwargs)
        self.model_name = model_name
        self.host = host

    @cached_property
    def hook(self) -> MlflowServingHook:
        return MlflowServingHook(mlflow_conn_id=self.mlflow_conn_id)

    @property
    def resource(self) -> str:
        return f"the local MLflow server of {self.model_name!r}"

    def error_context(self) -> dict[str, Any]:
        return {"model": self.model_name}

    def lineage_endpoint(self, result: dict[str, Any]) -> Any:
        """The scoring server: ``http://<host>:<port>`` + ``/invocations``."""
        from airflow_mlops_provider.core.lineage import http_endpoint_dataset

        if not result.get("url"):
            return None
        return http_endpoint_dataset(str(result["url"]), role=result.get("role"))

    def _check_model_name(self) -> None:
        if not self.model_name or not isinstance(self.model_name, str):
            raise LocalServingError(f"{self.task_id}: model_name is required", field="model_name", reason="invalid")
        self.hook.state_path(self.model_name)  # raises naming the field when unusable as a file name

    # -- the wait (DeployTargetOperator): the server answers /ping (deploy.local.LocalServerProbe) ---
    def wait_for(self, context: Any, server: Any, details: dict[str, Any]) -> dict[str, Any]:
        return self.wait(context, LocalServerProbe(model_name=str(self.model_name), server=server.to_dict()),
                         details)

    def result(self, context: Any, details: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        from airflow_mlops_provider.core.local_serving import Server

        return {**_server_result(self.model_name, Server.from_dict(status["server"])), **details, "ready": True}


class LocalDeployModelVersionOperator(_LocalServingOperator):
    """Serve a registered version beside the live one (the candidate) and wait until it answers.

    :param model_name: the registered model.
    :param model_version: a version number or ``@alias``.
    :param port: the candidate's port; 0: a free one.
    :param host: the interface it binds (loopback by default).
    :param timeout: seconds to wait for ``/ping`` (the model loads first).
    :param capture: capture the served traffic (every answered request and response, as
        CloudEvents, :mod:`~airflow_mlops_provider.core.capture_server`) into ``capture_path``
        (empty: ``MLOPS_HOME/capture/<model>``), for ``online_monitoring_dag``. Remembered for the
        model: a rollback's restarted champion captures too.

    Idempotent: when the version already serves (live or candidate) and answers, that server is
    reused. A candidate of another version is stopped first.

    Returns ``{"model_name", "model_version", "url", "host", "port", "pid", "role":
    "candidate"|"live", "action": "started"|"unchanged", "live_version", "ready"}``.
    """

    template_fields: Sequence[str] = (*_LocalServingOperator.template_fields, "model_version", "port", "capture",
                                      "capture_path")

    def __init__(self, *, model_name: str, model_version: str | int, port: int = 0, capture: bool | str = False,
                 capture_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(model_name=model_name, **kwargs)
        self.model_version = model_version
        self.port = port
        self.capture = capture
        self.capture_path = capture_path

    def _capture_dir(self) -> str:
        if not truthy(self.capture):
            return ""
        if self.capture_path not in (None, "", "None"):
            from airflow_mlops_provider.paths import require_allowed

            return str(require_allowed(str(self.capture_path), "capture_path"))
        from airflow_mlops_provider.core.settings import mlops_home

        return str(mlops_home().root / "capture" / self.model_name)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops_provider.core.local_serving import is_running

        self._check_model_name()
        try:
            port = int(self.port or 0)
        except (TypeError, ValueError):
            port = -1
        if not 0 <= port <= 65535:
            raise LocalServingError(f"{self.task_id}: port {self.port!r} is not 0 (any free port) or a TCP port",
                                    field="port", reason="invalid")
        version = self.resolve_model_version(self.model_name, self.model_version)
        capture_dir = self._capture_dir()
        with self.hook.locked_state(self.model_name) as state:
            live, candidate = state.live, state.candidate
            state.capture_dir = capture_dir
            if live is not None and live.version == version and is_running(live):
                self.log.info("v%s already is the live server of %s on %s", version, self.model_name, live.url)
                server, role, action = live, "live", "unchanged"
            elif (candidate is not None and candidate.version == version and is_running(candidate)
                  and candidate.capture_dir == capture_dir):  # another capture setting: started again
                self.log.info("v%s already runs as the candidate on %s (rerun): reusing it", version, candidate.url)
                server, role, action = candidate, "candidate", "unchanged"
            else:
                if candidate is not None:
                    self.log.info("Replacing the candidate v%s of %s", candidate.version, self.model_name)
                    self.hook.stop(candidate)
                state.candidate = server = self.hook.start(self.model_name, version, host=str(self.host), port=port,
                                                           capture_dir=capture_dir)
                role, action = "candidate", "started"
        details = {"role": role, "action": action, "live_version": live.version if live else None}
        return self.wait_for(context, server, details)


class LocalVerifyDeploymentOperator(DeploymentVerifyOperator):
    """Smoke test and bake of a local scoring server: POST ``/invocations`` (``dataframe_split``).

    Returns ``{"url", "model_version", "requests", "errors", "error_rate", "p95_latency_ms", "rows"}``.
    """

    failure = LocalServingError
    ui_color = "#9fc5e8"

    def result_head(self, deployment: dict[str, Any]) -> dict[str, Any]:
        return {"url": deployment.get("url"), "model_version": deployment.get("model_version")}

    def request_sender(self, deployment: dict[str, Any], rows: list[list[Any]],
                       columns: list[str]) -> Callable[[], float]:
        from airflow_mlops_provider.core.local_serving import invoke

        url = deployment.get("url")
        if not url:
            raise LocalServingError(f"{self.task_id}: the deployment {deployment!r} has no URL", field="deployment",
                                    reason="invalid")
        timeout = float(self.request_timeout)
        return lambda: invoke(str(url), rows, columns, timeout=timeout)["latency_ms"]

    def prediction_sender(self, deployment: dict[str, Any], rows: list[list[Any]], columns: list[str], *,
                          role: str, champion: str) -> Callable[[], list[Any]]:
        """The candidate's server, and the live server when it serves the champion (else its registered model)."""
        from airflow_mlops_provider.core.local_serving import invoke, is_running

        url = deployment.get("url")
        if role == "champion":
            live = MlflowServingHook(mlflow_conn_id=self.mlflow_conn_id).state(str(self.challenger["name"])).live
            if live is None or live.version != str(champion) or not is_running(live):
                self.log.info("No local server runs @champion v%s: its answers come from the registered model", champion)
                return super().prediction_sender(deployment, rows, columns, role=role, champion=champion)
            url = live.url
        timeout = float(self.request_timeout)
        return lambda: invoke(str(url), rows, columns, timeout=timeout, max_predictions=None)["predictions"]


class LocalPromoteModelVersionOperator(_LocalServingOperator):
    """The candidate becomes the live server; the old live server is stopped.

    A no-op (``action: "unchanged"``) when there is no candidate and a live server runs (a rerun,
    or the deploy found the version already live). Returns ``{"model_name", "model_version",
    "url", "host", "port", "pid", "action": "promoted"|"unchanged", "stopped_version"}``.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops_provider.core.local_serving import is_healthy, is_running

        self._check_model_name()
        stopped = None
        with self.hook.locked_state(self.model_name) as state:
            candidate, live = state.candidate, state.live
            if candidate is None:
                if live is not None and is_running(live):
                    return self._finished(_server_result(self.model_name, live, action="unchanged", stopped_version=None))
                raise LocalServingError(f"{self.resource}: no candidate server to promote (deploy first)",
                                        **self.error_context(), reason="invalid")
            if not is_healthy(candidate):
                raise LocalServingError(
                    f"{self.resource}: the candidate v{candidate.version} on {candidate.url} does not answer "
                    "/ping; not promoting it", **self.error_context(), version=candidate.version,
                    port=candidate.port, reason="failed")
            state.live, state.candidate = candidate, None
            if live is not None and live.pid != candidate.pid:
                self.hook.stop(live)
                stopped = live.version
        self.log.info("v%s of %s is live on %s", candidate.version, self.model_name, candidate.url)
        return self._finished(_server_result(self.model_name, candidate, action="promoted", stopped_version=stopped))


class LocalRollbackModelVersionOperator(_LocalServingOperator, DeployTargetRollbackOperator):
    """Stop the candidate and make sure the version ``alias`` (``@champion``) names is the live server.

    Starts the champion's server when none runs it (and stops a live server of another version).
    Skips when there is no champion and no candidate to stop. Returns ``{"model_name",
    "model_version", "url", "host", "port", "pid", "action": "unchanged"|"rolled_back"|"started"|
    "stopped_candidate", "stopped_versions", "ready"}``.
    """

    template_fields: Sequence[str] = tuple(dict.fromkeys((
        *_LocalServingOperator.template_fields, *DeployTargetRollbackOperator.template_fields)))

    def __init__(self, *, model_name: str, alias: str = "champion", **kwargs: Any) -> None:
        super().__init__(model_name=model_name, alias=alias, **kwargs)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops_provider.core.local_serving import is_running

        self._check_model_name()
        champion = self.champion_version()
        stopped: list[str] = []
        with self.hook.locked_state(self.model_name) as state:
            candidate, live = state.candidate, state.live
            if candidate is not None and candidate.version == champion and is_running(candidate):
                # The champion already moved to the candidate: it is what must serve.
                state.live, state.candidate = candidate, None
                live, candidate = candidate, (live if live is not None and live.pid != candidate.pid else None)
            if candidate is not None:
                if self.hook.stop(candidate):
                    stopped.append(candidate.version)
                state.candidate = None
            if champion is None:
                if not stopped:
                    raise AirflowSkipException(f"{self.model_name!r} has no @{self.alias} and no candidate "
                                               "server: nothing to roll back to")
                return self._finished(_server_result(self.model_name, live, action="stopped_candidate",
                                                    stopped_versions=stopped))
            if live is not None and live.version == champion and is_running(live):
                server, action = live, ("rolled_back" if stopped else "unchanged")
            else:
                if live is not None and self.hook.stop(live):
                    stopped.append(live.version)
                state.live = server = self.hook.start(self.model_name, champion, host=str(self.host),
                                                      capture_dir=state.capture_dir)
                action = "started"
        self.log.info("@%s of %s is v%s: live on %s (%s; stopped %s)", self.alias, self.model_name, champion,
                      server.url, action, stopped or "nothing")
        return self.wait_for(context, server, {"action": action, "stopped_versions": stopped})


class LocalUndeployModelOperator(BaseOperator):
    """Stop every local scoring server of ``model_name``. Returns ``{"model_name", "stopped_versions"}``."""

    template_fields: Sequence[str] = ("model_name", "mlflow_conn_id")
    ui_color = "#9fc5e8"

    def __init__(self, *, model_name: str, mlflow_conn_id: str = MlflowServingHook.default_conn_name,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        stopped = MlflowServingHook(mlflow_conn_id=self.mlflow_conn_id).stop_all(str(self.model_name))
        return {"model_name": self.model_name, "stopped_versions": stopped}
