"""Drift verdicts and statistics against Evidently itself (the oracle), on the same frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops_provider.core.baseline import compute_profile, sample_rows
from airflow_mlops_provider.core.demo_data import FEATURES, generate
from airflow_mlops_provider.core.drift import DriftPolicy, detect_drift


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, tuple[float, str]]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(current, reference).dict()
    out = {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        if "ValueDrift" in str(metric.get("metric_name", "")) or config.get("type", "").endswith("ValueDrift"):
            out[config["column"]] = (float(metric["value"]), config.get("method"), config.get("threshold"))
    return out


def is_drift(value: float, method: str, threshold: float) -> bool:
    return value <= threshold if "K-S" in method else (value < threshold if "p_value" in method
                                                         or "chi" in method.lower() or "Z-test" in method
                                                         else value >= threshold)


@pytest.mark.parametrize(("ref_rows", "cur_rows"), [(20000, 5000), (800, 600)])
@pytest.mark.parametrize("kind", ["normal", "drifted"])
def test_same_tests_and_verdicts_as_evidently(ref_rows, cur_rows, kind):
    reference = generate(ref_rows, seed=1)[FEATURES]
    current = generate(cur_rows, seed=2, kind=kind)[FEATURES]
    ours = detect_drift(compute_profile(reference, FEATURES), current, sample_rows(reference))
    theirs = evidently_drift(reference, current)
    assert set(theirs) == set(FEATURES)
    for col in ours.columns:
        value, method, threshold = theirs[col.column]
        assert col.threshold == pytest.approx(threshold), (col.column, method)
        assert col.statistic == pytest.approx(value, rel=0.02, abs=1e-6), (col.column, col.method, method)
        assert col.drifted == is_drift(value, method, threshold), (col.column, col.method, method)
    assert ours.drifted is (kind == "drifted")


def test_policy_key_features_and_share():
    reference = generate(5000, seed=1)[FEATURES]
    current = generate(3000, seed=2)[FEATURES].copy()
    current["amount"] = current["amount"] * 3  # one key feature drifts, the share stays low
    profile = compute_profile(reference, FEATURES)
    by_share = detect_drift(profile, current, policy=DriftPolicy(drift_share=0.5))
    assert not by_share.drifted and by_share.n_drifted >= 1
    by_key = detect_drift(profile, current, policy=DriftPolicy.from_dict({"key_features": ["amount"]}))
    assert by_key.drifted and "key features drifted: ['amount']" in by_key.reasons


def test_bad_inputs_name_what_is_wrong():
    reference = generate(2000, seed=1)[FEATURES]
    profile = compute_profile(reference, FEATURES)
    with pytest.raises(KeyError, match="lacks baseline features \\['amount'\\]"):
        detect_drift(profile, reference.drop(columns=["amount"]))
    with pytest.raises(KeyError, match="key_features \\['nope'\\]"):
        detect_drift(profile, reference, policy=DriftPolicy(key_features=("nope",)))
    with pytest.raises(ValueError, match="drift_share"):
        DriftPolicy.from_dict({"drift_share": 0})
    # Only NaN/inf in the current data: reported, not tested, not drift.
    current = reference.copy()
    current["amount"] = np.inf
    result = detect_drift(profile, current)
    amount = next(c for c in result.columns if c.column == "amount")
    assert amount.method == "none" and not amount.drifted


def test_too_few_rows_never_fire_the_policy():
    reference = generate(5000, seed=1)[FEATURES]
    profile = compute_profile(reference, FEATURES)
    shifted = generate(10, seed=3)[FEATURES].copy()
    shifted["amount"] = shifted["amount"] * 50
    few = detect_drift(profile, shifted, policy=DriftPolicy.from_dict({"key_features": ["amount"]}))
    assert not few.drifted and few.reasons == []
    assert few.too_few_rows == "too few rows to decide drift: 10 < min_rows 100"
    assert few.to_dict()["rows"] == 10
    # The same shift on enough rows (a policy may lower the floor) fires.
    fired = detect_drift(profile, shifted, policy=DriftPolicy.from_dict({"key_features": ["amount"], "min_rows": 10}))
    assert fired.drifted and fired.too_few_rows is None
    with pytest.raises(ValueError, match="min_rows must be an integer >= 1"):
        DriftPolicy.from_dict({"min_rows": 0})
