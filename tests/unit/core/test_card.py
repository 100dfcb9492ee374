"""The model card document and its self-contained HTML page, from real gate evidence on synthetic rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from airflow_mlops_provider.core.bootstrap import BootstrapSpec
from airflow_mlops_provider.core.card import build_card, gate_evidence, label_balance, render_html
from airflow_mlops_provider.core.policy import PromotionPolicy
from airflow_mlops_provider.core.tasks import binary_metrics


def _evidence(plots: bool = True):
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n)
    good = np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)
    worse = np.clip(y * 0.1 + rng.random(n) * 0.9, 0, 1)
    holdout = pd.DataFrame({"label": y, "region": rng.choice(["A", "B"], n), "amount": rng.exponential(50, n)})
    raw = {"challenger": np.column_stack([1 - worse, worse]), "champion": np.column_stack([1 - good, good])}
    evidence = gate_evidence("binary", holdout, "label", raw, {"challenger": [0, 1], "champion": [0, 1]},
                             bootstrap_spec=BootstrapSpec(resamples=100, seed=1),
                             slices=[{"column": "region"}, {"column": "amount", "bins": [0, 50, None]}],
                             slice_metrics=["roc_auc"], sensitive_features=["region"], plots=plots)
    return holdout, y, good, worse, evidence


def _card(evidence, holdout, y, good, worse):
    policy = PromotionPolicy.from_dict({"metrics": [{"name": "roc_auc", "direction": "higher", "max_regression": 0.01}],
                                        "slices": {"min_rows": 10, "metrics": [{"name": "roc_auc",
                                                                                 "max_regression": 0.01}]}})
    mine, theirs = binary_metrics(y, worse), binary_metrics(y, good)
    decision = policy.decide(mine, theirs, eval_rows=len(y), evidence=evidence)
    return build_card(identity={"name": "m", "version": "2", "task_type": "binary", "owner": "team <a>",
                                "intended_use": "testing", "out_of_scope_uses": [], "limitations": ["synthetic"]},
                      training_data={"data.md5": "abc", "holdout_rows": len(y),
                                     "label_balance": label_balance(holdout["label"], True)},
                      decision=decision.to_dict(), metrics={"challenger": mine, "champion": theirs},
                      evidence=evidence, fairness={"sensitive_features": ["region"],
                                                   "challenger": {"version": "2", "metrics": {}, "groups": {}}},
                      history=[{"event": "promoted", "challenger_version": "1", "model": "m", "secret": "x"}],
                      policy=policy.to_dict(), champion_version="1", eval_rows=len(y)), decision


def test_card_holds_both_sides_with_intervals_slices_fairness_plots_and_history():
    holdout, y, good, worse, evidence = _evidence()
    card, decision = _card(evidence, holdout, y, good, worse)
    assert not decision.promote and decision.reasons[0].startswith("roc_auc: challenger")
    json.dumps(card, allow_nan=False)  # strict JSON
    ev = card["evaluation"]
    for side in ("challenger", "champion"):
        assert ev["metrics"][side]["roc_auc"]["low"] < ev["metrics"][side]["roc_auc"]["value"]
    assert ev["gains"]["roc_auc"]["high"] < 0
    assert [s["slice"] for s in card["slices"]] == ["region=A", "region=B", "amount in [0, 50)", "amount in [50, ∞)"]
    assert card["fairness"]["sides"]["challenger"]["metrics"]["demographic_parity_difference"]["low"] is not None
    assert set(card["plots"]) == {"roc", "precision_recall", "calibration", "confusion_matrix"}
    assert card["history"] == [{"event": "promoted", "challenger_version": "1"}]  # only the listed fields
    assert card["training_data"]["label_balance"]["1"]["share"] == float(np.mean(y))
    page = render_html(card)
    assert page.count("<img") == 4 and "<script" not in page
    assert "team &lt;a&gt;" in page  # escaped
    assert "region=A" in page and "not computed" in page and "REJECTED" in page


def test_explanations_are_rendered_when_the_gate_adds_them():
    holdout, y, good, worse, evidence = _evidence(plots=False)
    evidence["explanations"] = {"method": "shap.TreeExplainer", "rows": 200,
                                "features": {"amount": 0.12, "region": 0.4}, "shift": {"amount": -0.02}}
    card, _ = _card(evidence, holdout, y, good, worse)
    assert card["explanations"]["features"] == {"amount": 0.12, "region": 0.4}
    page = render_html(card)
    assert "shap.TreeExplainer" in page and "not computed" not in page
    assert page.index("<td>region</td>") < page.index("<td>amount</td>")  # largest attribution first


def test_cards_section_links_every_version_with_a_card():
    from airflow_mlops_provider.ui.cards import cards_section

    html = cards_section({"name": "fraud detector", "cards": [{"version": "3", "verdict": "rejected"},
                                                              {"version": "2", "verdict": "promote"}]}, "/mlops")
    assert "href='/mlops/models/fraud%20detector/versions/3/card'" in html
    assert "(rejected)" in html and "v2</a>" in html
    assert "No model cards yet" in cards_section({"name": "m"}, "/mlops")
