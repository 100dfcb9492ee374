"""The governed example (docs/governance.md shows it verbatim) builds a DAG whose gate carries its slices,
card identity and policy (bootstrap, slice rules, significance)."""

from __future__ import annotations


def test_the_governed_example_wires_slices_card_and_policy_into_the_gate():
    from airflow_mlops_provider.core.policy import PromotionPolicy
    from examples.governed_fraud_pipeline import GOVERNED, retrain

    decide = retrain.task_dict["decide"]
    assert decide.slices == [{"column": "merchant_category"}, {"column": "amount", "bins": [0.0, 20.0, 100.0, None]}]
    assert decide.model_card["owner"] == "fraud-analytics team"
    policy = PromotionPolicy.from_dict(retrain.params["policy"])
    assert policy.bootstrap.resamples == 1000
    assert policy.metrics[0].require_significant_improvement
    assert policy.slices.min_rows == 100 and policy.slices.metrics[0].direction == "higher"
    assert GOVERNED.effective_policy == retrain.params["policy"]
