"""Slices, significance and the model card at the promotion gate: real operators, MLflow (sqlite store), sklearn.

One data file, so every model's holdout is the same rows (the split is seeded). The models:

- a weak champion, then a strong challenger: its gain is significant, so a policy that asks
  for a significant improvement promotes it and says so;
- a second strong model that differs only in its number of trees: its gain over the strong
  champion is within noise, so the significance rule rejects it and the reason says so;
- a challenger trained with the labels of one merchant category flipped: overall it is within
  the policy's thresholds, on the ``electronics`` slice it is far worse than the champion, so a
  slice rule rejects it naming that slice; a slice smaller than ``min_rows`` is reported, not judged.

Every decision leaves a model card (JSON + HTML) on the challenger's version.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from airflow_mlops_provider.core.demo_data import TARGET, generate

pytestmark = [pytest.mark.integration]

MODEL = "card-fraud"
SLICES = [{"column": "merchant_category", "values": ["electronics", "gaming", "grocery"]},
          {"column": "amount", "bins": [None, 20, 100, None]}]
LOOSE = [{"name": "roc_auc", "direction": "higher", "floor": 0.5, "max_regression": 0.05},
         {"name": "log_loss", "direction": "lower", "max_regression": 0.5}]
SIGNIFICANT = [{"name": "roc_auc", "direction": "higher", "floor": 0.5, "max_regression": 0.0,
                "require_significant_improvement": True}]
SLICE_RULES = {"min_rows": 60, "metrics": [{"name": "roc_auc", "max_regression": 0.05}]}


def _context(task_id: str) -> dict:
    ti = types.SimpleNamespace(dag_id="card", run_id=f"manual__{task_id}", task_id=task_id, try_number=1,
                               map_index=-1, xcom_push=lambda key, value: None)
    return {"ti": ti, "dag_run": None, "dag": None}


def train_flipping_electronics(X, y, **params):
    """The fraud model, trained with the labels of electronics purchases flipped: bad on that slice only."""
    from dags.fraud_model import train_fraud_model

    flipped = y.where(X["merchant_category"] != "electronics", 1 - y)
    return train_fraud_model(X, flipped, **params)


def _train(path: Path, task_id: str, params: dict, train_callable=None) -> dict:
    from airflow_mlops_provider.operators.registry import MlflowRegisterModelOperator
    from airflow_mlops_provider.operators.training import MlflowTrainModelOperator
    from dags.fraud_model import train_fraud_model

    trained = MlflowTrainModelOperator(
        task_id=task_id, train_callable=train_callable or train_fraud_model, data_path=str(path), target=TARGET,
        experiment_name=f"{MODEL}-training", id_columns=["transaction_id"], train_params=params,
        pip_requirements=["scikit-learn", "skops"]).execute(_context(task_id))
    return MlflowRegisterModelOperator(task_id=f"register_{task_id}", name=MODEL, run_id=trained["run_id"],
                                       alias="challenger").execute(_context(f"register_{task_id}"))


def _decide(challenger: dict, metrics: list[dict], task_id: str, slices=None, bootstrap=None) -> dict:
    from airflow_mlops_provider.operators.registry import MlflowCompareChallengerOperator

    policy = {"metrics": metrics, "bootstrap": bootstrap or {"resamples": 500, "seed": 7}}
    if slices:
        policy["slices"] = slices
    return MlflowCompareChallengerOperator(
        task_id=task_id, name=MODEL, challenger=challenger, policy=policy, target=TARGET, slices=SLICES,
        model_card={"owner": "risk-ml@example.com", "intended_use": "rank card transactions for review",
                    "out_of_scope_uses": ["credit decisions"], "limitations": ["synthetic data"]},
    ).execute(_context(task_id))


def _card(result: dict) -> tuple[dict, str]:
    import mlflow

    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    MlflowHook().activate()
    card = json.loads(mlflow.artifacts.load_text(result["card"]["json"]))
    page = mlflow.artifacts.load_text(result["card"]["html"])
    return card, page


def _setup():
    from airflow_mlops_provider.core.settings import mlops_home as settings
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    home = settings().ensure()
    path = home.data_dir / "transactions.parquet"
    generate(5000, seed=11).to_parquet(path, index=False)
    return home, path, MlflowHook().client


def test_significance_rule_promotes_a_real_gain_and_rejects_one_within_noise(mlops_home):
    home, path, client = _setup()
    weak = _train(path, "train_weak", {"max_iter": 3, "max_depth": 1, "learning_rate": 0.05})
    first = _decide(weak, LOOSE, "decide_weak")
    assert first["verdict"] == "promote", first["reasons"]
    client.set_registered_model_alias(MODEL, "champion", weak["version"])

    # A clearly better model: the paired bootstrap of the AUC gain is above 0, and the decision says so.
    strong = _train(path, "train_strong", {"max_iter": 60})
    better = _decide(strong, SIGNIFICANT, "decide_strong")
    assert better["verdict"] == "promote", better["reasons"]
    assert any("roc_auc" in r and "is significant" in r for r in better["reasons"]), better["reasons"]
    client.set_registered_model_alias(MODEL, "champion", strong["version"])

    # Nearly the same model (a few trees fewer): its gain, either way, is within noise; rejected, saying so.
    twin = _train(path, "train_twin", {"max_iter": 55})
    noisy = _decide(twin, SIGNIFICANT, "decide_twin")
    assert noisy["verdict"] == "rejected", noisy["reasons"]
    assert any("within noise" in r and "paired-bootstrap interval" in r and "includes 0" in r
               for r in noisy["reasons"]), noisy["reasons"]
    # A looser gate (no significance rule, some regression allowed) promotes the same twin.
    assert _decide(twin, LOOSE, "decide_twin_loose")["verdict"] == "promote"

    # The superseded first version keeps its own card.
    weak_card, _ = _card(first)
    assert weak_card["identity"]["version"] == weak["version"] and weak_card["evaluation"]["champion_version"] is None


def test_a_challenger_worse_on_one_slice_is_rejected_naming_it_and_the_card_shows_why(mlops_home):
    from airflow_mlops_provider.core import ledger

    home, path, client = _setup()
    strong = _train(path, "train_strong", {"max_iter": 60})
    assert _decide(strong, LOOSE, "decide_strong")["verdict"] == "promote"
    client.set_registered_model_alias(MODEL, "champion", strong["version"])

    # Worse on one slice only: overall within the loose thresholds, rejected by the slice rule, naming it.
    flipped = _train(path, "train_flipped", {"max_iter": 60}, train_callable=train_flipping_electronics)
    overall = _decide(flipped, LOOSE, "decide_flipped_overall")
    assert overall["verdict"] == "promote", overall["reasons"]
    sliced = _decide(flipped, LOOSE, "decide_flipped_sliced", slices=SLICE_RULES)
    assert sliced["verdict"] == "rejected", sliced["reasons"]
    assert len(sliced["reasons"]) == 1, sliced["reasons"]
    assert sliced["reasons"][0].startswith("slice merchant_category=electronics ("), sliced["reasons"]
    assert "roc_auc challenger" in sliced["reasons"][0] and "max_regression=0.05" in sliced["reasons"][0]
    small = [c for c in sliced["checks"] if c.get("slice") == "merchant_category=gaming"]
    assert small and not small[0]["judged"] and "reported, not judged" in small[0]["note"], small

    record = [r for r in ledger.read(home.ledger_path) if r.get("event") == "decision"][-1]
    assert record["verdict"] == "rejected" and "electronics" in record["reasons"][0]

    # The card of the rejected version: identity, both models with intervals, slices, plots, decision, history.
    card, page = _card(sliced)
    version = client.get_model_version(MODEL, flipped["version"])
    assert version.tags["mlops.card"] == sliced["card"]["html"]
    assert sliced["card"]["html"] in version.description
    assert card["identity"]["owner"] == "risk-ml@example.com"
    assert card["identity"]["out_of_scope_uses"] == ["credit decisions"]
    assert card["identity"]["task_type"] == "binary" and card["identity"]["version"] == flipped["version"]
    assert card["training_data"]["holdout_rows"] == 1000
    assert set(card["training_data"]["label_balance"]) == {"0", "1"}
    evaluation = card["evaluation"]
    assert evaluation["champion_version"] == strong["version"]
    assert evaluation["bootstrap"] == {"resamples": 500, "seed": 7, "confidence": 0.95}
    for side in ("challenger", "champion"):
        auc = evaluation["metrics"][side]["roc_auc"]
        assert auc["low"] < auc["value"] < auc["high"], auc
    assert "roc_auc" in evaluation["gains"]
    names = [s["slice"] for s in card["slices"]]
    assert names == ["merchant_category=electronics", "merchant_category=gaming", "merchant_category=grocery",
                     "amount in [-∞, 20)", "amount in [20, 100)", "amount in [100, ∞)"]
    assert sum(s["rows"] for s in card["slices"][3:]) == 1000  # the bins cover every holdout row
    electronics = card["slices"][0]
    assert electronics["metrics"]["challenger"]["roc_auc"] < electronics["metrics"]["champion"]["roc_auc"] - 0.05
    assert electronics["intervals"]["challenger"]["roc_auc"]["low"] is not None
    assert set(card["plots"]) == {"roc", "precision_recall", "calibration", "confusion_matrix"}
    assert all(uri.startswith("data:image/png;base64,") for uri in card["plots"].values())
    assert card["decision"]["verdict"] == "rejected"
    # The gate's explanations (on by default with the explain extra) go into the card's evidence.
    expl = card["explanations"]
    assert expl["version"] == flipped["version"] and expl["method"].startswith("shap")
    assert expl["features"] and all(value >= 0 for value in expl["features"].values())  # mean |attribution|
    assert expl["shift"]["against_version"] == strong["version"]
    assert [h["event"] for h in card["history"]].count("decision") == 3
    # Self-contained: the plots are inline, nothing is fetched.
    assert page.count("<img") == 4 and "src='http" not in page and "<script" not in page
    assert "merchant_category=electronics" in page and "Shift against the champion" in page and "REJECTED" in page
