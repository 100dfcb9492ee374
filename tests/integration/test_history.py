"""History you can query: a scripted sequence of real promotions, a real rollback run and an alias moved
with ``MlflowClient``; the function, the Models view's route and the CLI agree at every step.

Real parts: ``airflow dags test`` runs the promote operator (three promotions in one run), the shipped
``mlops_rollback`` DAG (compare-and-set, ledger) and ``mlops_alias_audit`` (reconcile); MLflow is
the embedded sqlite store under ``MLOPS_HOME``; the CLI is the installed ``airflow-mlops`` script.
The route is the view's own app called in-process with its login guard satisfied (the login and the
403 are covered by ``test_history_ui.py`` against a real api-server).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

MODEL = "fraud-detector"  # the shipped DAGs' model (dags/fraud_model.py)

SCRIPTED_DAG = f"""
import sys
from datetime import datetime

sys.path.insert(0, {str(REPO_ROOT / "dags")!r})
from fraud_model import FRAUD  # noqa: E402

from airflow.sdk import DAG, chain  # noqa: E402

from airflow_mlops_provider.operators.registry import MlflowPromoteModelOperator  # noqa: E402
from airflow_mlops_provider.pipelines import alias_audit_dag, rollback_dag  # noqa: E402

with DAG("scripted_promotions", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    chain(*[MlflowPromoteModelOperator(
        task_id=f"promote_v{{v}}", name=FRAUD.name,
        decision={{"verdict": "promote", "challenger_version": str(v), "champion_version": prev}})
        for v, prev in ((1, None), (2, "1"), (3, "2"))])

rollback = rollback_dag(FRAUD, dag_id="mlops_rollback")
audit = alias_audit_dag(FRAUD, dag_id="mlops_alias_audit")
"""


@pytest.fixture
def dags_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "scripted.py").write_text(SCRIPTED_DAG)
    return folder


def _register_versions(n: int) -> None:
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    client = MlflowHook().client
    client.create_registered_model(MODEL)
    for _ in range(n):
        client.create_model_version(MODEL, tempfile.mkdtemp(prefix="model-"))


def _route(model: str, **query: str) -> dict:
    from fastapi.testclient import TestClient

    from airflow_mlops_provider.ui.models_view import create_app

    app = create_app()
    for dependency in app.router.dependencies:  # the login guard: the real one is in test_history_ui.py
        app.dependency_overrides[dependency.dependency] = lambda: None
    answer = TestClient(app).get("/api/history", params={"model": model, **query})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _cli(mlops_home: Path, *calls: list[str]) -> list[dict]:
    """``airflow-mlops history --json`` once per argument list, the processes side by side (each pays
    Airflow's and MLflow's imports)."""
    env = {**_env(), "MLOPS_HOME": str(mlops_home)}
    procs = [subprocess.Popen([str(BIN / "airflow-mlops"), "history", "--model", MODEL, "--json", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for args in calls]
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        answers.append(json.loads(out))
    return answers


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _function(mlops_home: Path, **kwargs) -> dict:
    from airflow_mlops_provider import history
    from airflow_mlops_provider.core.settings import mlops_home as home_settings
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    answer = history.history(MlflowHook().client, home_settings().ledger_path, MODEL, **kwargs)
    return json.loads(json.dumps(answer, default=str))


def test_function_route_and_cli_agree_on_what_was_live_at_every_step(mlops_home, run_dag, dags_folder):
    from airflow_mlops_provider.core import ledger
    from airflow_mlops_provider.core.settings import mlops_home as home_settings
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    _register_versions(3)
    promoted = run_dag("scripted_promotions", dags_folder=dags_folder)
    assert promoted.returncode == 0, promoted
    rolled = run_dag("mlops_rollback", dags_folder=dags_folder,
                     conf={"deploy_target": "none", "reason": "scripted rollback"})
    assert rolled.returncode == 0, rolled
    assert rolled.states["rollback_champion"] == "success" and rolled.states["no_serving"] == "success"
    client = MlflowHook().client
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"  # the last good one
    assert str(client.get_model_version_by_alias(MODEL, "previous").version) == "3"

    # Out of band: straight through MLflow's client, bypassing the ledger and the compare-and-set.
    client.set_registered_model_alias(MODEL, "champion", "1")
    unreconciled = _function(mlops_home)
    assert unreconciled["live"]["version"] == "2" and "not reconciled" in unreconciled["live"]["warning"]
    audit = run_dag("mlops_alias_audit", "2026-12-01", dags_folder=dags_folder)
    assert audit.returncode == 0, audit

    records = ledger.read(home_settings().ledger_path)
    assert [r["event"] for r in records] == ["promoted", "promoted", "promoted", "champion_rolled_back",
                                             "external_change"]
    rollback, external = records[3], records[4]
    assert (rollback["from_version"], rollback["to_version"], rollback["reason"]) == ("3", "2", "scripted rollback")
    assert rollback["dag_id"] == "mlops_rollback" and rollback["deploy_targets"] == []
    assert (external["alias"], external["from_version"], external["to_version"]) == ("champion", "2", "1")
    assert external["dag_id"] == "mlops_alias_audit" and external["mlflow_reports"]["changed_by"] is None

    # A time between every two moves, and before the first: the expected champion at each.
    times = [datetime.fromisoformat(r["recorded_at"]) for r in records]
    probes = [(times[0] - timedelta(seconds=1), None)]
    for at, nxt, version in zip(times, [*times[1:], None], ["1", "2", "3", "2", "1"], strict=True):
        probes.append((at + (nxt - at) / 2 if nxt else at + timedelta(seconds=1), version))
    by_cli = _cli(mlops_home, *(["--at", at.isoformat()] for at, _ in probes))
    for (at, version), cli_answer in zip(probes, by_cli, strict=True):
        iso = at.isoformat()
        by_function = _function(mlops_home, at=iso)
        by_route = _route(MODEL, at=iso)
        assert by_function["live"]["version"] == version, (iso, by_function)
        assert by_function == by_route == cli_answer, iso
    last = _function(mlops_home, at=probes[-1][0].isoformat())["live"]
    assert last["why"]["event"] == "external_change" and "warning" not in last
    step4 = _function(mlops_home, at=probes[4][0].isoformat())["live"]
    assert step4["why"]["event"] == "champion_rolled_back" and step4["why"]["reason"] == "scripted rollback"

    # The page shows the external change; compare puts two versions side by side.
    from fastapi.testclient import TestClient

    from airflow_mlops_provider.ui.models_view import create_app

    app = create_app()
    for dependency in app.router.dependencies:
        app.dependency_overrides[dependency.dependency] = lambda: None
    from airflow.api_fastapi.core_api.security import get_user

    app.dependency_overrides[get_user] = lambda: None
    page = TestClient(app).get("/models", params={"model": MODEL})
    assert page.status_code == 200, page.text
    assert "Moved outside the pipeline" in page.text and "data-event='external_change'" in page.text
    compared = TestClient(app).get("/api/compare", params={"model": MODEL, "a": "2", "b": "3"}).json()
    assert compared["versions"] == ["2", "3"]
    assert [i["from"] for i in compared["champion_intervals"]["3"]] == [records[2]["recorded_at"]]
