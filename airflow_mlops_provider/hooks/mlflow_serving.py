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
