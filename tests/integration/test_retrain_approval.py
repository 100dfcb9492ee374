"""mlops_retrain with ``require_approval``: a human approves or rejects a verified canary.

The answer goes through a real ``airflow api-server`` (the HITL REST API the web UI's
"Required actions" page uses) on the same metadata DB as the running ``airflow dags test``.
KServe is tests/fakes/kube_api.py (no Kubernetes can run here); everything else is real.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from airflow_mlops_provider.core import ledger
from airflow_mlops_provider.core.demo_data import generate
from airflow_mlops_provider.core.kserve import parse_status
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from airflow_mlops_provider.hooks.dvc import DvcHook, init_local_repo
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.operators.deploy_kserve import version_storage_uri
from tests.conftest import API_VIEWER
from tests.integration.test_retrain_kserve import NS, conf, env, kube, storage_uri  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("retrain_approval")]

MODEL = "fraud-detector"


def hitl_url(base: str, run_id: str, task_id: str) -> str:
    return (f"{base}/api/v2/dags/mlops_retrain/dagRuns/{urllib.parse.quote(run_id, safe='')}"
            f"/taskInstances/{task_id}/-1/hitlDetails")


def call(base: str, headers: dict, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}{path}", method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def login(base: str, user: str, password: str) -> str:
    status, body = call(base, {"Content-Type": "application/json"}, "POST", "/auth/token",
                        {"username": user, "password": password})
    assert status in (200, 201), body
    return body["access_token"]


def answer(api, run, option: str) -> dict:
    """Wait until the approval task asks, check what it shows, then answer as the reviewer."""
    base, headers = api
    run_id = run.wait_for_state("kserve.approve", "awaiting_input")
    url = hitl_url(base, run_id, "kserve.approve")
    detail = json.loads(urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10).read())
    request = urllib.request.Request(url, method="PATCH", headers=headers,
                                     data=json.dumps({"chosen_options": [option], "params_input": {}}).encode())
    urllib.request.urlopen(request, timeout=10).read()
    return detail


@pytest.mark.timeout(1500)  # three retrain runs, each waiting for a human answer
def test_reviewer_approves_rejects_and_a_superseded_promotion_rolls_back(
        mlops_home, run_dag, kube, api_server):  # noqa: F811 - kube is the imported fixture
    home = home_settings()
    init_local_repo(home.dvc_repo, home.dvc_remote)
    generate(5000, seed=1).to_parquet(home.dvc_repo / "transactions.parquet", index=False)
    DvcHook().commit_version("transactions.parquet", "v1")
    client = MlflowHook().client
    gated = {**conf(), "require_approval": True}

    # 1. Approved from the Models view: the model's page lists the waiting approval with its evidence;
    #    a viewer may not answer it; the reviewer's Approve goes through Airflow's HITL API as the
    #    reviewer. Traffic and @champion move to the challenger.
    run = run_dag("mlops_retrain", "2026-11-01", conf=gated, env=env(kube), background=True)
    run_id = run.wait_for_state("kserve.approve", "awaiting_input")
    base, headers = api_server
    detail = call(base, headers, "GET", hitl_url("", run_id, "kserve.approve"))[1]
    assert detail["subject"] == f"Promote {MODEL} v1 on kserve?"
    assert detail["options"] == ["Approve", "Reject"] and detail["defaults"] == ["Reject"]
    assert "Verified on kserve: 3 requests, error rate 0.0%" in detail["body"]
    assert "| roc_auc |" in detail["body"]
    status, listed = call(base, headers, "GET", f"/mlops/api/models/{MODEL}/approvals")
    assert status == 200, listed
    (waiting,) = listed["approvals"]
    assert (waiting["dag_id"], waiting["dag_run_id"], waiting["task_id"]) == ("mlops_retrain", run_id, "kserve.approve")
    assert waiting["subject"] == detail["subject"] and waiting["body"] == detail["body"] and waiting["may_answer"]
    which = {k: waiting[k] for k in ("dag_id", "dag_run_id", "task_id", "map_index")}
    viewer = {**headers, "Authorization": f"Bearer {login(base, *API_VIEWER)}"}
    assert call(base, viewer, "GET", f"/mlops/api/models/{MODEL}/approvals")[1]["approvals"][0]["may_answer"] is False
    status, refused = call(base, viewer, "POST", f"/mlops/api/models/{MODEL}/approvals", {**which, "answer": "approve"})
    assert status == 403, refused
    status, given = call(base, headers, "POST", f"/mlops/api/models/{MODEL}/approvals", {**which, "answer": "approve"})
    assert status == 200, given
    assert given["chosen_options"] == ["Approve"] and given["responded_by"] == "reviewer"
    first = run.wait()
    assert first.returncode == 0, first
    for task in ("kserve.approve", "kserve.promote_traffic", "kserve.promote"):
        assert first.states[task] == "success", first.states
    champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
    assert storage_uri(kube) == version_storage_uri(MlflowHook(), MODEL, champion)

    # 2. Rejected: the canary's traffic goes back, @champion never moved, the ledger says who.
    run = run_dag("mlops_retrain", "2026-11-02", conf=gated, env=env(kube), background=True)
    answer(api_server, run, "Reject")
    second = run.wait()
    assert second.returncode != 0
    assert second.states["kserve.approve"] == "failed", second.states
    assert second.states["kserve.rollback"] == "success" and second.states["kserve.promote_traffic"] == "upstream_failed"
    assert "rejected by reviewer" in second.output
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == champion
    traffic = parse_status(kube.stored("fraud", NS))["traffic"]
    assert (traffic["latest"], traffic["previous"]) == (0, 100), traffic
    rolled = [r for r in ledger.read(home.ledger_path) if r["event"] == "rolled_back"]
    assert len(rolled) == 1 and rolled[0]["approval"]["by"] == "reviewer"
    assert rolled[0]["approval"]["approved"] is False and "kserve.approve" in rolled[0]["failed_tasks"]

    # 3. While the reviewer thinks, another writer moves @champion. The approved challenger gets
    #    100% of traffic, its promotion is refused (stale comparison), and serving follows the new
    #    @champion: traffic and aliases agree again.
    run = run_dag("mlops_retrain", "2026-11-03", conf=gated, env=env(kube), background=True)
    run.wait_for_state("kserve.approve", "awaiting_input")
    source = client.get_model_version_download_uri(MODEL, champion)  # the same model, registered by hand
    other = client.create_model_version(MODEL, source, tags={"mlops.note": "registered by hand"})
    client.set_registered_model_alias(MODEL, "champion", other.version)
    answer(api_server, run, "Approve")
    third = run.wait()
    assert third.returncode != 0
    assert third.states["kserve.promote_traffic"] == "success", third.states
    assert third.states["kserve.promote"] == "failed" and third.states["kserve.rollback"] == "success"
    assert "PromotionSuperseded" in third.output
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == str(other.version)
    assert storage_uri(kube) == version_storage_uri(MlflowHook(), MODEL, str(other.version))
    assert parse_status(kube.stored("fraud", NS))["traffic"]["latest"] == 100
    events = [r["event"] for r in ledger.read(home.ledger_path)]
    assert "promotion_superseded" in events and events.count("rolled_back") == 2

