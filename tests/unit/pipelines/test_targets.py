"""The built-in deploy targets' own specifics (what every registered target must do is the
conformance suite, tests/unit/deploy/test_conformance.py).

``lane()`` runs inside a DAG and a TaskGroup as the builders call it; nothing runs in Airflow.
The record-rollback step shared by every lane is tested on a real sqlite MLflow store.
"""

from __future__ import annotations

import json

import pytest

from airflow_mlops_provider.deploy.base import VERIFY_DEFAULTS
from airflow_mlops_provider.pipelines.targets import get_deploy_target
from tests.deploy_lanes import lane_of as build

# What dags/mlops_retrain.py offered before the targets moved into their modules, for the fraud model
# (the builders name the serving resource after the model).
KSERVE = {"name": "fraud-detector", "namespace": "default", "canary_traffic_percent": 10, "ready_timeout_s": 900,
          "poll_interval_s": 10, "bake_requests": 5, "max_error_rate": 0.0, "max_latency_ms": 2000, "smoke_rows": 5,
          "logger_url": ""}  # online capture (KServe's inference logger): off
SAGEMAKER = {
    "endpoint_name": "fraud-detector", "image_uri": "", "execution_role_arn": "", "s3_bucket": "",
    "instance_type": "ml.m5.large", "initial_instance_count": 1,
    "data_capture_uri": "", "data_capture_percent": 100,  # online capture (Data Capture): off
    "deployment_config": {"traffic_shift": {"type": "canary", "percent": 10, "wait_seconds": 600},
                          "max_execution_timeout": 3600, "auto_rollback_alarms": []},
    "ready_timeout_s": 3600, "poll_interval_s": 30, "bake_requests": 5, "max_error_rate": 0.0,
    "max_latency_ms": 2000, "smoke_rows": 5,
}


def test_kserve_and_sagemaker_keep_the_dag_config_and_sagemaker_specifics():
    # The DAG's keys keep their values; every lane also carries the shared checks' limits (load test,
    # quality canary), whose defaults are defined once where those checks live.
    assert get_deploy_target("kserve").defaults_for("fraud-detector") == {**VERIFY_DEFAULTS, **KSERVE}
    assert get_deploy_target("sagemaker").defaults_for("fraud-detector") == {**VERIFY_DEFAULTS, **SAGEMAKER}
    assert VERIFY_DEFAULTS["load_requests"] > 0 and VERIFY_DEFAULTS["canary_min_agreement"] > 0
    assert get_deploy_target("local").defaults["port"] == 0
    _, _, lane = build("sagemaker")
    assert lane.deploy.retries == 0  # a retry after SageMaker's own rollback would push the canary again
    assert "xcom_pull(task_ids='sagemaker.deploy')" in lane.rollback.endpoint_config_name
    assert lane.deploy.endpoint_name == lane.rollback.endpoint_name == "{{ params.sagemaker.endpoint_name }}"
    _, _, lane = build("kserve")
    assert lane.deploy.name == lane.promote_traffic.name == lane.rollback.name == "{{ params.kserve.name }}"
    assert lane.deploy.timeout == "{{ params.kserve.ready_timeout_s }}"
    assert lane.deploy.logger_url == "{{ params.kserve.get('logger_url') }}"  # an older run's config may lack it
    _, _, lane = build("sagemaker")
    assert lane.deploy.timeout == lane.rollback.timeout == "{{ params.sagemaker.ready_timeout_s }}"


class _TaskInstance:
    """What DeploymentRecordRollbackOperator reads from the running task instance."""

    dag_id, run_id = "retrain", "manual__1"

    def __init__(self, states: dict[str, str], xcoms: dict[tuple[str, str], object]) -> None:
        self.states, self.xcoms = states, xcoms

    def get_task_states(self, dag_id, run_ids, task_ids):
        assert dag_id == self.dag_id and run_ids == [self.run_id]
        return {self.run_id: {t: self.states.get(t) for t in task_ids}}

    def xcom_pull(self, task_ids, key="return_value"):
        return self.xcoms.get((task_ids, key))


@pytest.mark.integration  # a real MLflow store (~7 s, mostly importing mlflow)
def test_record_rollback_writes_the_ledger_and_tags_the_version(mlops_home):
    from airflow.sdk.exceptions import AirflowSkipException

    from airflow_mlops_provider.core import ledger
    from airflow_mlops_provider.core.settings import mlops_home as home
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.operators.deploy import DeploymentRecordRollbackOperator

    client = MlflowHook().client
    client.create_registered_model("fraud")
    client.create_model_version("fraud", source=(mlops_home / "nowhere").as_uri())
    decision = {"model": "fraud", "challenger_version": "1", "champion_version": None}
    lane = ["local.deploy", "local.verify", "local.promote_traffic", "local.promote"]

    def record(states, xcoms=None):
        op = DeploymentRecordRollbackOperator(
            task_id="record_rollback", decision=decision, target="local", lane_task_ids=lane,
            rollback_task_ids=["kserve.rollback", "local.rollback"], approval_task_id="local.approve")
        return op.execute({"ti": _TaskInstance(states, xcoms or {})})

    with pytest.raises(AirflowSkipException, match="no deployment step failed"):
        record({"local.deploy": "success", "local.verify": "success", "local.rollback": "skipped"})
    assert ledger.read(home().ledger_path) == []

    out = record({"local.deploy": "success", "local.verify": "failed", "local.promote": "upstream_failed",
                  "local.rollback": "success"},
                 {("local.rollback", "return_value"): {"action": "rolled_back"}, ("local.approve", "answer"): None})
    assert out["failed_tasks"] == ["local.promote", "local.verify"]
    assert out["rollback_task"] == "local.rollback" and out["rollback"] == {"action": "rolled_back"}
    assert out["target"] == "local" and out["dag_id"] == "retrain" and out["run_id"] == "manual__1"
    [written] = ledger.read(home().ledger_path)
    assert json.loads(json.dumps(out, default=str)).items() <= written.items()
    assert client.get_model_version("fraud", "1").tags["mlops.deployment"] == "rolled_back"
