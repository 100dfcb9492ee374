"""Bootstrap intervals: the vectorised metrics equal scikit-learn's on the same resampled rows; seeded and
deterministic; the paired interval of a gain tells a real improvement from noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from airflow_mlops_provider.core import bootstrap as bt
from airflow_mlops_provider.core.fairness import group_metrics
from airflow_mlops_provider.core.tasks import binary_metrics, multiclass_metrics, regression_metrics


def _binary(n: int = 600, seed: int = 1, signal: float = 0.3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # Rounded scores: many ties, which AUC and average precision must handle as scikit-learn does.
    p = np.round(np.clip(y * signal + rng.random(n) * (1 - signal), 0, 1), 2)
    return y, np.column_stack([1 - p, p])


def test_vectorised_binary_metrics_match_scikit_learn_on_each_resample():
    y, raw = _binary()
    idx = next(bt.index_blocks(len(y), bt.BootstrapSpec(resamples=50, seed=3)))[:5]
    samples = bt.metric_samples("binary", y, raw, [0, 1], bt.counts(idx, len(y)), idx)
    for b, rows in enumerate(idx):
        expected = binary_metrics(y[rows], raw[rows, 1])
        for name, value in expected.items():
            assert samples[name][b] == pytest.approx(value, abs=1e-9), name
        assert samples["roc_auc"][b] == pytest.approx(metrics.roc_auc_score(y[rows], raw[rows, 1]))


def test_vectorised_multiclass_and_regression_metrics_match():
    rng = np.random.default_rng(2)
    n = 400
    labels = np.array(["x", "y", "z"])
    y = labels[rng.integers(0, 3, n)]
    proba = rng.dirichlet(np.ones(3), n)
    proba[np.arange(n), np.searchsorted(labels, y)] += 0.4
    proba /= proba.sum(axis=1, keepdims=True)
    target = rng.normal(5, 2, n)
    prediction = target + rng.normal(0, 1, n)
    idx = next(bt.index_blocks(n, bt.BootstrapSpec(resamples=50, seed=4)))[:3]
    W = bt.counts(idx, n)
    multi = bt.metric_samples("multiclass", y, proba, list(labels), W, idx)
    reg = bt.metric_samples("regression", target, prediction, None, W, idx)
    for b, rows in enumerate(idx):
        for name, value in multiclass_metrics(y[rows], proba[rows], list(labels)).items():
            assert multi[name][b] == pytest.approx(value, abs=1e-9), name
        for name, value in regression_metrics(target[rows], prediction[rows]).items():
            assert reg[name][b] == pytest.approx(value, abs=1e-9), name


def test_group_metrics_on_all_rows_equal_fairlearn():
    y, raw = _binary()
    groups = pd.DataFrame({"region": np.random.default_rng(5).choice(["A", "B", "C"], len(y))})
    codes, names = bt.group_codes(groups)
    assert names == ["A", "B", "C"]
    mine = bt.group_samples("binary", y, raw, [0, 1], codes, np.ones((1, len(y))))
    expected = group_metrics("binary", y, raw, groups, [0, 1])["metrics"]
    assert {k: float(v[0]) for k, v in mine.items()} == pytest.approx(expected)


def test_intervals_are_seeded_and_deterministic():
    y, raw = _binary()
    spec = bt.BootstrapSpec(resamples=200, seed=11)
    first = bt.bootstrap("binary", y, {"challenger": raw}, [0, 1], spec)
    again = bt.bootstrap("binary", y, {"challenger": raw}, [0, 1], spec)
    other = bt.bootstrap("binary", y, {"challenger": raw}, [0, 1], bt.BootstrapSpec(resamples=200, seed=12))
    assert first == again
    auc = first["intervals"]["challenger"]["roc_auc"]
    assert auc["low"] < auc["value"] < auc["high"]
    assert auc["value"] == pytest.approx(metrics.roc_auc_score(y, raw[:, 1]))
    assert other["intervals"]["challenger"]["roc_auc"] != auc
    # More confidence, wider interval.
    wide = bt.bootstrap("binary", y, {"challenger": raw}, [0, 1],
                        bt.BootstrapSpec(resamples=200, seed=11, confidence=0.99))["intervals"]["challenger"]["roc_auc"]
    assert wide["low"] <= auc["low"] and wide["high"] >= auc["high"]


def test_paired_gain_separates_a_real_improvement_from_noise():
    rng = np.random.default_rng(8)
    n = 800
    y = rng.integers(0, 2, n)
    base = np.clip(y * 0.25 + rng.random(n) * 0.75, 0, 1)
    better = np.clip(y * 0.45 + rng.random(n) * 0.55, 0, 1)
    jitter = np.clip(base + rng.normal(0, 0.01, n), 0, 1)  # the same model, slightly perturbed
    spec = bt.BootstrapSpec(resamples=300, seed=0)

    def gain(challenger):
        return bt.bootstrap("binary", y, {"challenger": np.column_stack([1 - challenger, challenger]),
                                          "champion": np.column_stack([1 - base, base])}, [0, 1], spec)["gains"]

    real, noise = gain(better)["roc_auc"], gain(jitter)["roc_auc"]
    assert real["significant"] and real["low"] > 0
    assert not noise["significant"] and noise["low"] <= 0 <= noise["high"]
    # Lower is better for log loss: the gain is signed so that positive means better.
    assert gain(better)["log_loss"]["value"] > 0


def test_a_plugin_task_type_falls_back_to_its_own_metrics():
    from airflow_mlops_provider.core.task_types import (
        RegressionTaskType,
        register_task_type,
        unregister_task_type,
    )

    class Counting(RegressionTaskType):
        name = "counting-test"

    register_task_type(Counting())
    try:
        rng = np.random.default_rng(1)
        y = rng.poisson(3, 200).astype(float)
        out = bt.bootstrap("counting-test", y, {"challenger": y + 0.5}, None, bt.BootstrapSpec(resamples=50))
        assert out["intervals"]["challenger"]["mae"] == {"value": 0.5, "low": 0.5, "high": 0.5}
    finally:
        unregister_task_type("counting-test")


@pytest.mark.parametrize(("raw", "match"), [
    ({"resamples": 10}, "resamples"), ({"seed": -1}, "seed"), ({"confidence": 1.0}, "confidence"),
    ({"sample": 3}, "unknown fields")])
def test_bad_settings_are_named(raw, match):
    with pytest.raises(bt.BootstrapError, match=match):
        bt.BootstrapSpec.from_dict(raw)


def test_zero_resamples_turns_intervals_off():
    y, raw = _binary(n=100)
    out = bt.bootstrap("binary", y, {"challenger": raw}, [0, 1], bt.BootstrapSpec(resamples=0))
    assert out["intervals"]["challenger"]["roc_auc"]["low"] is None
