"""The Models view's history section and rollback routes, in-process (the real login and auth manager
are in tests/integration/test_history_ui.py)."""

from __future__ import annotations

from airflow_mlops_provider.ui import history_view
from airflow_mlops_provider.ui.history_view import history_facts, history_section

M = "fraud-detector"
RECORDS = [
    {"event": "promoted", "model": M, "challenger_version": "1", "previous_champion": None, "task_id": "promote",
     "dag_id": "mlops_retrain", "run_id": "r1", "recorded_at": "2026-11-01T12:00:00+00:00"},
    {"event": "promoted", "model": M, "challenger_version": "2", "previous_champion": "1",
     "task_id": "local.promote", "dag_id": "mlops_retrain", "run_id": "r2", "recorded_at": "2026-11-03T12:00:00+00:00"},
    {"event": "external_change", "model": M, "alias": "champion", "from_version": "2", "to_version": "<3>",
     "not_before": "2026-11-03T12:00:00+00:00", "dag_id": "mlops_alias_audit", "run_id": "s1",
     "recorded_at": "2026-11-05T12:00:00+00:00"},
]


def model(**extra):
    return {"name": M, "history": history_facts(RECORDS, M), **extra}


def test_section_shows_timelines_and_external_changes_escaped_and_no_button_by_default():
    page = history_section(model())
    assert page.count("<table class='timeline'>") == 1 and "<table class='timeline target'>" in page
    assert "data-event='external_change'" in page and "Moved outside the pipeline" in page
    assert "&lt;3&gt;" in page and "<3>" not in page
    assert "form class='rollback'" not in page


def test_button_only_with_an_action_and_the_started_run_is_named():
    page = history_section(model(rollback={"dag_id": "mlops_rollback", "paused": True},
                                 rollback_started={"dag_id": "mlops_rollback", "dag_run_id": "manual__1",
                                                   "paused": True}))
    assert "action='/mlops/models/fraud-detector/rollback'" in page and "data-dag='mlops_rollback'" in page
    assert "data-run='manual__1'" in page and "paused" in page


def test_rollback_route_answers_403_when_airflow_refuses_and_404_without_a_rollback_dag(view_app, monkeypatch):
    from fastapi.testclient import TestClient

    asked = []
    monkeypatch.setattr(history_view, "rollback_dag_of", lambda m: {"dag_id": "mlops_rollback", "paused": False})
    monkeypatch.setattr(history_view, "may_trigger", lambda user, dag_id: asked.append((user, dag_id)) or False)
    answer = TestClient(view_app).post(f"/api/models/{M}/rollback", json={"reason": "x"})
    assert answer.status_code == 403 and "mlops_rollback" in answer.json()["detail"]
    assert asked == [("someone", "mlops_rollback")]
    form = TestClient(view_app).post(f"/models/{M}/rollback", data={"reason": "x"}, follow_redirects=False)
    assert form.status_code == 403
    monkeypatch.setattr(history_view, "rollback_dag_of", lambda m: None)
    assert TestClient(view_app).post(f"/api/models/{M}/rollback", json={}).status_code == 404


def test_history_route_refuses_a_bad_time_naming_it(view_app):
    from fastapi.testclient import TestClient

    answer = TestClient(view_app).get("/api/history", params={"model": M, "at": "yesterday"})
    assert answer.status_code == 400 and "at='yesterday'" in answer.json()["detail"]
