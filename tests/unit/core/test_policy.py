"""PromotionPolicy edge cases: ties, missing metrics, no champion, lower-is-better, floors."""

from __future__ import annotations

import json

import pytest

from airflow_mlops_provider.core.policy import DEFAULT_POLICY, PolicyError, PromotionPolicy


def policy(**rule) -> PromotionPolicy:
    return PromotionPolicy.from_dict({"metrics": [{"name": "auc", **rule}], "min_eval_rows": 10})


def test_no_champion_promotes_when_floors_pass():
    d = policy(floor=0.7).decide({"auc": 0.8}, None, eval_rows=100)
    assert d.promote and not d.had_champion
    assert d.reasons == ["no champion yet; all floors pass"]


def test_no_champion_rejects_below_floor():
    d = policy(floor=0.7).decide({"auc": 0.69}, None, eval_rows=100)
    assert not d.promote
    assert "auc=0.69 is below the floor 0.7" in d.reasons[0]


def test_tie_is_not_a_regression():
    d = policy(max_regression=0.0).decide({"auc": 0.8}, {"auc": 0.8}, eval_rows=100)
    assert d.promote
    assert d.checks[0]["improvement"] == 0.0


def test_tie_fails_when_an_improvement_is_required():
    d = policy(min_improvement=0.001).decide({"auc": 0.8}, {"auc": 0.8}, eval_rows=100)
    assert not d.promote and "below min_improvement" in d.reasons[0]


@pytest.mark.parametrize(("challenger", "promote"), [(0.795, True), (0.79, True), (0.789, False)])
def test_regression_threshold_boundary(challenger, promote):
    d = policy(max_regression=0.01).decide({"auc": challenger}, {"auc": 0.8}, eval_rows=100)
    assert d.promote is promote


def test_lower_is_better_metric():
    p = policy(direction="lower", floor=0.5, max_regression=0.02)
    assert p.decide({"auc": 0.30}, {"auc": 0.31}, 100).promote  # lower loss: better
    worse = p.decide({"auc": 0.34}, {"auc": 0.31}, 100)
    assert not worse.promote and "worse than champion 0.31 by 0.03" in worse.reasons[0]
    assert not p.decide({"auc": 0.6}, None, 100).promote  # above a lower-is-better floor
    assert "above the floor" in p.decide({"auc": 0.6}, None, 100).reasons[0]


def test_missing_metric_on_either_side_rejects_with_its_name():
    p = policy(floor=0.5)
    d = p.decide({}, None, 100)
    assert not d.promote and "challenger has no value for metric 'auc'" in d.reasons
    d = p.decide({"auc": float("nan")}, None, 100)
    assert not d.promote
    d = p.decide({"auc": 0.9}, {"other": 1.0}, 100)
    assert not d.promote and "champion has no value for metric 'auc'" in d.reasons[0]


def test_min_eval_rows():
    d = policy().decide({"auc": 0.9}, None, eval_rows=9)
    assert not d.promote and "fewer than min_eval_rows=10" in d.reasons[0]


def test_all_reasons_are_reported():
    p = PromotionPolicy.from_dict(DEFAULT_POLICY)
    d = p.decide({"roc_auc": 0.6, "log_loss": 0.5}, {"roc_auc": 0.9, "log_loss": 0.2}, 50)
    assert len(d.reasons) == 4  # rows, floor, auc regression, log_loss regression


def test_round_trip_json():
    p = PromotionPolicy.from_dict(DEFAULT_POLICY)
    assert PromotionPolicy.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    d = p.decide({"roc_auc": 0.9, "log_loss": 0.2}, None, 500)
    assert json.loads(json.dumps(d.to_dict()))["verdict"] == "promote"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({}, "'metrics' list"),
        ({"metrics": []}, "at least one metric"),
        ({"metrics": [{"direction": "up"}]}, r"metrics\[0\] must be an object with a 'name'"),
        ({"metrics": [{"name": "a", "direction": "up"}]}, "direction must be 'higher' or 'lower'"),
        ({"metrics": [{"name": "a", "max_regression": -1}]}, "max_regression must be >= 0"),
        ({"metrics": [{"name": "a", "thresh": 1}]}, r"unknown fields \['thresh'\]"),
        ({"metrics": [{"name": "a"}, {"name": "a"}]}, "duplicate"),
    ],
)
def test_malformed_policy_names_the_field(data, match):
    with pytest.raises(PolicyError, match=match):
        PromotionPolicy.from_dict(data)
