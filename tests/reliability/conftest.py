"""The fault corpus: shared parts, started once per session.

* ``secure_mlflow``: a real ``mlflow server --app-name basic-auth`` (login required, artifacts
  proxied) on loopback. Every case talks to it through an Airflow connection with a login, so
  every case also proves that the connection's credentials reach the call it makes.
* ``champion``: one binary model trained, registered and aliased ``champion`` on that server
  by the provider's real operators, in a corpus ``MLOPS_HOME``.

Operators run with ``execute(context)``; the context holds a task-instance stand-in that
records XCom pushes (the only thing these operators ask of it). Cases about Airflow itself
run ``airflow dags test`` for real.
"""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import pytest

from tests.conftest import running_mlflow_server

ADMIN, PASSWORD = "admin", "corpus-Passw0rd-7f3a9c1e"
MODEL = "corpus-fraud"
CONN_ID = "mlflow_default"


class TaskInstance(types.SimpleNamespace):
    """What the operators read from ``context['ti']``; XCom pushes are kept for the secret scan."""

    def __init__(self, task_id: str, run_id: str = "manual__2026-11-20T00:00:00+00:00") -> None:
        super().__init__(dag_id="corpus", run_id=run_id, task_id=task_id, try_number=1, map_index=-1, pushed={})

    def xcom_push(self, key: str, value) -> None:
        self.pushed[key] = value


def context(task_id: str = "task") -> dict:
    return {"ti": TaskInstance(task_id), "dag_run": None, "dag": None}


@pytest.fixture(scope="session")
def secure_mlflow(tmp_path_factory):
    """A real MLflow server that refuses anonymous requests (HTTP 401); yields its URL."""
    root = tmp_path_factory.mktemp("secure-mlflow")
    (root / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN}\nadmin_password = {PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(root / "auth.ini"), "MLFLOW_FLASK_SERVER_SECRET_KEY": "corpus-csrf-key"}
    with running_mlflow_server(root, "--app-name", "basic-auth", env=env) as url:
        yield types.SimpleNamespace(url=url, root=root, log=root / "server.log")


def conn_json(url: str, login: str | None = ADMIN, password: str | None = PASSWORD) -> str:
    fields = {"conn_type": "mlflow", "host": url}
    if login:
        fields |= {"login": login, "password": password}
    return json.dumps(fields)


@pytest.fixture(autouse=True)
def no_mlflow_globals_left():
    """A case's process-global MLflow state (URI, credentials) must not reach the next test."""
    yield
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    from airflow_mlops_provider.hooks import mlflow_auth

    mlflow_auth.set_authorization(None)
    os.environ.pop("MLFLOW_TRACKING_AUTH", None)
    tracking_utils._tracking_uri = None  # MLflow's own "not set" (the tests' own isolation, not the provider's)
    registry_utils._registry_uri = None


@pytest.fixture(scope="session")
def corpus_home(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus") / "mlops"


@pytest.fixture
def env(secure_mlflow, corpus_home, monkeypatch):
    """This test's process: the corpus MLOPS_HOME and the authenticated MLflow connection."""
    monkeypatch.setenv("MLOPS_HOME", str(corpus_home))
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", conn_json(secure_mlflow.url))
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from airflow_mlops_provider.core.settings import mlops_home

    return mlops_home().ensure()


def train_and_register(name: str, data: Path, *, alias: str | None = "champion", train=None,
                       task_id: str = "train") -> dict:
    """Train with the real training operator and register with the real registry operator."""
    from airflow_mlops_provider.operators.registry import MlflowRegisterModelOperator
    from airflow_mlops_provider.operators.training import MlflowTrainModelOperator
    from dags.fraud_model import train_fraud_model

    trained = MlflowTrainModelOperator(
        task_id=task_id, train_callable=train or train_fraud_model, data_path=str(data), target="is_fraud",
        experiment_name=f"{name}-training", id_columns=["transaction_id"],
        train_params={"max_iter": 30}, pip_requirements=["scikit-learn", "skops"],
    ).execute(context(task_id))
    registered = MlflowRegisterModelOperator(task_id="register", name=name, run_id=trained["run_id"],
                                             alias=alias).execute(context("register"))
    return {**trained, "version": str(registered["version"]), "name": name}


@pytest.fixture(scope="session")
def champion(secure_mlflow, corpus_home):
    """One champion for the whole corpus (trained on 3000 demo rows, ~10 s)."""
    from airflow_mlops_provider.core.demo_data import generate

    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_HOME", str(corpus_home))
    mp.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", conn_json(secure_mlflow.url))
    try:
        from airflow_mlops_provider.core.settings import mlops_home

        home = mlops_home().ensure()
        data = home.data_dir / "train.parquet"
        generate(3000, seed=1).to_parquet(data, index=False)
        trained = train_and_register(MODEL, data)
        trained["contract"] = input_contract(trained["version"])
    finally:
        mp.undo()  # before the yield: other modules' tests on this worker must not inherit it
    return trained


def input_contract(version: str) -> dict:
    """The champion's input contract, built as the batch pipeline's ``build_contract`` builds it."""
    import mlflow

    from airflow_mlops_provider.core.contract import contract_suite, signature_inputs
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    hook = MlflowHook()
    hook.activate()
    schema = mlflow.models.get_model_info(f"models:/{MODEL}/{version}").signature.inputs
    profile = hook.load_baseline(MODEL, version).profile
    return contract_suite("corpus_input", signature_inputs(schema), profile, ["transaction_id"])


def incoming(home, name: str, frame) -> Path:
    path = home.data_dir / "incoming" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: "nothing was lost or half-done" is an equality."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def previous(env):
    """Yesterday's published output, which no failure today may touch."""
    out = env.outputs_dir / "scores" / "date=2026-11-20.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"yesterday's complete partition")
    before = tree(env.outputs_dir)
    yield out
    assert tree(env.outputs_dir) == before, "a failed run changed or left files under outputs/"


@pytest.fixture
def suite(env, champion):
    return champion["contract"]
