"""The Models view's page and the data docs index, built from plain facts (no server, no MLflow)."""

from __future__ import annotations

import os
import time

from airflow_mlops_provider.core.validation import write_data_docs_index
from airflow_mlops_provider.ui.models_view import (
    drift_chart,
    gate_evidence,
    mlflow_ui_url,
    nice_ticks,
    performance_chart,
    render,
)


def facts(**overrides):
    model = {
        "name": "fraud-detector", "aliases": {"champion": "2", "previous": "1"},
        "holders": {
            "champion": {"version": "2", "run_id": "r2", "experiment_id": "7", "metrics": {"roc_auc": 0.91},
                         "created": "2026-11-20 10:00 UTC", "decision": "promote", "data_version": "abc"},
            "previous": {"version": "1", "run_id": "r1", "experiment_id": "7", "metrics": {"roc_auc": 0.88},
                         "created": "2026-11-19 10:00 UTC", "decision": "promote", "data_version": "abd"},
        },
        "metric_names": ["roc_auc"],
        "ledger": [{"event": "decision", "verdict": "reject", "challenger_version": "3", "champion_version": "2",
                    "reasons": ["roc_auc 0.519 < floor 0.7"], "recorded_at": "2026-11-20T10:00:00+00:00",
                    "run_id": "manual__1"},
                   {"event": "rolled_back", "challenger_version": "4", "champion_version": "2",
                    "failed_tasks": ["kserve.verify"], "run_id": "manual__2"}],
        "drift": {"2": [{"partition": "2026-11-20", "drift_share": 0.1, "drifted": False, "n_drifted": 1, "rows": 500,
                         "run_id": "d1", "experiment_id": "9", "report": "r.html"},
                        {"partition": "2026-11-21", "drift_share": 0.7, "drifted": True, "n_drifted": 7, "rows": 500,
                         "run_id": "d2", "experiment_id": "9", "report": None}]},
        "performance": {"2": [
            {"labels_day": "2026-11-22", "metric": "roc_auc", "live": 0.90, "holdout": 0.91, "degradation": 0.01,
             "rows": 4000, "unmatched": 5, "late": 0, "degraded": False, "too_few_rows": None, "reasons": "",
             "run_id": "p1", "experiment_id": "9"},
            {"labels_day": "2026-11-23", "metric": "roc_auc", "live": 0.62, "holdout": 0.91, "degradation": 0.29,
             "rows": 3000, "unmatched": 0, "late": 0, "degraded": True, "too_few_rows": None,
             "reasons": "roc_auc 0.62 vs holdout 0.91: degraded by 0.29 > 0.05", "run_id": "p2",
             "experiment_id": "9"}]},
        "serving": [{"target": "local", "role": "live", "version": "2", "url": "http://127.0.0.1:5001"}],
    }
    model.update(overrides)
    return {"models": [model], "mlflow_ui": "http://mlflow.example:5000", "data_docs": True,
            "generated": "2026-11-28 10:00:00 UTC"}


def test_page_shows_aliases_side_by_side_ledger_reasons_drift_bars_and_links():
    page = render(facts())
    assert "@champion: v2" in page and "@previous: v1" in page
    assert "<td class='num'>0.91</td><td class='num'>0.88</td>" in page  # side by side, champion first
    assert "roc_auc 0.519 &lt; floor 0.7" in page  # reasons escaped, shown
    assert "kserve.verify" in page  # a rollback names its failed step
    assert page.count('class="drift-bar"') == 2
    assert 'data-partition="2026-11-21" data-share="0.7000"' in page
    assert 'href="/mlops/reports/drift/r.html"' in page
    assert 'href="http://mlflow.example:5000/#/experiments/7/runs/r2"' in page
    assert 'href="/mlops/reports/data_docs/index.html"' in page
    assert "http://127.0.0.1:5001" in page


def test_performance_history_charts_live_metric_against_holdout_per_labels_day():
    page = render(facts())
    assert page.count('class="performance-bar"') == 2
    assert 'data-day="2026-11-23" data-value="0.6200"' in page
    assert "(decay fired)" in page and 'class="holdout"' in page
    assert "<td>5 / 0</td>" in page  # unmatched / late labels of the first day
    for tick in ("0.25", "0.5", "0.75", ">1<"):  # round ticks (0..1 in quarters), not 0.458/0.916
        assert tick in page
    assert "0.458" not in page and "0.916" not in page
    assert 'href="http://mlflow.example:5000/#/experiments/9/runs/p2"' in page
    assert "No labels checked yet" in render(facts(performance={}))
    # RMSE-like values: the axis follows the values, the bar stays inside the chart.
    svg = performance_chart([{"labels_day": "2026-11-01", "metric": "rmse", "live": 25000.0, "holdout": 20000.0,
                              "rows": 300, "degraded": True}])
    assert 'data-value="25000.0000"' in svg and "holdout rmse 2e+04" in svg
    assert ">30000</text>" in svg and ">10000</text>" in svg


def test_names_from_the_registry_are_escaped():
    page = render(facts(name="<script>alert(1)</script>"))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_chart_clamps_shares_and_marks_fired_partitions():
    svg = drift_chart([{"partition": "a", "drift_share": 1.7, "drifted": True},
                       {"partition": "b", "drift_share": -1, "drifted": False}])
    assert 'data-share="1.0000"' in svg and 'data-share="0.0000"' in svg
    assert "#d9534f" in svg and "(drift fired)" in svg


def test_mlflow_ui_link_never_carries_credentials(monkeypatch):
    monkeypatch.delenv("MLOPS_MLFLOW_UI_URL", raising=False)
    assert mlflow_ui_url("https://user:secret@mlflow.example/") == "https://mlflow.example"
    assert mlflow_ui_url("sqlite:////tmp/mlflow.db") is None
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "http://127.0.0.1:5000/")
    assert mlflow_ui_url(None) == "http://127.0.0.1:5000"


def test_data_docs_index_lists_every_validation_page_newest_first(tmp_path):
    old = tmp_path / "validations" / "suite_a" / "run1" / "20261101T000000Z" / "batch1.html"
    new = tmp_path / "validations" / "suite_b" / "run2" / "20261102T000000Z" / "batch2.html"
    for page in (old, new):
        page.parent.mkdir(parents=True)
        page.write_text("<html></html>")
    os.utime(old, (time.time() - 100, time.time() - 100))
    index = write_data_docs_index(tmp_path)
    text = index.read_text()
    assert "2 validation result(s)" in text
    assert text.index("suite_b") < text.index("suite_a")
    assert 'href="validations/suite_a/run1/20261101T000000Z/batch1.html"' in text
    assert not list(tmp_path.glob(".index.html.*"))


def test_mlflow_down_is_a_502_naming_the_server_without_credentials(monkeypatch, tmp_path):
    """The view's app, called in-process with the auth dependency satisfied, MLflow refusing."""
    from fastapi.testclient import TestClient

    from airflow_mlops_provider.ui.models_view import create_app

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT",
                       '{"conn_type": "mlflow", "host": "http://127.0.0.1:9", "login": "u", "password": "s3cret"}')
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    app = create_app()
    for dependency in app.router.dependencies:  # Airflow's login check: covered by the stack test
        app.dependency_overrides[dependency.dependency] = lambda: None
    answer = TestClient(app).get("/api/models")
    assert answer.status_code == 502
    detail = answer.json()["detail"]
    assert "127.0.0.1:9" in detail and "refused the connection" in detail and "s3cret" not in detail


DECISIONS = [
    {"event": "decision", "model": "fraud-detector", "challenger_version": "2", "champion_version": "1",
     "verdict": "promote", "reasons": [], "challenger_metrics": {"roc_auc": 0.861, "f1": 0.5},
     "champion_metrics": {"roc_auc": 0.84, "f1": 0.45}, "eval_rows": 1200, "data_version": "d2",
     "recorded_at": "2026-11-08T10:00:00+00:00", "dag_id": "mlops_retrain", "run_id": "manual__2026-11-08"},
    {"event": "promoted", "model": "fraud-detector", "challenger_version": "2", "previous_champion": "1"},
    {"event": "decision", "model": "fraud-detector", "challenger_version": "3", "champion_version": "2",
     "verdict": "rejected", "reasons": ["roc_auc 0.52 < floor 0.7"], "challenger_metrics": {"roc_auc": 0.52},
     "champion_metrics": {"roc_auc": 0.83}, "eval_rows": 1200, "data_version": "d3",
     "recorded_at": "2026-11-15T10:00:00+00:00", "dag_id": "mlops_retrain", "run_id": "manual__2026-11-15"},
]


def test_gate_evidence_shows_both_models_on_the_challengers_holdout_newest_first():
    gates = gate_evidence(DECISIONS)
    assert [g["challenger_version"] for g in gates] == ["3", "2"]
    assert gates[0]["holdout"] == {"of_version": "3", "rows": 1200, "data_version": "d3"}
    page = render(facts(gate=gates, ledger=list(reversed(DECISIONS))))
    newest = page[page.index("<table class='gate'"):]
    newest = newest[:newest.index("</table>")]
    assert "data-challenger='3' data-champion='2' data-holdout='3'" in newest
    assert "both scored on <b>v3's holdout</b> (1200 rows, data version d3)" in newest
    # The champion's figure is the one the gate computed on v3's holdout (0.83), not its own (0.91).
    assert "<td class='num'>0.52</td><td class='num'>0.83</td><td class='num'>-0.31</td>" in newest
    assert "<span class='reject'>rejected</span>" in newest
    assert "1 earlier decision(s)" in page
    assert "its own</b> holdout" in page  # the holders table says its figures are not comparable


def test_ledger_styles_rejections_names_versions_and_links_airflow_runs():
    page = render(facts(ledger=list(reversed(DECISIONS))), airflow="/airflow")
    ledger = page[page.index("<table class='ledger'"):]
    assert "<td class='reject'>decision: rejected</td><td>v3</td><td>v2</td>" in ledger
    assert "<td class='promote'>promoted</td><td>v2</td><td>v1</td>" in ledger
    assert 'href="/airflow/dags/mlops_retrain/runs/manual__2026-11-15" target="_top"' in ledger
    assert ".reject,.rejected" in page  # the class the page emits is styled


def test_holders_link_their_mlflow_runs_by_id_and_the_page_follows_the_ui_theme():
    page = render(facts())
    assert '<a href="http://mlflow.example:5000/#/experiments/7/runs/r2" target="_blank" rel="noopener">r2</a>' \
        in page
    assert 'localStorage.getItem("theme")' in page and ":root.dark{" in page
    assert "<code>r2</code>" in render({**facts(), "mlflow_ui": None})  # no MLflow UI: the id, unlinked


def test_nice_ticks_are_round():
    assert nice_ticks(0.916) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(25000) == [0, 10000, 20000, 30000]
    assert nice_ticks(0.05) == [0.0, 0.02, 0.04, 0.06]
    assert nice_ticks(0) == [0.0, 0.5, 1.0]


def test_serving_lists_every_registered_target_and_says_why_one_is_unavailable(mlops_home):
    from mlops_echo_target.state import write_state

    from airflow_mlops_provider.ui.models_view import _serving

    write_state("fraud-detector", live="2", candidate="3")  # the entry-point-only plug-in target
    unreachable: dict[str, str] = {}
    rows = _serving("fraud-detector", unreachable)
    echo = [r for r in rows if r["target"] == "echo"]
    assert [(r["role"], r["version"], r["traffic_percent"]) for r in echo] == [("live", "2", 100),
                                                                               ("candidate", "3", 0)]
    # No AWS connection here: SageMaker says so instead of breaking the page, and is asked once.
    (sagemaker,) = [r for r in rows if r["target"] == "sagemaker"]
    assert sagemaker["available"] is False and "aws_default" in sagemaker["reason"]
    assert unreachable["sagemaker"] == sagemaker["reason"]
    page = render(facts(serving=rows))
    assert "echo live: v2" in page and "100% of traffic" in page
    assert "sagemaker: unavailable (" in page and "aws_default" in page


def test_release_checks_show_load_figures_and_canary_agreement_with_the_broken_limit():
    from airflow_mlops_provider.ui.models_view import release_checks, release_checks_html

    records = [
        {"event": "load_test", "model": "m", "challenger_version": "2", "target": "local", "verdict": "passed",
         "figures": {"requests": 200, "concurrency": 4, "throughput_rps": 35.54, "p50_ms": 108.3, "p95_ms": 177.3,
                     "p99_ms": 195.7, "error_rate": 0.0, "errors_by_kind": {}}, "broken_limits": []},
        {"event": "quality_canary", "model": "m", "challenger_version": "3", "target": "local", "verdict": "failed",
         "figures": {"rows": 8, "champion_version": "1", "agreement": 0.0, "psi": 9.2, "ks": 1.0,
                     "mean_abs_diff": 1.0},
         "broken_limits": [{"limit": "canary_min_agreement", "measured": 0.0,
                            "message": "class agreement with the champion 0.0% is below the canary_min_agreement "
                                       "limit of 95.0%"}]},
        {"event": "load_test", "model": "other", "challenger_version": "9", "verdict": "passed", "figures": {}},
        {"event": "decision", "model": "m", "challenger_version": "2", "verdict": "promote"},
    ]
    checks = release_checks(records, "m")
    assert [(c["event"], c["version"], c["verdict"]) for c in checks] == [
        ("quality_canary", "3", "failed"), ("load_test", "2", "passed")]
    html = release_checks_html(checks)
    assert "<th>requests/s</th>" in html and "<td class='num'>35.54</td>" in html and "<td class='num'>195.7</td>" in html
    assert "below the canary_min_agreement limit of 95.0%" in html and "<td class='reject'>failed</td>" in html
    assert "No deployment lane" in release_checks_html([])
