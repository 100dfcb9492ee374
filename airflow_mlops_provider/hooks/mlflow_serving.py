"""What serving a registered MLflow model needs from MLflow, beyond the registry client.

- :func:`smoke_frame`: the rows a deployment is verified with (the challenger run's holdout,
  restricted to the model signature's inputs).
- :class:`MlflowServingHook`: the local deploy target, ``mlflow models serve`` processes on
  loopback whose state lives under ``MLOPS_HOME/serving`` (see :mod:`core.local_serving`).
"""

from __future__ import annotations

from typing import Any

from airflow_mlops_provider.exceptions import ModelNotFoundError
from airflow_mlops_provider.hooks.mlflow import MlflowHook


def input_columns(mlflow: MlflowHook, name: str, version: str) -> list[str]:
    """The input column names of a registered version's signature; errors name the model."""
    import mlflow as mlflow_lib

    mlflow.activate()
    info = mlflow_lib.models.get_model_info(f"models:/{name}/{version}")
    if info.signature is None or info.signature.inputs is None:
        raise ModelNotFoundError(f"model {name!r} v{version} has no signature: cannot tell its input columns",
                                 model=name, version=version)
    return list(info.signature.inputs.input_names())


def smoke_frame(mlflow: MlflowHook, run_id: str, name: str, version: str, n: int) -> tuple[list[list[Any]], list[str]]:
    """(rows, columns): the first ``n`` holdout rows of ``run_id``, the signature's input columns only."""
    columns = input_columns(mlflow, name, version)
    holdout = mlflow.load_holdout(run_id)
    missing = [c for c in columns if c not in holdout.columns]
    if missing:
        raise ModelNotFoundError(f"the holdout of run {run_id!r} lacks the input columns {missing} of model "
                                 f"{name!r} v{version}", model=name, version=version, run_id=run_id)
    frame = holdout[columns].head(int(n))
    # Through JSON: numpy scalars and timestamps become what a scoring request carries.
    import json

    rows = json.loads(frame.to_json(orient="split", index=False, date_format="iso"))["data"]
    return rows, columns


_NOT_FOR_SERVERS = ("MLFLOW_TRACKING_", "MLFLOW_REGISTRY_", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__",
                    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class MlflowServingHook(MlflowHook):
    """:class:`MlflowHook` plus the local scoring servers of its registry's models.

    The task downloads the version's files (with the connection's credentials, in memory) to
    ``MLOPS_HOME/serving/models/<model>/v<version>`` and the server loads that local copy: the
    long-lived server process needs no MLflow credentials, so none are in its environment.
    """

    hook_name = "MLflow (local serving)"

    @property
    def serving_dir(self):
        from airflow_mlops_provider.core.settings import mlops_home

        return mlops_home().root / "serving"

    def serving_env(self) -> dict[str, str]:
        """The server process's environment: this one without secrets or Airflow settings."""
        import os

        # The server loads a local copy (see local_copy): it needs no tracking URI, no credentials,
        # and none of Airflow's connections, variables or config (metadata DB URL, keys).
        return {k: v for k, v in os.environ.items() if not k.startswith(_NOT_FOR_SERVERS)}

    def local_copy(self, model: str, version: str):
        """The version's files under ``MLOPS_HOME/serving/models``, downloaded once, published whole."""
        import shutil
        import tempfile
        from pathlib import Path

        import mlflow

        target = self.serving_dir / "models" / model / f"v{version}"
        if (target / "MLmodel").is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.activate()  # the connection's credentials reach the download
        staging = Path(tempfile.mkdtemp(prefix=f".v{version}.", dir=target.parent))
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model}/{version}",
                                                             dst_path=str(staging)))
            roots = sorted((p.parent for p in local.rglob("MLmodel")), key=lambda p: len(p.parts))
            if not roots:
                raise ModelNotFoundError(f"model {model!r} v{version} has no MLmodel file in its artifacts",
                                         model=model, version=version)
            try:
                roots[0].rename(target)
            except OSError:
                if not (target / "MLmodel").is_file():  # not a concurrent download that won
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def state_path(self, model: str):
        from airflow_mlops_provider.core.local_serving import state_path

        return state_path(self.serving_dir, model)

    def state(self, model: str):
        """What serves ``model`` now (a :class:`~airflow_mlops_provider.core.local_serving.ServingState`)."""
        from airflow_mlops_provider.core.local_serving import load_state

        return load_state(self.state_path(model), model)

    def locked_state(self, model: str):
        """Context manager: read-modify-write the serving state of ``model`` under a lock."""
        from airflow_mlops_provider.core.local_serving import locked_state

        return locked_state(self.state_path(model), model)

    def start(self, model: str, version: str, *, host: str = "127.0.0.1", port: int = 0,
              capture_dir: str | None = None):
        """Start a scoring server of ``models:/<model>/<version>`` (returns before it is healthy);
        ``capture_dir``: it captures its answered calls there (:mod:`~airflow_mlops_provider.core.capture_server`)."""
        from airflow_mlops_provider.core.local_serving import start_server

        server = start_server(model, version, host=host, port=port, env=self.serving_env(),
                              log_dir=self.serving_dir / "logs", model_uri=str(self.local_copy(model, version)),
                              capture_dir=capture_dir or None)
        self.log.info("Started the MLflow scoring server of %s v%s on %s (pid %s, log %s%s)", model, version,
                      server.url, server.pid, server.log_path,
                      f", capturing into {capture_dir}" if capture_dir else "")
        return server

    def stop(self, server) -> bool:
        from airflow_mlops_provider.core.local_serving import stop_server

        stopped = stop_server(server)
        self.log.info("%s the server of v%s on %s (pid %s)", "Stopped" if stopped else "Nothing to stop:",
                      server.version, server.url, server.pid)
        return stopped

    def stop_all(self, model: str) -> list[str]:
        """Stop every recorded server of ``model`` and clear its state; returns the stopped versions."""
        stopped = []
        with self.locked_state(model) as state:
            for server in state.servers():
                if self.stop(server):
                    stopped.append(server.version)
            state.live = state.candidate = None
        return stopped
