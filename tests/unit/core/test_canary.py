"""The quality canary's agreement metrics and limits (core.canary)."""

from __future__ import annotations

import pytest

from airflow_mlops_provider.core.canary import (
    CANARY_LIMITS,
    canary_policy,
    compare_predictions,
    judge_canary,
    psi,
)


def test_identical_answers_agree_fully():
    scores = [0.1, 0.8, 0.35, 0.9, 0.55, 0.02, 0.7, 0.4, 0.66, 0.12, 0.95, 0.3]
    out = compare_predictions(scores, list(scores))
    assert out == {"rows": 12, "kind": "probabilities", "agreement": 1.0, "psi": 0.0, "ks": 0.0,
                   "mean_abs_diff": 0.0}
    assert judge_canary(out, canary_policy()) == []


def test_labels_compare_as_classes():
    out = compare_predictions([1, 0, 1, 1, 0, 0, 1, 0], [1, 0, 1, 0, 0, 0, 1, 1])
    assert out["kind"] == "labels" and out["agreement"] == 0.75 and out["mean_abs_diff"] == 0.25
    assert out["psi"] == pytest.approx(0.0)  # same class balance: the distributions match though rows differ
    text = compare_predictions(["fraud", "ok", "ok"], ["fraud", "ok", "fraud"])
    assert text["agreement"] == pytest.approx(2 / 3) and text["ks"] is None and text["mean_abs_diff"] is None
    # [p0, p1] per row (predict_proba): the positive class's probability is compared.
    pairs = compare_predictions([[0.9, 0.1], [0.2, 0.8]], [[0.7, 0.3], [0.4, 0.6]])
    assert pairs["kind"] == "probabilities" and pairs["agreement"] == 1.0 and pairs["mean_abs_diff"] == 0.2


def test_a_flipped_candidate_breaks_agreement_and_distance_limits_without_any_error():
    champion = [i / 40 for i in range(40)]
    candidate = [1 - s for s in champion[:20]] + champion[20:]  # half the rows reversed
    out = compare_predictions(candidate, champion)
    assert out["agreement"] < 0.6 and out["mean_abs_diff"] > 0.2
    broken = judge_canary(out, canary_policy(canary_max_psi=10, canary_max_ks=1))
    assert [b["limit"] for b in broken] == ["canary_min_agreement", "canary_max_mean_abs_diff"]
    assert broken[0]["message"].startswith("class agreement with the champion 50.0% is below the "
                                           "canary_min_agreement limit of 95.0%")
    shifted = compare_predictions([min(1.0, s + 0.5) for s in champion], champion)
    assert shifted["ks"] >= 0.5 and shifted["psi"] > 1
    assert {b["limit"] for b in judge_canary(shifted, canary_policy())} >= {"canary_max_psi", "canary_max_ks"}


def test_regression_scores_are_not_judged_on_agreement():
    out = compare_predictions([10.5, 20.25, 30.0, 41.5], [10.0, 20.5, 30.5, 40.0])
    assert out["kind"] == "scores" and out["agreement"] is None and out["mean_abs_diff"] == pytest.approx(0.6875)
    assert [b["limit"] for b in judge_canary(out, canary_policy())] == ["canary_max_mean_abs_diff"]


def test_psi_of_a_known_shift():
    # Two classes 50/50 against 80/20: (0.3)ln(0.8/0.5) + (-0.3)ln(0.2/0.5) = 0.4159
    assert psi([0] * 50 + [1] * 50, [0] * 80 + [1] * 20) == pytest.approx(0.4159, abs=1e-3)


def test_bad_input_and_policy_fields():
    with pytest.raises(ValueError, match="the candidate answered 2 predictions and the champion 3"):
        compare_predictions([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="canary_min_agreement must be in \\[0, 1\\], got 1.5"):
        canary_policy(canary_min_agreement=1.5)
    assert canary_policy() == {k: rule["default"] for k, rule in CANARY_LIMITS.items()}
