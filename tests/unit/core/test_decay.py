"""core.decay: the decay policy, the labels join and its counts, per-version evaluation."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from airflow_mlops_provider.core.decay import (
    DecayPolicy,
    LabelsError,
    evaluate_versions,
    join_labels,
    judge,
    read_labels,
)
from airflow_mlops_provider.core.tasks import compute_metrics

KEYS = ["tx"]


def test_policy_defaults_per_task_type_and_directions():
    assert DecayPolicy.from_dict("binary", None).rules[0].name == "roc_auc"
    rule = DecayPolicy.from_dict("regression", None).rules[0]
    assert (rule.name, rule.direction, rule.max_relative_degradation) == ("rmse", "lower", 0.10)
    assert DecayPolicy.from_dict("multiclass", None).rules[0].direction == "higher"


@pytest.mark.parametrize(("task_type", "policy", "needle"), [
    ("binary", {"metrics": [{"name": "rmse", "max_degradation": 1}]}, "'rmse', which a binary model"),
    ("binary", {"metrics": [{"name": "roc_auc"}]}, "sets neither max_degradation"),
    ("binary", {"metrics": [{"name": "roc_auc", "max_degradation": -1}]}, "metrics[0].max_degradation"),
    ("binary", {"metrics": [{"name": "roc_auc", "max_drop": 0.1}]}, "unknown fields ['max_drop']"),
    ("binary", {"metrics": []}, "metrics is empty"),
    ("regression", {"metrics": [{"name": "rmse", "max_degradation": 1}], "min_rows": 0}, "min_rows"),
    ("regression", {"metrics": [{"name": "rmse", "max_degradation": 1}], "window": 3}, "unknown fields ['window']"),
    ("binary", {"metrics": [{"name": "positive_rate", "max_degradation": 0.1}]}, "'positive_rate'"),
])
def test_bad_policies_name_the_field(task_type, policy, needle):
    with pytest.raises(ValueError) as err:
        DecayPolicy.from_dict(task_type, policy)
    assert needle in str(err.value)


def test_judge_fires_on_a_drop_beyond_the_limit_in_the_metrics_own_direction():
    policy = DecayPolicy.from_dict("binary", {"metrics": [{"name": "roc_auc", "max_degradation": 0.05},
                                                          {"name": "log_loss", "max_relative_degradation": 0.5}],
                                              "min_rows": 100})
    fine = judge(policy, "3", 500, {"roc_auc": 0.88, "log_loss": 0.30}, {"roc_auc": 0.90, "log_loss": 0.25})
    assert not fine.degraded and fine.figures["roc_auc"]["degradation"] == pytest.approx(0.02)
    assert fine.figures["log_loss"]["relative_degradation"] == pytest.approx(0.2)
    bad = judge(policy, "3", 500, {"roc_auc": 0.80, "log_loss": 0.26}, {"roc_auc": 0.90, "log_loss": 0.25})
    assert bad.degraded and bad.reasons == ["roc_auc 0.8000 vs holdout 0.9000: degraded by 0.1000 > 0.05"]
    # Better than the holdout is never decay.
    better = judge(policy, "3", 500, {"roc_auc": 0.99, "log_loss": 0.01}, {"roc_auc": 0.90, "log_loss": 0.25})
    assert not better.degraded and better.figures["roc_auc"]["degradation"] < 0


def test_judge_regression_relative_rise_and_too_few_rows():
    policy = DecayPolicy.from_dict("regression", {"metrics": [{"name": "rmse", "max_relative_degradation": 0.1}],
                                                  "min_rows": 50})
    risen = judge(policy, "1", 60, {"rmse": 12.0}, {"rmse": 10.0})
    assert risen.degraded and "degraded by 20.0% > 10%" in risen.reasons[0]
    few = judge(policy, "1", 10, {"rmse": 12.0}, {"rmse": 10.0})
    assert not few.degraded and "10 labelled rows < min_rows 50" in few.too_few_rows
    assert few.figures["rmse"]["live"] == 12.0  # reported even when not decided
    missing = judge(policy, "1", 60, {"rmse": 12.0}, {})
    assert not missing.degraded and missing.reasons == ["rmse: not compared, the version's holdout gave no value"]


def _scored(tmp_path, day: str, ids, version: str, scores) -> tuple[date, str]:
    path = tmp_path / f"date={day}.parquet"
    pd.DataFrame({"tx": ids, "score": scores, "model_version": version}).to_parquet(path, index=False)
    return date.fromisoformat(day), str(path)


def test_join_counts_every_label_that_is_not_used_as_is(tmp_path):
    scored = [_scored(tmp_path, "2026-11-01", ["a", "b", "c", "d"], "1", [0.1, 0.9, 0.2, 0.8]),
              _scored(tmp_path, "2026-11-09", ["e", "f", "d"], "2", [0.3, 0.7, 0.5])]
    labels = pd.DataFrame({"tx": ["a", "b", "b", "c", "c", "d", "e", "zz", "yy", "f"],
                           "y": [0, 1, 1, 0, 1, 1, 0, 1, 0, None]})
    joined, counts = join_labels(labels, scored, KEYS, "y", ["score"], labels_day=date(2026, 11, 10),
                                 max_label_delay_days=7)
    assert counts.label_rows == 10
    assert counts.null_labels == 1  # f
    assert counts.duplicated == 1  # b twice with the same label: one kept
    assert counts.conflicting == 2  # c labelled 0 and 1: neither kept
    assert counts.ambiguous == 1  # d scored on two days
    assert counts.unmatched == 2 and sorted(counts.unmatched_examples) == ["yy", "zz"]
    assert counts.matched == 3 and sorted(joined["tx"]) == ["a", "b", "e"]
    assert counts.late == 2  # a, b scored 9 days before the labels day
    assert dict(zip(joined["tx"], joined["model_version"], strict=True)) == {"a": "1", "b": "1", "e": "2"}
    assert counts.coverage == {"2026-11-01": {"rows": 4, "labelled": 2}, "2026-11-09": {"rows": 3, "labelled": 1}}
    assert counts.partial_days == ["2026-11-01", "2026-11-09"]


def test_join_refuses_a_scored_partition_without_the_version_column(tmp_path):
    path = tmp_path / "date=2026-11-01.parquet"
    pd.DataFrame({"tx": ["a"], "score": [0.5]}).to_parquet(path)
    with pytest.raises(LabelsError, match=r"lacks columns \['model_version'\]"):
        join_labels(pd.DataFrame({"tx": ["a"], "y": [1]}), [(date(2026, 11, 1), str(path))], KEYS, "y", ["score"],
                    labels_day=date(2026, 11, 2), max_label_delay_days=7)


def test_ids_typed_differently_from_the_scored_ones_are_refused_by_name(tmp_path):
    scored = [_scored(tmp_path, "2026-11-01", ["1", "2"], "1", [0.1, 0.9])]
    with pytest.raises(LabelsError, match=r"id column 'tx' is object in the scored partition .* but int64 in the"):
        join_labels(pd.DataFrame({"tx": [1, 2], "y": [0, 1]}), scored, KEYS, "y", ["score"],
                    labels_day=date(2026, 11, 2), max_label_delay_days=7)


def test_read_labels_names_the_missing_column_and_the_file(tmp_path):
    path = tmp_path / "2026-11-02.parquet"
    pd.DataFrame({"tx": ["a"], "label": [1]}).to_parquet(path)
    with pytest.raises(LabelsError) as err:
        read_labels(str(path), KEYS, "y")
    assert str(path) in str(err.value) and "['y']" in str(err.value)
    with pytest.raises(LabelsError, match="labels partition .* does not exist"):
        read_labels(str(tmp_path / "missing.parquet"), KEYS, "y")


def test_each_version_is_evaluated_on_its_own_rows_with_the_training_metric_code():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.clip(y * 0.7 + rng.normal(0.15, 0.1, 400), 0, 1)
    noise = rng.uniform(0, 1, 400)
    joined = pd.DataFrame({"tx": range(800), "y": np.r_[y, y], "score": np.r_[good, noise],
                           "model_version": ["4"] * 400 + ["5"] * 400})
    out = evaluate_versions("binary", joined, "y", {"4": [0, 1], "5": [0, 1]})
    assert out["4"]["rows"] == out["5"]["rows"] == 400
    assert out["4"]["metrics"] == compute_metrics("binary", y, good, [0, 1])
    assert out["4"]["metrics"]["roc_auc"] > 0.9 > 0.6 > out["5"]["metrics"]["roc_auc"]


def test_multiclass_and_label_type_errors():
    joined = pd.DataFrame({"y": ["a", "b", "c", "a"], "prediction": ["a", "b", "c", "b"],
                           "proba_a": [0.8, 0.1, 0.1, 0.3], "proba_b": [0.1, 0.8, 0.1, 0.6],
                           "proba_c": [0.1, 0.1, 0.8, 0.1], "model_version": "2"})
    out = evaluate_versions("multiclass", joined, "y", {"2": ["a", "b", "c"]})
    assert out["2"]["metrics"]["accuracy"] == 0.75
    with pytest.raises(LabelsError, match="v2 cannot be evaluated.*never saw"):
        evaluate_versions("multiclass", joined.assign(y="z"), "y", {"2": ["a", "b", "c"]})
    with pytest.raises(LabelsError, match="class labels"):
        evaluate_versions("multiclass", joined, "y", {"2": None})


def test_no_scored_partition_in_the_window_counts_every_label_unmatched_and_evaluates_nothing():
    labels = pd.DataFrame({"tx": ["a", "b", None], "y": [0, 1, 1]})
    joined, counts = join_labels(labels, [], KEYS, "y", ["score"], labels_day=date(2026, 11, 2),
                                 max_label_delay_days=7)
    assert (counts.matched, counts.unmatched, counts.null_keys) == (0, 2, 1)
    assert evaluate_versions("binary", joined, "y", {}) == {}


def test_null_ids_match_nothing_on_either_side(tmp_path):
    path = tmp_path / "date=2026-11-01.parquet"
    pd.DataFrame({"tx": ["a", None], "score": [0.2, 0.9], "model_version": "1"}).to_parquet(path)
    labels = pd.DataFrame({"tx": ["a", None], "y": [0, 1]})
    joined, counts = join_labels(labels, [(date(2026, 11, 1), str(path))], KEYS, "y", ["score"],
                                 labels_day=date(2026, 11, 2), max_label_delay_days=7)
    assert list(joined["tx"]) == ["a"] and counts.null_keys == 1 and counts.unmatched == 0


def test_a_zero_holdout_is_compared_absolutely_only():
    policy = DecayPolicy.from_dict("regression", {"metrics": [{"name": "mae", "max_relative_degradation": 0.1}],
                                                  "min_rows": 1})
    verdict = judge(policy, "1", 10, {"mae": 0.5}, {"mae": 0.0})
    assert verdict.figures["mae"]["relative_degradation"] is None and not verdict.degraded
    assert verdict.reasons == ["mae: not compared relatively, the holdout value is 0"]
