"""What was live when: a scripted sequence of promotions, rollbacks and an out-of-band move."""

from __future__ import annotations

import pytest

from airflow_mlops_provider.core.history import (
    HistoryError,
    compare,
    last_good_version,
    live_at,
    parse_time,
    reconcile,
    timeline,
)

M = "fraud-detector"


def rec(day: int, hour: int = 12, **fields):
    return {"model": M, "recorded_at": f"2026-11-{day:02d}T{hour:02d}:00:00+00:00", **fields}


# The script: v1 promoted (no deploy), v2 gated and promoted on the local target, v3 rejected,
# v4 promoted on local, an admin rolls back to v2, someone moves @champion to v3 with MlflowClient.
SCRIPT = [
    rec(1, event="decision", challenger_version="1", champion_version=None, verdict="promote", reasons=[],
        dag_id="mlops_retrain", run_id="r1"),
    rec(1, 13, event="promoted", challenger_version="1", previous_champion=None, task_id="promote",
        dag_id="mlops_retrain", run_id="r1"),
    rec(3, event="decision", challenger_version="2", champion_version="1", verdict="promote",
        reasons=["roc_auc +0.02"], challenger_metrics={"roc_auc": 0.86}, champion_metrics={"roc_auc": 0.84},
        dag_id="mlops_retrain", run_id="r2"),
    rec(3, 14, event="promoted", challenger_version="2", previous_champion="1", task_id="local.promote",
        dag_id="mlops_retrain", run_id="r2"),
    rec(5, event="decision", challenger_version="3", champion_version="2", verdict="rejected",
        reasons=["roc_auc 0.52 < floor 0.7"], dag_id="mlops_retrain", run_id="r3"),
    rec(7, event="decision", challenger_version="4", champion_version="2", verdict="promote", reasons=[],
        dag_id="mlops_retrain", run_id="r4"),
    rec(7, 15, event="promoted", challenger_version="4", previous_champion="2", task_id="local.promote",
        dag_id="mlops_retrain", run_id="r4"),
    rec(9, event="champion_rolled_back", from_version="4", to_version="2", deploy_target="local",
        requested_by="admin", reason="fraud alerts doubled", dag_id="mlops_rollback", run_id="manual__9"),
    rec(11, event="external_change", alias="champion", from_version="2", to_version="3",
        not_before="2026-11-09T12:00:00+00:00", changed_by=None, mlflow_reports={"changed_by": None},
        dag_id="mlops_batch_inference", run_id="scheduled__11"),
]

EXPECTED_CHAMPION = [  # (when, version, event that made it live)
    ("2026-10-30", None, None),
    ("2026-11-01T12:30", None, None),
    ("2026-11-01T13:00", "1", "promoted"),
    ("2026-11-02", "1", "promoted"),
    ("2026-11-04", "2", "promoted"),
    ("2026-11-06", "2", "promoted"),  # the rejected v3 never went live
    ("2026-11-08", "4", "promoted"),
    ("2026-11-10", "2", "champion_rolled_back"),
    ("2026-11-12", "3", "external_change"),
]


@pytest.mark.parametrize(("at", "version", "event"), EXPECTED_CHAMPION)
def test_champion_at_every_step_of_the_script(at, version, event):
    answer = live_at(SCRIPT, M, at)
    assert answer["version"] == version
    assert answer["known"] is (version is not None)
    assert (answer["why"] or {}).get("event") == event


def test_why_names_the_gate_decision_the_run_and_who_asked():
    promoted = live_at(SCRIPT, M, "2026-11-04")
    assert promoted["since"] == "2026-11-03T14:00:00+00:00" and promoted["until"] == "2026-11-07T15:00:00+00:00"
    assert promoted["why"]["decision"]["verdict"] == "promote"
    assert promoted["why"]["decision"]["champion_version"] == "1"
    assert promoted["why"]["who"] == "Airflow mlops_retrain / r2"
    rolled = live_at(SCRIPT, M, "2026-11-10")
    assert rolled["why"]["who"] == "admin" and rolled["why"]["reason"] == "fraud alerts doubled"
    external = live_at(SCRIPT, M, "2026-11-12")
    assert external["why"]["who"] is None and external["why"]["not_before"] == "2026-11-09T12:00:00+00:00"


def test_deploy_target_history_follows_lane_promotions_and_rollbacks_only():
    expected = [("2026-11-02", None), ("2026-11-04", "2"), ("2026-11-08", "4"), ("2026-11-10", "2"),
                ("2026-11-12", "2")]  # the out-of-band alias move deployed nothing
    for at, version in expected:
        assert live_at(SCRIPT, M, at, target="local")["version"] == version, at
    assert [m["version"] for m in timeline(SCRIPT, M, target="local")] == ["2", "4", "2"]
    assert live_at(SCRIPT, M, "2026-11-12", target="kserve")["known"] is False


def test_previous_and_challenger_aliases():
    assert live_at(SCRIPT, M, "2026-11-08", alias="previous")["version"] == "2"
    assert live_at(SCRIPT, M, "2026-11-10", alias="previous")["version"] == "4"
    assert live_at(SCRIPT, M, "2026-11-06", alias="challenger")["version"] == "3"


def test_timeline_chains_until():
    line = timeline(SCRIPT, M, alias="champion")
    assert [(m["version"], m["event"]) for m in line] == [
        ("1", "promoted"), ("2", "promoted"), ("4", "promoted"), ("2", "champion_rolled_back"),
        ("3", "external_change")]
    assert line[0]["until"] == line[1]["at"] and line[-1]["until"] is None


def test_unreconciled_change_is_flagged_when_mlflow_disagrees():
    answer = live_at(SCRIPT[:-1], M, "2026-11-12", current="3")
    assert answer["version"] == "2" and "not reconciled" in answer["warning"]
    assert "warning" not in live_at(SCRIPT, M, "2026-11-12", current="3")
    assert "warning" not in live_at(SCRIPT[:-1], M, "2026-11-04", current="3")  # a past answer stands


def test_reconcile_records_each_owned_alias_that_moved_outside_and_nothing_when_in_step():
    before = SCRIPT[:-1]
    assert reconcile(before, M, {"champion": "2", "previous": "4"}) == []
    found = reconcile(before, M, {"champion": "3", "previous": "4", "challenger": "9"},
                      seen_by={"dag_id": "d", "run_id": "r"})
    assert len(found) == 1
    (change,) = found
    assert change["event"] == "external_change" and change["alias"] == "champion"
    assert (change["from_version"], change["to_version"]) == ("2", "3")
    assert change["not_before"] == "2026-11-09T12:00:00+00:00" and change["run_id"] == "r"
    assert change["mlflow_reports"]["changed_by"] is None  # MLflow keeps no author for alias moves
    deleted = reconcile(before, M, {"previous": "4"})
    assert deleted[0]["to_version"] is None
    # Once appended, the same state is in step.
    assert reconcile([*before, {**change, "recorded_at": "2026-11-11T00:00:00+00:00"}], M,
                     {"champion": "3", "previous": "4"}) == []


def test_last_good_version_skips_the_current_and_versions_rolled_back_from():
    assert last_good_version(SCRIPT[:7], M, "4") == "2"
    assert last_good_version(SCRIPT[:8], M, "2") == "1"  # v4 was rolled back from: bad
    assert last_good_version(SCRIPT[:2], M, "1") is None


def test_compare_puts_two_versions_side_by_side_with_their_head_to_head():
    a = {"version": "1", "metrics": {"roc_auc": 0.84, "f1": 0.4}, "task_type": "binary", "data_version": "d1"}
    b = {"version": "2", "metrics": {"roc_auc": 0.86}, "task_type": "binary", "data_version": "d2"}
    out = compare(SCRIPT, M, a, b)
    roc = next(m for m in out["metrics"] if m["name"] == "roc_auc")
    assert roc["1"] == 0.84 and roc["2"] == 0.86 and roc["difference"] == pytest.approx(0.02)
    assert next(m for m in out["metrics"] if m["name"] == "f1")["difference"] is None
    assert {f["name"]: f["same"] for f in out["fields"]} == {"data_version": False, "task_type": True}
    assert [h["verdict"] for h in out["head_to_head"]] == ["promote"]
    assert [i["from"] for i in out["champion_intervals"]["2"]] == ["2026-11-03T14:00:00+00:00",
                                                                  "2026-11-09T12:00:00+00:00"]
    with pytest.raises(HistoryError, match="two different versions"):
        compare(SCRIPT, M, a, a)


def test_times_parse_dates_zones_and_refuse_garbage_naming_the_field():
    assert parse_time("2026-11-20").isoformat() == "2026-11-20T00:00:00+00:00"
    assert parse_time("2026-11-20T10:00:00Z").isoformat() == "2026-11-20T10:00:00+00:00"
    assert parse_time("2026-11-20T12:00:00+02:00").isoformat() == "2026-11-20T10:00:00+00:00"
    with pytest.raises(HistoryError, match="at='yesterday'"):
        live_at(SCRIPT, M, "yesterday")
