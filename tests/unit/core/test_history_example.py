"""The example of docs/governance.md ("What was live when"), shown there verbatim."""

from airflow_mlops_provider.core.history import live_at, reconcile, timeline


def test_what_was_live_when():
    records = [  # as the pipeline appends them to MLOPS_HOME/ledger/decisions.jsonl
        {"event": "promoted", "model": "fraud-detector", "challenger_version": "1", "previous_champion": None,
         "task_id": "local.promote", "dag_id": "mlops_retrain", "run_id": "r1",
         "recorded_at": "2026-11-01T12:00:00+00:00"},
        {"event": "promoted", "model": "fraud-detector", "challenger_version": "2", "previous_champion": "1",
         "task_id": "local.promote", "dag_id": "mlops_retrain", "run_id": "r2",
         "recorded_at": "2026-11-08T12:00:00+00:00"},
        {"event": "champion_rolled_back", "model": "fraud-detector", "from_version": "2", "to_version": "1",
         "requested_by": "alice", "reason": "false positives doubled", "deploy_targets": ["local"],
         "recorded_at": "2026-11-10T09:30:00+00:00"},
    ]
    answer = live_at(records, "fraud-detector", "2026-11-09")  # @champion by default
    assert answer["version"] == "2" and answer["since"] == "2026-11-08T12:00:00+00:00"
    assert answer["why"]["who"] == "Airflow mlops_retrain / r2"
    assert live_at(records, "fraud-detector", "2026-11-11", target="local")["version"] == "1"
    assert [m["event"] for m in timeline(records, "fraud-detector", alias="champion")] == [
        "promoted", "promoted", "champion_rolled_back"]

    # Someone moved @champion to v2 in MLflow's UI: reconcile says what to record.
    (change,) = reconcile(records, "fraud-detector", {"champion": "2", "previous": "2"}, aliases=["champion"])
    assert (change["event"], change["from_version"], change["to_version"]) == ("external_change", "1", "2")
