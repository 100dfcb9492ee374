"""The examples a team copies: a multiclass and a regression (LightGBM) model, end to end.

Each goes through real `airflow dags test` runs of the DAGs the builders make: the first run
promotes, a deliberately weakened model (shuffled labels) is rejected naming the metric,
nightly scoring writes the task type's columns, feature and prediction drift are reported, and
(multiclass) the local deploy target — a real `mlflow models serve` process — promotes a good
model and rolls back one that fails verification.
"""

from __future__ import annotations

import re
import sys

import pyarrow.parquet as pq
import pytest

from airflow_mlops_provider.core import ledger
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from airflow_mlops_provider.hooks.dvc import DvcHook, init_local_repo
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.pipelines.targets import get_deploy_target
from tests.conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))
from example_data import house_frame, species_frame  # noqa: E402

pytestmark = [pytest.mark.integration]


def commit(name: str, frame, message: str) -> None:
    home = home_settings()
    init_local_repo(home.dvc_repo, home.dvc_remote)
    frame.to_parquet(home.dvc_repo / name, index=False)
    DvcHook().commit_version(name, message)


def incoming(day: str, frame) -> str:
    path = home_settings().data_dir / "incoming" / f"{day}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False, row_group_size=500)
    return str(path)


def monitoring(model: str) -> list:
    client = MlflowHook().client
    experiment = client.get_experiment_by_name(f"{model}-monitoring")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.mark.xdist_group("example_multiclass")
def test_multiclass_example_end_to_end_with_the_local_deploy_target(mlops_home, run_dag):
    from airflow_mlops_provider.hooks.mlflow_serving import MlflowServingHook

    model = "penguin-species"
    commit("species.parquet", species_frame(1500, seed=1), "species v1")
    first = run_dag("species_retrain", "2026-11-01", dags_folder=EXAMPLES)
    assert first.returncode == 0, first
    assert first.states["promote"] == "success", first.states
    client = MlflowHook().client
    champion = client.get_model_version_by_alias(model, "champion")
    assert champion.tags["mlops.task_type"] == "multiclass"
    assert champion.tags["mlops.classes"] == '["adelie", "chinstrap", "gentoo"]'
    decision = ledger.read(home_settings().ledger_path)[0]
    assert {"accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc_ovr"} <= set(decision["challenger_metrics"])
    assert decision["challenger_metrics"]["accuracy"] > 0.9

    weak = run_dag("species_retrain", "2026-11-02", dags_folder=EXAMPLES,
                   conf={"train_params": {"C": 1.0, "shuffle_labels": True}})
    assert weak.returncode == 0, weak
    assert weak.states["promote"] == "skipped", weak.states
    rejected = ledger.read(home_settings().ledger_path)[-1]
    assert rejected["verdict"] == "rejected"
    assert any(r.startswith("roc_auc_ovr=") and "below the floor" in r for r in rejected["reasons"]), rejected
    assert str(client.get_model_version_by_alias(model, "champion").version) == str(champion.version)

    # Nightly scoring: predicted class + one probability column per class; drift on features and outputs.
    for day, frame in (("2026-11-03", species_frame(2000, seed=11)),
                       ("2026-11-04", species_frame(2000, seed=12, drifted=True))):
        incoming(day, frame.drop(columns=["species"]))
        scored = run_dag("species_batch_inference", day, dags_folder=EXAMPLES)
        assert scored.returncode == 0, scored
        table = pq.read_table(home_settings().outputs_dir / "scores" / f"date={day}.parquet")
        assert table.column_names[:5] == ["bird_id", "prediction", "proba_adelie", "proba_chinstrap", "proba_gentoo"]
        assert set(table.column("prediction").to_pylist()) <= {"adelie", "chinstrap", "gentoo"}
        assert table.num_rows == 2000
    normal_run, drifted_run = monitoring(model)
    for run in (normal_run, drifted_run):
        assert any(k.startswith("prediction_drift.prediction.") for k in run.data.metrics), run.data.metrics
    assert normal_run.data.tags["mlops.drifted"] == "False"
    assert drifted_run.data.tags["mlops.drifted"] == "True"
    assert scored.states["signal_drift"] == "success"

    # The local target: a real MLflow scoring server serves the champion; a good model is
    # deployed beside it, verified, and promoted; one that fails verification is rolled back.
    try:
        commit("species.parquet", species_frame(1500, seed=2), "species v2")
        good = run_dag("species_retrain", "2026-11-05", dags_folder=EXAMPLES, conf={"deploy_target": "local"})
        assert good.returncode == 0, good
        assert good.states["local.promote"] == "success" and good.states["local.rollback"] == "skipped", good.states
        promoted = client.get_model_version_by_alias(model, "champion")
        assert int(promoted.version) > int(champion.version)

        commit("species.parquet", species_frame(1500, seed=3), "species v3")
        bad = run_dag("species_retrain", "2026-11-06", dags_folder=EXAMPLES,
                      conf={"deploy_target": "local",
                            "local": {**get_deploy_target("local").defaults, "max_latency_ms": 0.001}})
        assert bad.returncode != 0, bad
        assert bad.states["local.verify"] == "failed", bad.states
        assert bad.states["local.promote"] == "upstream_failed"
        assert bad.states["local.rollback"] == "success" and bad.states["record_rollback"] == "success"
        assert str(client.get_model_version_by_alias(model, "champion").version) == str(promoted.version)
        rolled = ledger.read(home_settings().ledger_path)[-1]
        assert rolled["event"] == "rolled_back" and "local.verify" in rolled["failed_tasks"], rolled
    finally:
        MlflowServingHook().stop_all(model)


@pytest.mark.xdist_group("example_regression")
def test_regression_example_with_lightgbm_native_api(mlops_home, run_dag):
    model = "house-prices"
    commit("houses.parquet", house_frame(3000, seed=1), "houses v1")
    first = run_dag("house_price_retrain", "2026-11-01", dags_folder=EXAMPLES)
    assert first.returncode == 0, first
    assert first.states["promote"] == "success", first.states
    client = MlflowHook().client
    champion = client.get_model_version_by_alias(model, "champion")
    assert champion.tags["mlops.task_type"] == "regression"
    assert champion.tags["mlops.flavor"] == "lightgbm"
    decision = ledger.read(home_settings().ledger_path)[0]
    assert {"rmse", "mae", "r2", "mape"} <= set(decision["challenger_metrics"])
    assert decision["challenger_metrics"]["r2"] > 0.8

    weak = run_dag("house_price_retrain", "2026-11-02", dags_folder=EXAMPLES,
                   conf={"train_params": {"shuffle_labels": True}})
    assert weak.returncode == 0, weak
    assert weak.states["promote"] == "skipped", weak.states
    reasons = ledger.read(home_settings().ledger_path)[-1]["reasons"]
    assert any(re.match(r"r2=.* is below the floor 0", r) for r in reasons), reasons
    assert any(r.startswith("rmse: challenger") for r in reasons), reasons

    incoming("2026-11-03", house_frame(1000, seed=21, drifted=True).drop(columns=["price"]))
    scored = run_dag("house_price_batch_inference", "2026-11-03", dags_folder=EXAMPLES)
    assert scored.returncode == 0, scored
    table = pq.read_table(home_settings().outputs_dir / "scores" / "date=2026-11-03.parquet")
    assert table.column_names == ["house_id", "prediction", "model_version", "model_run_id"]
    assert set(table.column("model_version").to_pylist()) == {str(champion.version)}
    (run,) = monitoring(model)
    assert run.data.tags["mlops.drifted"] == "True" and run.data.tags["mlops.prediction_drifted"] == "True"


def test_docs_show_the_examples_verbatim():
    page = (REPO_ROOT / "docs" / "pipelines.md").read_text()
    blocks = re.findall(r"```python file=(\S+)\n(.*?)```", page, flags=re.S)
    assert blocks, "docs/pipelines.md shows no example file"
    for path, code in blocks:
        assert code == (REPO_ROOT / path).read_text(), f"docs/pipelines.md is out of date with {path}"
        assert len(code.splitlines()) <= 40, f"{path} is longer than a user's DAG should be"
