"""mlops_retrain with deploy_target=kserve, end to end through real `airflow dags test` runs.

KServe runs against tests/fakes/kube_api.py: a fake Kubernetes API server on loopback (no
Kubernetes can run here) that validates every manifest against the real InferenceService CRD
schema and simulates readiness, traffic splits and the predictor. Everything else is real.
"""

from __future__ import annotations

import json

import pytest

from airflow_mlops_provider.core import ledger
from airflow_mlops_provider.core.demo_data import generate
from airflow_mlops_provider.core.kserve import load_schema, parse_status
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from airflow_mlops_provider.hooks.dvc import DvcHook, init_local_repo
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.test_kserve_deploy import SCHEMA_PATH

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("retrain_kserve")]

MODEL, NS = "fraud-detector", "models"


@pytest.fixture
def kube():
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"KServe CRD schema not found at {SCHEMA_PATH} (shared/ beside the repo is absent)")
    with FakeKubeApi(load_schema(SCHEMA_PATH), ready_after=2) as api:
        yield api


def conf(**kserve) -> dict:
    return {"deploy_target": "kserve",
            "kserve": {"name": "fraud", "namespace": NS, "canary_traffic_percent": 20, "ready_timeout_s": 20,
                       "poll_interval_s": 0.2, "bake_requests": 3, "max_error_rate": 0.0,
                       "max_latency_ms": 5000, "smoke_rows": 4, **kserve}}


def env(api: FakeKubeApi) -> dict:
    return {"AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config": api.kubeconfig(NS)}})}


def storage_uri(api: FakeKubeApi) -> str:
    return api.stored("fraud", NS)["spec"]["predictor"]["model"]["storageUri"]


def test_canary_promotes_then_rollbacks_keep_registry_and_traffic_together(mlops_home, run_dag, kube):
    home = home_settings()
    init_local_repo(home.dvc_repo, home.dvc_remote)
    generate(5000, seed=1).to_parquet(home.dvc_repo / "transactions.parquet", index=False)
    DvcHook().commit_version("transactions.parquet", "v1")
    client = MlflowHook().client

    first = run_dag("mlops_retrain", "2026-11-01", conf=conf(), env=env(kube))
    assert first.returncode == 0, first
    for task in ("kserve.deploy", "kserve.verify", "kserve.approve", "kserve.promote_traffic", "kserve.promote"):
        assert first.states[task] == "success", first.states
    assert first.states["kserve.rollback"] == "skipped" and first.states["no_deploy"] == "skipped"
    champion = client.get_model_version_by_alias(MODEL, "champion")
    serving_v1 = storage_uri(kube)
    assert serving_v1 == client.get_model_version_download_uri(MODEL, champion.version)

    # A challenger whose canary answers with the wrong shape: verification fails, traffic and
    # aliases stay on the champion, the ledger says why.
    kube.predictor_mode = "bad_shape"
    second = run_dag("mlops_retrain", "2026-11-02", conf=conf(), env=env(kube))
    assert second.returncode != 0
    assert second.states["kserve.verify"] == "failed", second.states
    assert second.states["kserve.rollback"] == "success" and second.states["record_rollback"] == "success"
    assert second.states["kserve.promote"] == "upstream_failed" and second.states["promote"] == "skipped"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == str(champion.version)
    stored = kube.stored("fraud", NS)
    assert stored["spec"]["predictor"]["canaryTrafficPercent"] == 0
    traffic = parse_status(stored)["traffic"]
    assert (traffic["latest"], traffic["previous"]) == (0, 100), traffic
    rolled = [r for r in ledger.read(home.ledger_path) if r["event"] == "rolled_back"]
    assert len(rolled) == 1 and rolled[0]["failed_tasks"] == ["kserve.approve", "kserve.promote", "kserve.promote_traffic",
                                                             "kserve.verify"]
    assert client.get_model_version(MODEL, rolled[0]["challenger_version"]).tags["mlops.deployment"] == "rolled_back"

    # A challenger that never becomes Ready within the timeout: same outcome.
    kube.predictor_mode = "ok"
    kube.mode = "never"
    third = run_dag("mlops_retrain", "2026-11-03", conf=conf(ready_timeout_s=3), env=env(kube))
    assert third.returncode != 0
    assert third.states["kserve.deploy"] == "failed", third.states
    assert "did not become Ready" in third.output
    assert third.states["kserve.rollback"] == "success"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == str(champion.version)
    assert len([r for r in ledger.read(home.ledger_path) if r["event"] == "rolled_back"]) == 2
