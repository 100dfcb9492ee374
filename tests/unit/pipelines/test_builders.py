"""The builders: what a user's config turns into, checked without running Airflow."""

from __future__ import annotations

from datetime import datetime

import pytest

from airflow_mlops_provider.core.tasks import TaskTypeError
from airflow_mlops_provider.pipelines import (
    ModelConfig,
    batch_scoring_dag,
    retraining_dag,
    retraining_params,
    retraining_pipeline,
)
from airflow_mlops_provider.pipelines.retraining import training_data_asset
from airflow_mlops_provider.pipelines.targets import (
    DeployLane,
    DeployTarget,
    deploy_target_names,
    register_deploy_target,
    unregister_deploy_target,
)


def train(X, y, **params):  # never called here
    raise AssertionError


def config(**overrides) -> ModelConfig:
    return ModelConfig(**{"name": "house-prices", "task_type": "regression", "target": "price", "train": train,
                          "data_path": "data/houses.parquet", "id_columns": ["house_id"], **overrides})


def test_a_regression_config_gets_the_regression_policy_and_every_registered_lane():
    dag = retraining_dag(config(), dag_id="houses")
    assert dag.render_template_as_native_obj
    assert [m["name"] for m in dag.params["policy"]["metrics"]] == ["r2", "rmse"]
    # Every target found through the entry points: the built-in three, and the test package's echo.
    enum = dag.params.get_param("deploy_target").schema["enum"]
    assert enum == ["none", *deploy_target_names()] and {"local", "kserve", "sagemaker", "echo"} <= set(enum)
    ids = set(dag.task_dict)
    assert {"resolve_data_version", "validate_data", "train", "evaluate", "register_challenger", "decide",
            "route", "no_deploy", "promote", "record_rollback", "summarize"} <= ids
    for target in ("local", "kserve", "sagemaker"):
        assert {f"{target}.deploy", f"{target}.verify", f"{target}.approve", f"{target}.promote",
                f"{target}.rollback"} <= ids
        rollback = dag.task_dict[f"{target}.rollback"]
        assert rollback.trigger_rule == "one_failed"
        assert {f"{target}.deploy", f"{target}.verify", f"{target}.promote"} <= rollback.upstream_task_ids
    assert dag.task_dict["train"].model_task_type == "regression"
    # Assets derive from the model: its own drift events and its data file schedule it.
    assert training_data_asset(config()).uri == "mlops://datasets/houses"
    promote = dag.task_dict["local.promote"]
    assert [a.uri for a in promote.outlets] == ["mlops://models/house-prices/champion"]


def test_a_policy_metric_the_task_type_does_not_produce_fails_at_parse_time():
    with pytest.raises(TaskTypeError, match=r"names metric 'roc_auc', which a regression model does not produce"):
        config(policy={"metrics": [{"name": "roc_auc", "direction": "higher"}]})


@pytest.mark.parametrize(("overrides", "match"), [
    ({"task_type": "ranking"}, "'ranking' is not one of"),
    ({"deploy_target": "heroku"}, "unknown deploy target|not one of the built lanes"),
    ({"deploy_targets": ["local"], "deploy_config": {"kserve": {}}}, r"deploy_config names targets without a lane"),
    ({"name": "has space"}, "must match"),
])
def test_bad_config_names_the_field(overrides, match):
    with pytest.raises((ValueError, TaskTypeError), match=match):
        config(**overrides)


def test_own_dag_without_native_rendering_or_params_is_refused_with_what_to_add():
    from airflow.sdk import DAG

    model = config(deploy_targets=[])
    with DAG("plain", schedule=None, start_date=datetime(2026, 1, 1)), pytest.raises(
            ValueError, match="render_template_as_native_obj=True"):
        retraining_pipeline(model)
    with DAG("no_params", schedule=None, start_date=datetime(2026, 1, 1), render_template_as_native_obj=True), \
            pytest.raises(ValueError, match=r"pass params=retraining_params\(model\)"):
        retraining_pipeline(model)
    with DAG("own", schedule=None, start_date=datetime(2026, 1, 1), render_template_as_native_obj=True,
             params=retraining_params(model)) as dag:
        tasks = retraining_pipeline(model)
    assert tasks["lanes"] == {} and "local.deploy" not in dag.task_dict


def test_a_registered_target_gets_a_lane_without_any_dag_edit():
    from airflow.providers.standard.operators.empty import EmptyOperator

    def lane(*, config, model_name, model_version, challenger):
        return DeployLane(deploy=EmptyOperator(task_id="deploy"), verify=EmptyOperator(task_id="verify"),
                          rollback=EmptyOperator(task_id="rollback", trigger_rule="one_failed"))

    register_deploy_target(DeployTarget(name="edge", description="test target", defaults={"x": 1},
                                        schema={"x": {"type": "integer"}}, lane=lane))
    try:
        dag = retraining_dag(config(), dag_id="houses_edge")
        assert {"edge.deploy", "edge.verify", "edge.approve", "edge.promote", "edge.rollback"} <= set(dag.task_dict)
        assert dag.params["edge"] == {"x": 1}
    finally:
        unregister_deploy_target("edge")


def test_batch_dag_scores_with_the_models_id_columns_and_checks_prediction_drift():
    dag = batch_scoring_dag(config(), dag_id="houses_batch")
    assert dag.task_dict["score"].partial_kwargs["key_columns"] == ["house_id"]
    assert "predictions_path" in dag.task_dict["check_drift"].template_fields
    assert dag.params["drift_policy"]["prediction_drift"] is False


def test_serving_resources_are_named_after_the_model_unless_overridden():
    dag = retraining_dag(config(name="Penguin_Species.v2"), dag_id="penguins")
    assert dag.params["kserve"]["name"] == "penguin-species-v2"
    assert dag.params["sagemaker"]["endpoint_name"] == "penguin-species-v2"
    dag = retraining_dag(config(deploy_config={"kserve": {"name": "houses", "namespace": "ml"}}), dag_id="own")
    assert (dag.params["kserve"]["name"], dag.params["kserve"]["namespace"]) == ("houses", "ml")


def test_every_promotion_runs_in_the_one_slot_pool_and_nothing_else_does():
    from airflow_mlops_provider.pipelines import PROMOTION_POOL

    dag = retraining_dag(config(), dag_id="houses")
    pooled = sorted(t.task_id for t in dag.tasks if t.pool == PROMOTION_POOL)
    assert pooled == sorted(["promote", *(f"{name}.promote" for name in deploy_target_names())])
    unpooled = retraining_dag(config(promotion_pool=None), dag_id="houses_free")
    assert {t.pool for t in unpooled.tasks} == {"default_pool"}


def test_sensitive_attributes_are_grouped_by_and_kept_out_of_the_features():
    gate = {"metrics": [{"name": "r2"}, {"name": "rmse_group_difference", "max_regression": 1000}]}
    dag = retraining_dag(config(sensitive_features=["district"], policy=gate), dag_id="houses_fair")
    assert dag.task_dict["train"].exclude_features == ["district"]
    assert dag.task_dict["decide"].sensitive_features == ["district"]
    rules = {r["name"]: r for r in dag.params["policy"]["metrics"]}
    assert rules["rmse_group_difference"]["direction"] == "lower"
    kept = retraining_dag(config(sensitive_features=["district"], sensitive_as_features=True), dag_id="houses_k")
    assert kept.task_dict["train"].exclude_features == []
    with pytest.raises(ValueError, match="no sensitive_features are named"):
        config(policy=gate)


def test_performance_monitoring_waits_deferred_for_labels_and_signals_the_retrain_trigger():
    from airflow.sdk import DAG

    from airflow_mlops_provider.pipelines import (
        BATCH_MACROS,
        performance_monitoring_dag,
        performance_monitoring_params,
        performance_monitoring_pipeline,
    )

    dag = performance_monitoring_dag(config(), dag_id="houses_performance")
    assert list(dag.task_dict) == ["wait_for_labels", "check_performance", "signal_degradation"]
    assert dag.task_dict["wait_for_labels"].deferrable is True
    check = dag.task_dict["check_performance"]
    assert (check.model_task_type, check.target, check.key_columns) == ("regression", "price", ["house_id"])
    assert dag.params["decay_policy"] == {"metrics": [{"name": "rmse", "max_relative_degradation": 0.1}],
                                          "min_rows": 200, "max_label_delay_days": 7}
    assert dag.params["lookback_days"] == 14
    (outlet,) = dag.task_dict["signal_degradation"].outlets
    assert outlet.uri == "mlops://performance/house-prices"
    retrain = retraining_dag(config(), dag_id="houses")
    assert outlet in retrain.timetable.asset_condition.objects  # the third retrain trigger

    with DAG("own", schedule=None, start_date=datetime(2026, 1, 1), render_template_as_native_obj=True,
             user_defined_macros=BATCH_MACROS, params=performance_monitoring_params(config())):
        tasks = performance_monitoring_pipeline(config())
    assert set(tasks) == {"wait_for_labels", "check_performance", "signal_degradation"}
    with pytest.raises(ValueError, match=r"lacks the Params .*pass params=performance_monitoring_params"):
        with DAG("bare", schedule=None, start_date=datetime(2026, 1, 1), render_template_as_native_obj=True):
            performance_monitoring_pipeline(config())


@pytest.mark.parametrize(("policy", "match"), [
    ({"metrics": [{"name": "roc_auc", "max_degradation": 0.05}]}, r"decay_policy.metrics\[0\] names 'roc_auc'"),
    ({"metrics": [{"name": "rmse"}]}, "sets neither max_degradation"),
])
def test_a_bad_decay_policy_fails_at_parse_time(policy, match):
    with pytest.raises(ValueError, match=match):
        config(decay_policy=policy)
    with pytest.raises(ValueError, match="labels_lookback_days"):
        config(labels_lookback_days=-1)


def test_connection_ids_set_on_the_config_reach_every_task_that_takes_them():
    from airflow_mlops_provider.pipelines import performance_monitoring_dag
    from airflow_mlops_provider.pipelines.config import Connections

    conns = {"mlflow": "mlflow_prod", "storage": "lake", "aws": "aws_ml", "kubernetes": "k8s_ml"}
    model = config(connections=conns)
    assert model.connections == Connections(**conns)
    batch = batch_scoring_dag(model, dag_id="houses_batch_conns")
    for task_id in ("resolve_champion", "build_contract", "check_drift"):
        assert batch.task_dict[task_id].mlflow_conn_id == "mlflow_prod", task_id
    shard = batch.task_dict["score"].unmap({"row_groups": [0]})  # a mapped task gets them when unmapped
    assert (shard.mlflow_conn_id, shard.conn_id) == ("mlflow_prod", "lake")
    for task_id in ("wait_for_partition", "inspect_partition", "validate_input", "plan_shards", "commit",
                    "check_drift"):
        assert batch.task_dict[task_id].conn_id == "lake", task_id
    monitoring = performance_monitoring_dag(model, dag_id="houses_perf_conns")
    assert monitoring.task_dict["check_performance"].conn_id == "lake"
    assert monitoring.task_dict["check_performance"].mlflow_conn_id == "mlflow_prod"
    retrain = retraining_dag(model, dag_id="houses_conns")
    assert retrain.task_dict["train"].mlflow_conn_id == "mlflow_prod"
    assert retrain.task_dict["sagemaker.deploy"].aws_conn_id == "aws_ml"
    assert retrain.task_dict["kserve.deploy"].kubernetes_conn_id == "k8s_ml"
    # The DAG's own default_args win over the config's.
    own = batch_scoring_dag(model, dag_id="houses_own_args", default_args={"mlflow_conn_id": "mlflow_dev"})
    assert own.task_dict["build_contract"].mlflow_conn_id == "mlflow_dev"
    plain = batch_scoring_dag(config(), dag_id="houses_default_conns")
    assert plain.task_dict["build_contract"].mlflow_conn_id == "mlflow_default"
    assert plain.task_dict["inspect_partition"].conn_id is None


@pytest.mark.parametrize(("connections", "match"), [
    ({"mlflw": "x"}, r"connections: unknown keys \['mlflw'\]"),
    ({"mlflow": ""}, "Connections.mlflow must be a connection id"),
    ("mlflow_default", "connections must be a Connections or a dict"),
])
def test_bad_connections_name_the_field(connections, match):
    with pytest.raises((ValueError, TypeError), match=match):
        config(connections=connections)


def test_every_builder_param_declares_draft_07_and_still_validates():
    """Airflow checks each Param's schema against its dialect's meta-schema per task it serializes;
    the builders declare draft-07 (benchmarks/dag_serialize.py: about 4x cheaper than 2020-12)."""
    from airflow.sdk.exceptions import ParamValidationError

    from airflow_mlops_provider.pipelines import performance_monitoring_dag, rollback_dag
    from airflow_mlops_provider.pipelines.common import PARAM_SCHEMA_DIALECT

    dags = [retraining_dag(config(), dag_id="houses_dialect"), batch_scoring_dag(config(), dag_id="houses_b_dialect"),
            performance_monitoring_dag(config(), dag_id="houses_p_dialect"), rollback_dag(config(), dag_id="houses_r")]
    for dag in dags:
        assert dag.params, dag.dag_id
        for key in dag.params:
            param = dag.params.get_param(key)
            assert param.schema["$schema"] == PARAM_SCHEMA_DIALECT, (dag.dag_id, key)
            assert param.resolve() == param.value, (dag.dag_id, key)
    # The keywords and the schema still both count: a bad value is refused, naming why.
    retrain = dags[0].params
    with pytest.raises(ParamValidationError, match="'sideways' is not one of"):
        retrain.get_param("deploy_target").resolve("sideways")
    with pytest.raises(ParamValidationError, match="is not of type 'object'"):
        retrain.get_param("policy").resolve([1])
    with pytest.raises(ParamValidationError, match="is greater than the maximum of 64"):
        dags[1].params.get_param("shards").resolve(65)


def test_the_online_builder_wires_capture_drift_and_signal_and_checks_its_format():
    from airflow_mlops_provider.pipelines import online_monitoring_dag, online_scores_path

    dag = online_monitoring_dag(config(), dag_id="houses_online", capture_format="cloudevents",
                                capture_path="s3://capture/houses", deploy_target="kserve")
    assert set(dag.task_dict) == {"reconcile_aliases", "capture_partition", "check_drift", "signal_drift"}
    capture = dag.task_dict["capture_partition"]
    assert capture.deploy_target == "kserve" and capture.capture_path == "s3://capture/houses"
    assert "/outputs/online/house-prices/date=" in capture.output_path
    assert dag.task_dict["check_drift"].upstream_task_ids == {"capture_partition"}
    assert dag.task_dict["signal_drift"].outlets[0].uri == "mlops://drift/house-prices"
    assert online_scores_path(config()) == "{home}/outputs/online/house-prices/date={date}.parquet"
    with pytest.raises(ValueError, match=r"capture_format must be one of \['sagemaker', 'cloudevents'\], got 'kafka'"):
        online_monitoring_dag(config(), dag_id="houses_online_bad", capture_format="kafka", capture_path="/x")
