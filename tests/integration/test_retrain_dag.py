"""mlops_retrain end to end through real `airflow dags test` runs on embedded defaults."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import mlflow
import pytest

from airflow_mlops_provider.core import ledger
from airflow_mlops_provider.core.demo_data import generate
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from airflow_mlops_provider.deploy.base import deploy_target_names
from airflow_mlops_provider.hooks.dvc import DvcHook, init_local_repo
from airflow_mlops_provider.hooks.mlflow import MlflowHook

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("retrain_dag")]

MODEL = "fraud-detector"


def commit_data(kind: str, seed: int) -> dict:
    home = home_settings()
    init_local_repo(home.dvc_repo, home.dvc_remote)
    generate(n_rows=5000, seed=seed, kind=kind).to_parquet(home.dvc_repo / "transactions.parquet", index=False)
    return DvcHook().commit_version("transactions.parquet", f"{kind} data seed {seed}").to_dict()


def test_first_run_crowns_a_champion_then_a_worse_model_is_rejected(mlops_home, run_dag):
    v1 = commit_data("normal", seed=1)
    first = run_dag("mlops_retrain", "2026-11-01")
    assert first.returncode == 0, first
    assert first.states["promote"] == "success", first.states
    # Every registered target has a lane (in this repo's dev environment the echo plug-in too).
    lanes = tuple(f"{name}." for name in deploy_target_names())
    deploy = {t for t in first.states if t.startswith(lanes)} | {"record_rollback"}
    builtin = {t for t in deploy if t.startswith(("local.", "kserve.", "sagemaker."))} | {"record_rollback"}
    assert len(builtin) == 18, builtin  # local 6, kserve 6, sagemaker 5 (no traffic step), record_rollback
    assert all(s == "success" for t, s in first.states.items() if t not in deploy), first.states
    assert all(first.states[t] == "skipped" for t in deploy), first.states  # deploy_target "none"

    client = MlflowHook().client
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags["mlops.data.commit"] == v1["commit"]
    assert champion.tags["mlops.data.md5"] == v1["md5"]
    assert champion.tags["mlops.validation.result_id"] not in ("", "None")
    assert champion.tags["mlops.decision"] == "promote"
    run = client.get_run(champion.run_id)
    assert run.data.tags["airflow.dag_id"] == "mlops_retrain"
    assert run.data.metrics["roc_auc"] > 0.75
    # The DAG's bare serving requirements are pinned to what trained the model; nothing inferred.
    # The run's LoggedModel lives in a local artifact store here: read it without a global MLflow URI.
    logged = client.get_logged_model(MlflowHook().logged_model_uri(champion.run_id).removeprefix("models:/"))
    requirements = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"{logged.artifact_location}/requirements.txt")).read_text().split()
    assert [r for r in requirements if not r.startswith("mlflow")] == [
        f"{p}=={version(p)}" for p in ("scikit-learn", "skops", "numpy", "scipy", "pandas")], requirements
    records = ledger.read(home_settings().ledger_path)
    assert [r["event"] for r in records] == ["decision", "promoted"]
    assert records[0]["verdict"] == "promote" and records[0]["champion_version"] is None
    first_card = _card(client, champion)
    assert first_card["evaluation"]["champion_version"] is None and "champion" not in first_card["evaluation"]["metrics"]
    assert first_card["identity"]["owner"] == "fraud-analytics team"

    # Same data, a deliberately crippled model: worse than the champion on the same holdout.
    second = run_dag("mlops_retrain", "2026-11-08",
                     conf={"train_params": {"max_iter": 1, "learning_rate": 0.01, "max_depth": 1}})
    assert second.returncode == 0, second
    assert second.states["decide"] == "success"
    assert second.states["promote"] == "skipped", second.states
    assert second.states["summarize"] == "success"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == str(champion.version)
    decision = ledger.read(home_settings().ledger_path)[-1]
    assert decision["event"] == "decision" and decision["verdict"] == "rejected"
    assert decision["champion_version"] == str(champion.version)
    assert any("worse than champion" in r for r in decision["reasons"]), decision["reasons"]
    rejected = client.get_model_version(MODEL, decision["challenger_version"])
    assert rejected.tags["mlops.decision"] == "rejected"

    # The rejected challenger's model card: both models on the same holdout rows, with intervals,
    # slices (declared in dags/fraud_model.py), plots, the decision and the history so far.
    card = _card(client, rejected)
    assert card["identity"]["version"] == str(rejected.version) and card["identity"]["task_type"] == "binary"
    assert card["identity"]["intended_use"] and card["identity"]["out_of_scope_uses"]
    assert card["training_data"]["data.md5"] == v1["md5"] and card["training_data"]["validation.success"] == "True"
    assert card["training_data"]["holdout_rows"] == 1000 and card["training_data"]["train_rows"] == "4000"
    evaluation = card["evaluation"]
    assert evaluation["champion_version"] == str(champion.version)
    for side in ("challenger", "champion"):
        auc = evaluation["metrics"][side]["roc_auc"]
        assert auc["low"] < auc["value"] < auc["high"], (side, auc)
    gain = evaluation["gains"]["roc_auc"]
    assert gain["high"] < 0 and not gain["significant"]  # the crippled model is worse beyond noise
    slices = {s["slice"]: s for s in card["slices"]}
    assert "merchant_category=gaming" in slices and "amount in [100, ∞)" in slices
    assert sum(slices[k]["rows"] for k in ("amount in [0, 20)", "amount in [20, 100)", "amount in [100, ∞)")) == 1000
    grocery = slices["merchant_category=grocery"]
    assert set(grocery["metrics"]) == {"challenger", "champion"}
    assert grocery["intervals"]["champion"]["roc_auc"]["low"] is not None
    assert set(card["plots"]) == {"roc", "precision_recall", "calibration", "confusion_matrix"}
    # Attributions of both versions on the same holdout sample (the gate's, with the explain extra).
    explanations = card["explanations"]
    assert explanations["version"] == str(rejected.version) and explanations["method"].startswith("shap.")
    assert explanations["features"] and explanations["shift"]["against_version"] == str(champion.version)
    assert card["decision"]["verdict"] == "rejected" and card["decision"]["reasons"] == decision["reasons"]
    assert [h["event"] for h in card["history"]] == ["decision", "promoted", "decision"]
    assert client.get_model_version(MODEL, champion.version).tags["mlops.card"].endswith("model_card.html")


def _card(client, version) -> dict:
    """The model card JSON of a version, through the tag that links it."""
    import json

    MlflowHook().activate()  # runs:/ URIs resolve through the process's tracking URI
    current = client.get_model_version(MODEL, version.version)
    html_uri = current.tags["mlops.card"]
    assert html_uri in current.description
    page = mlflow.artifacts.load_text(html_uri)
    assert "<img" in page and "data:image/png;base64," in page
    return json.loads(mlflow.artifacts.load_text(html_uri.replace("model_card.html", "model_card.json")))


def test_corrupt_data_fails_validation_and_nothing_is_trained(mlops_home, run_dag):
    commit_data("corrupt", seed=7)
    result = run_dag("mlops_retrain", "2026-11-02")
    assert result.returncode != 0
    assert result.states["validate_data"] == "failed", result.states
    assert result.states["train"] == "upstream_failed"
    assert result.states["register_challenger"] == "upstream_failed"
    # Nothing was deployed, so no lane rolls anything back (their one_failed rule sees upstream_failed).
    rollbacks = {t: s for t, s in result.states.items() if t.endswith(".rollback") or t == "record_rollback"}
    assert len(rollbacks) == len(deploy_target_names()) + 1 and set(rollbacks.values()) == {"skipped"}, rollbacks
    assert result.states["summarize"] == "upstream_failed", result.states  # a leaf: the run ends failed
    for expectation in ("expect_column_values_to_not_be_null", "expect_column_values_to_be_between",
                        "expect_column_values_to_be_unique"):
        assert expectation in result.output, expectation
    client = MlflowHook().client
    assert client.search_registered_models() == []
    assert ledger.read(home_settings().ledger_path) == []


def test_bad_params_are_refused_before_anything_runs(mlops_home, run_dag):
    commit_data("normal", seed=1)
    result = run_dag("mlops_retrain", "2026-11-03", conf={"policy": {"metrics": [{"name": "auc", "direction": "up"}]}})
    assert result.returncode != 0
    assert "direction" in result.output or "up" in result.output
    assert MlflowHook().client.search_registered_models() == []
