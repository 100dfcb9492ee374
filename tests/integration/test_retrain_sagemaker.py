"""mlops_retrain with deploy_target=sagemaker, end to end through real `airflow dags test` runs.

SageMaker runs against tests/fakes/sagemaker.py: moto in server mode on loopback plus a test
double for update_endpoint (moto lacks it; no AWS can be reached here), including SageMaker's
automatic rollback. The amazon provider's hooks, MLflow, DVC, GE and Airflow are real.
"""

from __future__ import annotations

import json

import pytest

from airflow_mlops_provider.core import ledger
from airflow_mlops_provider.core.demo_data import generate
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from airflow_mlops_provider.hooks.dvc import DvcHook, init_local_repo
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from tests.conftest import free_port
from tests.fakes import sagemaker as fake_sagemaker

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("retrain_sagemaker")]

MODEL, ENDPOINT, BUCKET = "fraud-detector", "fraud-prod", "models"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.17"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-exec"


@pytest.fixture
def sm(monkeypatch):
    fake, server = fake_sagemaker.start(monkeypatch, free_port())
    fake.client("s3").create_bucket(Bucket=BUCKET)
    yield fake
    server.stop()


def env(fake) -> dict:
    return {"AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": fake.url, "region_name": fake_sagemaker.REGION}})}


def conf() -> dict:
    return {"deploy_target": "sagemaker", "sagemaker": {
        "endpoint_name": ENDPOINT, "image_uri": IMAGE, "execution_role_arn": ROLE, "s3_bucket": BUCKET,
        "instance_type": "ml.m5.large", "initial_instance_count": 1,
        "deployment_config": {"traffic_shift": {"type": "canary", "percent": 10, "wait_seconds": 300},
                              "max_execution_timeout": 1800, "auto_rollback_alarms": ["fraud-5xx"]},
        "ready_timeout_s": 60, "poll_interval_s": 0.2, "bake_requests": 3, "max_error_rate": 0.0,
        "max_latency_ms": 5000, "smoke_rows": 4}}


def live_config(fake) -> str:
    return fake.client().describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]


def test_promotes_then_platform_rollback_and_failed_smoke_leave_the_champion(mlops_home, run_dag, sm):
    home = home_settings()
    init_local_repo(home.dvc_repo, home.dvc_remote)
    generate(5000, seed=1).to_parquet(home.dvc_repo / "transactions.parquet", index=False)
    DvcHook().commit_version("transactions.parquet", "v1")
    client = MlflowHook().client

    first = run_dag("mlops_retrain", "2026-11-01", conf=conf(), env=env(sm))
    assert first.returncode == 0, first
    for task in ("sagemaker.deploy", "sagemaker.verify", "sagemaker.approve", "sagemaker.promote"):
        assert first.states[task] == "success", first.states
    assert first.states["sagemaker.rollback"] == "skipped" and first.states["record_rollback"] == "skipped"
    champion = client.get_model_version_by_alias(MODEL, "champion")
    serving = live_config(sm)
    assert serving.endswith(f"-v{champion.version}")

    # SageMaker rolls the update back by itself (alarm): detected, recorded, champion unchanged.
    sm.update_mode = "rollback"
    second = run_dag("mlops_retrain", "2026-11-02", conf=conf(), env=env(sm))
    assert second.returncode != 0
    assert second.states["sagemaker.deploy"] == "failed", second.states
    assert "DeploymentRolledBack" in second.output or "rolled back" in second.output
    assert second.states["record_rollback"] == "success" and second.states["sagemaker.promote"] == "upstream_failed"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == str(champion.version)
    assert live_config(sm) == serving

    # The update applies but the new model answers with the wrong shape: we roll back.
    sm.update_mode = "apply"
    sm.invoke_mode = "short"
    third = run_dag("mlops_retrain", "2026-11-03", conf=conf(), env=env(sm))
    assert third.returncode != 0
    assert third.states["sagemaker.verify"] == "failed", third.states
    assert third.states["sagemaker.rollback"] == "success" and third.states["record_rollback"] == "success"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == str(champion.version)
    assert live_config(sm) == serving, "traffic must be back on the champion's config"
    rolled = [r for r in ledger.read(home.ledger_path) if r["event"] == "rolled_back"]
    assert [r["failed_tasks"] for r in rolled] == [
        ["sagemaker.approve", "sagemaker.deploy", "sagemaker.promote", "sagemaker.verify"],
        ["sagemaker.approve", "sagemaker.promote", "sagemaker.verify"]]
    assert rolled[1]["rollback_task"] == "sagemaker.rollback"
