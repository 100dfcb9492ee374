"""The examples a team copies: a multiclass, a regression (LightGBM) and a count model, end to end.

Each goes through real `airflow dags test` runs of the DAGs the builders make: the first run
promotes, a deliberately weakened model (shuffled labels) is rejected naming the metric,
nightly scoring writes the task type's columns, feature and prediction drift are reported, and
(multiclass) the local deploy target — a real `mlflow models serve` process — promotes a good
model and rolls back one that fails verification. The count model's task type is not one the
provider ships: its module registers it, and no operator knows its name.
"""

from __future__ import annotations

import re
import sys
import types

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
import count_task_type  # noqa: E402,F401 - registers "count" here too, as the DAG file does where tasks run
from example_data import house_frame, species_frame, visits_frame  # noqa: E402

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
    from airflow_mlops_provider.core.local_serving import is_healthy
    from airflow_mlops_provider.hooks.mlflow_serving import MlflowServingHook

    model = "penguin-species"
    client = MlflowHook().client
    commit("species.parquet", species_frame(1500, seed=1), "species v1")
    try:
        # The first run deploys to the local target — a real MLflow scoring server — verifies it
        # and crowns the first champion through the same lane KServe and SageMaker use.
        first = run_dag("species_retrain", "2026-11-01", dags_folder=EXAMPLES, conf={"deploy_target": "local"})
        assert first.returncode == 0, first
        for task in ("local.deploy", "local.verify", "local.promote_traffic", "local.promote"):
            assert first.states[task] == "success", first.states
        assert first.states["local.rollback"] == "skipped" and first.states["promote"] == "skipped", first.states
        champion = client.get_model_version_by_alias(model, "champion")
        assert champion.tags["mlops.task_type"] == "multiclass"
        assert champion.tags["mlops.classes"] == '["adelie", "chinstrap", "gentoo"]'
        decision = ledger.read(home_settings().ledger_path)[0]
        assert {"accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc_ovr"} <= set(decision["challenger_metrics"])
        assert decision["challenger_metrics"]["accuracy"] > 0.9
        state = MlflowServingHook().state(model)
        assert state.live is not None and state.live.version == str(champion.version) and state.candidate is None
        assert is_healthy(state.live)

        # A deliberately weakened model is rejected, naming the metric; nothing is deployed.
        weak = run_dag("species_retrain", "2026-11-02", dags_folder=EXAMPLES,
                       conf={"train_params": {"C": 1.0, "shuffle_labels": True}, "deploy_target": "local"})
        assert weak.returncode == 0, weak
        assert weak.states["promote"] == "skipped" and weak.states["local.deploy"] == "skipped", weak.states
        rejected = ledger.read(home_settings().ledger_path)[-1]
        assert rejected["verdict"] == "rejected"
        assert any(r.startswith("roc_auc_ovr=") and "below the floor" in r for r in rejected["reasons"]), rejected
        assert str(client.get_model_version_by_alias(model, "champion").version) == str(champion.version)

        # Nightly scoring of a drifted day: predicted class + one probability column per class;
        # feature drift and prediction drift are both reported.
        day = "2026-11-03"
        incoming(day, species_frame(2000, seed=12, drifted=True).drop(columns=["species"]))
        scored = run_dag("species_batch_inference", day, dags_folder=EXAMPLES)
        assert scored.returncode == 0, scored
        table = pq.read_table(home_settings().outputs_dir / "scores" / f"date={day}.parquet")
        assert table.column_names == ["bird_id", "prediction", "proba_adelie", "proba_chinstrap", "proba_gentoo",
                                      "model_version", "model_run_id"]
        assert set(table.column("prediction").to_pylist()) <= {"adelie", "chinstrap", "gentoo"}
        assert table.num_rows == 2000
        (run,) = monitoring(model)
        assert any(k.startswith("prediction_drift.prediction.") for k in run.data.metrics), run.data.metrics
        assert run.data.tags["mlops.drifted"] == "True" and "mlops.prediction_drifted" in run.data.tags
        assert scored.states["signal_drift"] == "success"

        # A challenger that fails verification on the local target is rolled back: the champion's
        # server keeps serving, @champion does not move, the ledger says why.
        bad = run_dag("species_retrain", "2026-11-06", dags_folder=EXAMPLES,
                      conf={"deploy_target": "local",
                            "local": {**get_deploy_target("local").defaults, "max_latency_ms": 0.001}})
        assert bad.returncode != 0, bad
        assert bad.states["local.verify"] == "failed", bad.states
        assert bad.states["local.promote"] == "upstream_failed"
        assert bad.states["local.rollback"] == "success" and bad.states["record_rollback"] == "success"
        assert str(client.get_model_version_by_alias(model, "champion").version) == str(champion.version)
        rolled = ledger.read(home_settings().ledger_path)[-1]
        assert rolled["event"] == "rolled_back" and "local.verify" in rolled["failed_tasks"], rolled
        state = MlflowServingHook().state(model)
        assert state.live.version == str(champion.version) and state.candidate is None and is_healthy(state.live)
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


@pytest.mark.xdist_group("example_count")
def test_a_fourth_task_type_registered_by_a_dag_file_import_runs_end_to_end(mlops_home, run_dag):
    from airflow_mlops_provider.core.tasks import TaskTypeError
    from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator
    from airflow_mlops_provider.operators.registry import MlflowCompareChallengerOperator, version_dict

    model = "store-visits"
    commit("visits.parquet", visits_frame(3000, seed=1), "visits v1")
    # train -> evaluate -> gate (the type's own default policy) -> promote, in a real `airflow dags test`
    first = run_dag("visit_count_retrain", "2026-11-01", dags_folder=EXAMPLES)
    assert first.returncode == 0, first
    assert first.states["promote"] == "success", first.states
    client = MlflowHook().client
    champion = client.get_model_version_by_alias(model, "champion")
    assert champion.tags["mlops.task_type"] == "count" and "mlops.classes" not in champion.tags
    decision = ledger.read(home_settings().ledger_path)[0]
    assert decision["task_type"] == "count" and decision["verdict"] == "promote"
    assert set(decision["challenger_metrics"]) == {"poisson_deviance", "d2_poisson", "mae"}
    assert decision["challenger_metrics"]["d2_poisson"] > 0.4
    assert [c["metric"] for c in decision["checks"]] == ["d2_poisson", "poisson_deviance"], decision["checks"]

    # Nightly scoring writes the type's output column, and prediction drift compares it.
    incoming("2026-11-03", visits_frame(1500, seed=21, drifted=True).drop(columns=["visits"]))
    scored = run_dag("visit_count_batch_inference", "2026-11-03", dags_folder=EXAMPLES)
    assert scored.returncode == 0, scored
    table = pq.read_table(home_settings().outputs_dir / "scores" / "date=2026-11-03.parquet")
    assert table.column_names == ["store_day_id", "prediction", "model_version", "model_run_id"]
    assert table.num_rows == 1500 and min(table.column("prediction").to_pylist()) > 0
    (run,) = monitoring(model)
    assert any(k.startswith("prediction_drift.prediction.") for k in run.data.metrics), run.data.metrics

    # The gate judges with the type's metrics: a policy the champion cannot meet rejects it by name
    # (the real operator, in-process; re-deciding the champion judges it on floors only).
    decide = MlflowCompareChallengerOperator(
        task_id="decide", name=model, target="visits",
        challenger=version_dict(client.get_model_version(model, str(champion.version))),
        policy={"metrics": [{"name": "d2_poisson", "floor": 0.99}, {"name": "poisson_deviance", "floor": 0.01}]})
    ti = types.SimpleNamespace(dag_id="visit_count_retrain", run_id="manual", try_number=1)
    verdict = decide.execute({"ti": ti})
    assert verdict["verdict"] == "rejected" and verdict["task_type"] == "count", verdict
    assert [r.split("=")[0] for r in verdict["reasons"]] == ["d2_poisson", "poisson_deviance"], verdict["reasons"]

    # A version that lost its mlops.task_type tag is refused by name, never scored as "binary".
    client.delete_model_version_tag(model, str(champion.version), "mlops.task_type")
    op = MlflowBatchScoreOperator(task_id="score", model_name=model, input_path=str(incoming("2026-11-04",
                                  visits_frame(50, seed=4).drop(columns=["visits"]))),
                                  output_path=str(home_settings().outputs_dir / "untagged.parquet"),
                                  key_columns=["store_day_id"])
    with pytest.raises(TaskTypeError, match=rf"model '{model}' version {champion.version} has no "
                                            r"mlops.task_type tag"):
        op.execute({})
    assert not (home_settings().outputs_dir / "untagged.parquet").exists()
