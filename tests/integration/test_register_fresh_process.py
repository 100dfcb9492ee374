"""Registering in a fresh worker process, as the real scheduler runs each task.

MLflow's SQL registry store resolves a ``models:/<id>`` source through the process-global
tracking URI. `airflow dags test` runs every task in one process (the training task set that
URI before), which hid this; here the register step runs alone in its own process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

REGISTER = """
import sys, types
from airflow_mlops_provider.operators.registry import MlflowRegisterModelOperator
op = MlflowRegisterModelOperator(task_id="register", name="fresh-model", run_id=sys.argv[1])
print(op.execute({"ti": types.SimpleNamespace()})["version"])
"""


def test_register_in_its_own_process_uses_the_connection_store(mlops_home, tmp_path, monkeypatch):
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    # The training task's side, in this process. set_tracking_uri also exports MLFLOW_* variables:
    # monkeypatch puts them back afterwards, and no active experiment is left behind for later tests.
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(name, "")  # records the current state for teardown
        monkeypatch.delenv(name)
    hook = MlflowHook()
    hook.activate()
    experiment = hook.client.create_experiment("fresh")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.sklearn.log_model(LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1]), name="model",
                                 serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    # The register task's side, in a process of its own, as a worker runs it.
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    # Without the MLFLOW_* variables set_tracking_uri exported above: a worker does not have them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run([sys.executable, "-c", REGISTER, run.info.run_id], capture_output=True, text=True,
                          cwd=workdir, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "1"
    assert not (workdir / "mlflow.db").exists(), "MLflow fell back to ./mlflow.db"
