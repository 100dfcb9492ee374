"""Slices: declarations refused naming the field, masks, per-slice metrics, and the policy's slice and
significance rules (a rejection names the slice; a gain within noise is rejected and says so)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops_provider.core.bootstrap import BootstrapSpec
from airflow_mlops_provider.core.policy import PolicyError, PromotionPolicy
from airflow_mlops_provider.core.slices import SliceError, parse_slices, slice_masks, slice_report


@pytest.mark.parametrize(("raw", "match"), [
    ("region", "must be a list"),
    ([{"values": ["a"]}], r"slices\[0\] must be an object with a 'column'"),
    ([{"column": "a", "values": ["x"], "bins": [0, 1]}], "both 'values' and 'bins'"),
    ([{"column": "amount", "bins": [0]}], "at least two edges"),
    ([{"column": "amount", "bins": [0, None, 5]}], r"bins\[1\] must be a number"),
    ([{"column": "amount", "bins": [5, 1]}], "must increase"),
    ([{"column": "a", "where": "x"}], "unknown fields"),
])
def test_bad_declarations_are_named(raw, match):
    with pytest.raises(SliceError, match=match):
        parse_slices(raw)


def test_masks_for_values_bins_and_every_value():
    frame = pd.DataFrame({"region": ["A", "B", "A", "C"], "amount": [5.0, 50.0, 150.0, 20.0]})
    masks = slice_masks(frame, [{"column": "region"}, {"column": "region", "values": ["C"], "name": "south"},
                                {"column": "amount", "bins": [None, 20, 100, None]}])
    got = {m["slice"]: m["mask"].tolist() for m in masks}
    assert got == {
        "region=A": [True, False, True, False], "region=B": [False, True, False, False],
        "region=C": [False, False, False, True], "south=C": [False, False, False, True],
        "amount in [-∞, 20)": [True, False, False, False], "amount in [20, 100)": [False, True, False, True],
        "amount in [100, ∞)": [False, False, True, False]}
    with pytest.raises(SliceError, match="slice column 'country' is not in the holdout"):
        slice_masks(frame, [{"column": "country"}])
    with pytest.raises(SliceError, match="bins need a numeric column"):
        slice_masks(frame, [{"column": "region", "bins": [0, 1]}])


def _holdout(n: int = 1200, seed: int = 0):
    """Two models on the same rows: equal everywhere except region B, where the challenger is noise."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["A", "B", "C"], n, p=[0.6, 0.35, 0.05])
    y = rng.integers(0, 2, n)
    good = np.clip(y * 0.5 + rng.random(n) * 0.5, 0, 1)
    challenger = np.where(region == "B", rng.random(n), good)
    return pd.DataFrame({"region": region}), y, np.column_stack([1 - challenger, challenger]), \
        np.column_stack([1 - good, good])


def test_a_challenger_worse_on_one_slice_is_rejected_naming_it():
    frame, y, challenger, champion = _holdout()
    report = slice_report("binary", frame, y, {"challenger": challenger, "champion": champion}, [0, 1],
                          [{"column": "region"}], bootstrap_spec=BootstrapSpec(resamples=100),
                          interval_metrics=["roc_auc"])
    assert [r["slice"] for r in report] == ["region=A", "region=B", "region=C"]
    assert report[0]["metrics"]["challenger"]["roc_auc"] == pytest.approx(report[0]["metrics"]["champion"]["roc_auc"])
    assert report[1]["intervals"]["challenger"]["roc_auc"]["high"] < report[1]["intervals"]["champion"]["roc_auc"]["low"]
    policy = PromotionPolicy.from_dict({
        "metrics": [{"name": "accuracy", "max_regression": 0.5}],
        "slices": {"min_rows": 100, "metrics": [{"name": "roc_auc", "direction": "higher", "floor": 0.6,
                                                   "max_regression": 0.05}]}})
    decision = policy.decide({"accuracy": 0.7}, {"accuracy": 0.8}, eval_rows=len(y), evidence={"slices": report})
    assert not decision.promote
    assert len(decision.reasons) == 2, decision.reasons  # B: below the floor, and worse than the champion
    assert all(r.startswith(f"slice region=B ({report[1]['rows']} rows): ") for r in decision.reasons)
    assert any("worse than champion" in r and "max_regression=0.05" in r for r in decision.reasons)
    small = [c for c in decision.checks if c.get("slice") == "region=C"][0]
    assert small["rows"] < 100 and small["judged"] is False and small["passed"]
    # Without a champion the floors alone judge the slices.
    alone = policy.decide({"accuracy": 0.7}, None, eval_rows=len(y), evidence={"slices": report})
    assert [r for r in alone.reasons if "worse than champion" in r] == []
    assert any("below the floor 0.6" in r for r in alone.reasons)


def test_significance_rule_rejects_a_gain_within_noise_and_says_so():
    policy = PromotionPolicy.from_dict({"metrics": [{"name": "roc_auc", "direction": "higher",
                                                     "require_significant_improvement": True}],
                                        "bootstrap": {"resamples": 200, "seed": 3}, "min_eval_rows": 10})
    noise = {"bootstrap": {"gains": {"roc_auc": {"value": 0.004, "low": -0.006, "high": 0.013,
                                                 "significant": False}}}}
    decision = policy.decide({"roc_auc": 0.854}, {"roc_auc": 0.85}, eval_rows=500, evidence=noise)
    assert not decision.promote
    assert decision.reasons == [
        "roc_auc: improvement 0.004 over champion 0.85 is within noise: 95% paired-bootstrap interval "
        "(200 resamples, seed 3) of the gain is [-0.006, 0.013], which includes 0 (require_significant_improvement)"]
    real = {"bootstrap": {"gains": {"roc_auc": {"value": 0.04, "low": 0.02, "high": 0.06, "significant": True}}}}
    passed = policy.decide({"roc_auc": 0.89}, {"roc_auc": 0.85}, eval_rows=500, evidence=real)
    assert passed.promote and "is significant" in passed.reasons[1] and passed.checks[0]["significant"]
    # No bootstrap evidence: the rule cannot be met, and says why.
    missing = policy.decide({"roc_auc": 0.89}, {"roc_auc": 0.85}, eval_rows=500)
    assert not missing.promote and "no paired bootstrap" in missing.reasons[0]
    # No champion: nothing to be significant against; the floors decide.
    assert policy.decide({"roc_auc": 0.89}, None, eval_rows=500).promote


@pytest.mark.parametrize(("raw", "match"), [
    ({"metrics": [{"name": "auc", "require_significant_improvement": True}], "bootstrap": {"resamples": 0}},
     "bootstrap.resamples is 0"),
    ({"metrics": [{"name": "auc"}], "slices": {"metrics": []}}, "non-empty 'metrics'"),
    ({"metrics": [{"name": "auc"}], "slices": {"metrics": [{"name": "auc"}], "min_rows": 0}}, "min_rows"),
    ({"metrics": [{"name": "auc"}], "bootstrap": {"resamples": 7}}, "policy.bootstrap.resamples"),
    ({"metrics": [{"name": "auc"}], "sliced": {}}, "unknown fields"),
])
def test_bad_policies_are_named(raw, match):
    with pytest.raises(PolicyError, match=match):
        PromotionPolicy.from_dict(raw)


def test_policy_round_trips_with_bootstrap_and_slices():
    raw = {"metrics": [{"name": "auc", "require_significant_improvement": True}],
           "bootstrap": {"resamples": 300, "seed": 5, "confidence": 0.9},
           "slices": {"min_rows": 40, "metrics": [{"name": "auc", "max_regression": 0.1}]}}
    policy = PromotionPolicy.from_dict(raw)
    assert PromotionPolicy.from_dict(policy.to_dict()) == policy


def test_model_config_refuses_slice_rules_without_slices_and_bad_slices():
    from airflow_mlops_provider.pipelines.config import ModelConfig

    base = {"name": "m", "task_type": "binary", "target": "y", "train": lambda X, y: None, "data_path": "d.parquet",
            "deploy_targets": []}
    with pytest.raises(ValueError, match="slice rules, but no slices are declared"):
        ModelConfig(**base, policy={"metrics": [{"name": "roc_auc"}],
                                    "slices": {"metrics": [{"name": "roc_auc", "max_regression": 0.1}]}})
    with pytest.raises(SliceError, match=r"ModelConfig\('m'\).slices\[0\]"):
        ModelConfig(**base, slices=[{"values": [1]}])
    with pytest.raises(Exception, match="slices.metrics\\[0\\] names metric 'demographic_parity_difference'"):
        ModelConfig(**base, slices=[{"column": "a"}], policy={
            "metrics": [{"name": "roc_auc"}], "slices": {"metrics": [{"name": "demographic_parity_difference"}]}})
    model = ModelConfig(**base, slices=[{"column": "a"}], owner="team", limitations=["x"], policy={
        "metrics": [{"name": "roc_auc"}], "slices": {"metrics": [{"name": "roc_auc", "max_regression": 0.1}]}})
    assert model.effective_policy["slices"]["metrics"][0]["direction"] == "higher"
    assert model.card_identity() == {"owner": "team", "intended_use": None, "out_of_scope_uses": [],
                                     "limitations": ["x"]}
