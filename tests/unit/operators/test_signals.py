"""The signal operators: an Asset event with the figures only when the verdict fires."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops_provider.operators.signals import (
    SignalDriftDetectedOperator,
    SignalPerformanceDegradedOperator,
)

DRIFT = Asset("mlops://drift/fraud")
DECAY = Asset("mlops://performance/fraud")


class _Events(dict):
    """``outlet_events`` / ``inlet_events`` as a task sees them: one accessor per Asset."""

    def __init__(self, earlier=()):
        super().__init__()
        self.earlier = list(earlier)

    def __missing__(self, asset):
        accessor = SimpleNamespace(extra=None, ascending=lambda _: SimpleNamespace(
            limit=lambda n: self.earlier[:n]))
        self[asset] = accessor
        return accessor


def drift(**overrides) -> dict:
    return {"model_name": "fraud", "model_version": "3", "data_path": "/in/day.parquet", "drifted": True,
            "drift_share": 0.6, "n_drifted": 3, "n_columns": 5, "drifted_features": ["a", "b", "c"],
            "reasons": ["60% of features drifted"], "report_path": "/r/drift.html", "too_few_rows": None,
            "prediction_drift": None, **overrides}


def test_drift_that_fires_emits_the_event_with_the_figures():
    events = _Events()
    op = SignalDriftDetectedOperator(task_id="signal_drift", drift=drift(), outlets=[DRIFT])
    extra = op.execute({"outlet_events": events})
    assert events[DRIFT].extra == extra == {
        "model_name": "fraud", "model_version": "3", "drift_share": 0.6, "drifted_features": ["a", "b", "c"],
        "prediction_drift": None, "report": "/r/drift.html", "data_path": "/in/day.parquet"}


@pytest.mark.parametrize(("overrides", "match"), [
    ({"drifted": False}, "no drift: 3/5 features drifted"),
    ({"too_few_rows": "80 rows < min_rows 100"}, "drift not decided: 80 rows < min_rows 100"),
])
def test_drift_that_does_not_fire_skips_without_an_event(overrides, match):
    events = _Events()
    with pytest.raises(AirflowSkipException, match=match):
        SignalDriftDetectedOperator(task_id="s", drift=drift(**overrides), outlets=[DRIFT]).execute(
            {"outlet_events": events})
    assert DRIFT not in events


def check(degraded: bool = True) -> dict:
    verdict = {"rows": 400, "figures": {"rmse": {"live": 2.0, "holdout": 1.0}}, "check_key": "k1",
               "too_few_rows": None, "degraded": degraded}
    return {"model_name": "fraud", "champion_version": "3", "degraded": degraded, "versions": {"3": verdict},
            "labels_day": "2026-01-02", "labels_path": "/labels/2026-01-02.parquet", "reasons": ["rmse degraded by 1"],
            "counts": {"unmatched": 2, "late": 1}}


def test_decay_of_the_champion_emits_once_per_check():
    events = _Events()
    op = SignalPerformanceDegradedOperator(task_id="signal_degradation", check=check(), outlets=[DECAY],
                                           inlets=[DECAY])
    extra = op.execute({"outlet_events": events, "inlet_events": _Events()})
    assert events[DECAY].extra == extra
    assert (extra["model_version"], extra["check_key"], extra["labelled_rows"], extra["unmatched_labels"]) == \
        ("3", "k1", 400, 2)
    earlier = [SimpleNamespace(extra={"check_key": "k1"}, timestamp="2026-01-02T06:00")]
    with pytest.raises(AirflowSkipException, match="already signalled at 2026-01-02T06:00: no second retrain"):
        op.execute({"outlet_events": _Events(), "inlet_events": _Events(earlier)})


def test_no_decay_skips_and_says_why():
    with pytest.raises(AirflowSkipException, match="no performance decay of @champion: v3: within the policy"):
        SignalPerformanceDegradedOperator(task_id="s", check=check(False), outlets=[DECAY]).execute(
            {"outlet_events": _Events(), "inlet_events": _Events()})


def test_a_signal_needs_exactly_one_outlet():
    with pytest.raises(ValueError, match="emits exactly one Asset"):
        SignalDriftDetectedOperator(task_id="s", drift=drift()).execute({"outlet_events": _Events()})
