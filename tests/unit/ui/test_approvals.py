"""The Models view's waiting approvals: the section and the answer routes' refusals, in-process (a real
api-server, Airflow's HITL API and an approval answered from the view are in
tests/integration/test_retrain_approval.py)."""

from __future__ import annotations

from airflow_mlops_provider.ui import approvals
from airflow_mlops_provider.ui.approvals import approvals_section

M = "fraud-detector"
WAITING = {"dag_id": "mlops_retrain", "dag_run_id": "manual__<1>", "task_id": "kserve.approve", "map_index": -1,
           "subject": "Promote fraud-detector v2 on kserve?", "body": "| roc_auc | 0.91 |", "options": ["Approve", "Reject"],
           "since": "2026-11-01T12:00:00+00:00"}


def test_nothing_waiting_is_no_section():
    assert approvals_section({"name": M, "approvals": []}) == ""


def test_buttons_only_for_a_user_who_may_answer_and_everything_is_escaped():
    page = approvals_section({"name": M, "approvals": [{**WAITING, "may_answer": True}]})
    assert "action='/mlops/models/fraud-detector/approvals'" in page
    assert "value='approve'>Approve</button>" in page and "value='reject'>Reject</button>" in page
    assert "value='manual__&lt;1&gt;'" in page and "<1>" not in page
    assert "Promote fraud-detector v2 on kserve?" in page and "| roc_auc | 0.91 |" in page
    viewer = approvals_section({"name": M, "approvals": [{**WAITING, "may_answer": False}]})
    assert "<form" not in viewer and "You may not answer" in viewer
    answered = approvals_section({"name": M, "approvals": [], "approval_answered": {
        "model": M, "answer": "approve", "dag_run_id": "manual__1", "task_id": "kserve.approve"}})
    assert "Answered <b>approve</b>" in answered and "manual__1" in answered


def test_answer_refusals_name_the_cause(view_app, monkeypatch):
    from fastapi.testclient import TestClient

    asked = []
    monkeypatch.setattr(approvals, "pending_approvals", lambda model: [dict(WAITING)] if model == M else [])
    monkeypatch.setattr(approvals, "may_answer", lambda user, dag_id: asked.append((user, dag_id)) or False)
    client = TestClient(view_app)
    body = {k: WAITING[k] for k in ("dag_id", "dag_run_id", "task_id", "map_index")}

    bad = client.post(f"/api/models/{M}/approvals", json={**body, "answer": "maybe"})
    assert bad.status_code == 400 and "'maybe'" in bad.json()["detail"]
    other = client.post("/api/models/other-model/approvals", json={**body, "answer": "approve"})
    assert other.status_code == 404 and "other-model" in other.json()["detail"]
    stale = client.post(f"/api/models/{M}/approvals", json={**body, "dag_run_id": "manual__2", "answer": "approve"})
    assert stale.status_code == 404 and "manual__2" in stale.json()["detail"]
    refused = client.post(f"/api/models/{M}/approvals", json={**body, "answer": "approve"})
    assert refused.status_code == 403 and "mlops_retrain" in refused.json()["detail"]
    assert asked == [("someone", "mlops_retrain")]
    form = client.post(f"/models/{M}/approvals", data={**body, "answer": "reject"}, follow_redirects=False)
    assert form.status_code == 403
    listed = client.get(f"/api/models/{M}/approvals").json()
    assert listed["approvals"][0]["subject"] == WAITING["subject"] and listed["approvals"][0]["may_answer"] is False
