"""Two promotions racing end with exactly one champion and every decision in the ledger."""

from __future__ import annotations

import multiprocessing
import types

import pytest

from airflow_mlops_provider.core import ledger
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from airflow_mlops_provider.hooks.mlflow import MlflowHook

pytestmark = pytest.mark.integration

MODEL = "race-model"


def _context(run_id: str) -> dict:
    # The operator reads only these attributes of the task instance.
    return {"ti": types.SimpleNamespace(dag_id="race", run_id=run_id, task_id="promote", try_number=1)}


def _promote(version: str, barrier, results) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    from airflow_mlops_provider.operators.registry import MlflowPromoteModelOperator

    decision = {"verdict": "promote", "challenger_version": version, "champion_version": "1",
                "reasons": ["better"]}
    ledger.append(home_settings().ledger_path, {"event": "decision", "challenger_version": version,
                                                "verdict": "promote", "champion_version": "1"})
    op = MlflowPromoteModelOperator(task_id=f"promote_{version}", name=MODEL, decision=decision)
    barrier.wait()
    try:
        results[version] = op.execute(_context(f"run-{version}"))["champion"]
    except AirflowSkipException as err:
        results[version] = f"skipped: {err}"


def test_racing_promotions(mlops_home, tmp_path):
    client = MlflowHook().client
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, source=(tmp_path / "m").as_uri())
    client.set_registered_model_alias(MODEL, "champion", "1")

    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        results, barrier = manager.dict(), ctx.Barrier(2)
        procs = [ctx.Process(target=_promote, args=(v, barrier, results)) for v in ("2", "3")]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        results = dict(results)

    champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
    assert champion in ("2", "3")
    loser = "3" if champion == "2" else "2"
    assert results[champion] == champion
    assert results[loser].startswith(f"skipped: champion of {MODEL} is now v{champion}")
    assert str(client.get_model_version_by_alias(MODEL, "previous").version) == "1"
    events = [(r["event"], r.get("challenger_version")) for r in ledger.read(home_settings().ledger_path)]
    assert sorted(e for e in events if e[0] == "decision") == [("decision", "2"), ("decision", "3")]
    assert ("promoted", champion) in events
    assert ("promotion_superseded", loser) in events


def test_superseded_promotion_fails_when_asked_so_a_deployment_rolls_back(mlops_home, tmp_path):
    from airflow.sdk.exceptions import AirflowSkipException

    from airflow_mlops_provider.exceptions import PromotionSuperseded
    from airflow_mlops_provider.operators.registry import MlflowPromoteModelOperator

    client = MlflowHook().client
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, source=(tmp_path / "m").as_uri())
    client.set_registered_model_alias(MODEL, "champion", "2")  # moved after the decision against v1
    decision = {"verdict": "promote", "challenger_version": "3", "champion_version": "1", "reasons": ["better"]}

    skip = MlflowPromoteModelOperator(task_id="promote", name=MODEL, decision=decision)
    with pytest.raises(AirflowSkipException, match="champion of race-model is now v2, not v1"):
        skip.execute(_context("run-skip"))
    fail = MlflowPromoteModelOperator(task_id="promote", name=MODEL, decision=decision, on_superseded="fail")
    with pytest.raises(PromotionSuperseded, match="not promoting v3 on a stale comparison") as err:
        fail.execute(_context("run-fail"))
    assert err.value.context == {"model": MODEL, "challenger_version": "3", "expected_champion": "1",
                                 "actual_champion": "2"}
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    superseded = [r for r in ledger.read(home_settings().ledger_path) if r["event"] == "promotion_superseded"]
    assert [r["run_id"] for r in superseded] == ["run-skip", "run-fail"]
    with pytest.raises(ValueError, match="on_superseded must be 'skip' or 'fail'"):
        MlflowPromoteModelOperator(task_id="p", name=MODEL, decision=decision, on_superseded="ignore").execute(
            _context("run-bad"))
