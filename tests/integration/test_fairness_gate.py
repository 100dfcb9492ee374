"""Bias metrics in the promotion gate, with the real operators, MLflow (sqlite store) and fairlearn.

A fair champion is trained on the demo data with a sensitive attribute ``region``. The
challenger is trained on data where region B's labels are flipped. With ``region`` as a
feature, the challenger learns the flip. On its own holdout its roc_auc and accuracy are as
good as the champion's, so a policy on accuracy alone promotes it. The group metrics (fairlearn
``MetricFrame`` on the same holdout rows) show the bias, and a rule on
``demographic_parity_difference`` rejects it with the reason in the ledger.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from airflow_mlops_provider.core.demo_data import TARGET, generate

pytestmark = [pytest.mark.integration]

MODEL = "fair-fraud"
BINARY_FLOORS = [{"name": "roc_auc", "direction": "higher", "floor": 0.7, "max_regression": 0.05}]
GATE = [*BINARY_FLOORS, {"name": "demographic_parity_difference", "direction": "lower", "floor": 0.1,
                         "max_regression": 0.02}]


def _context(task_id: str) -> dict:
    ti = types.SimpleNamespace(dag_id="fairness", run_id=f"manual__{task_id}", task_id=task_id, try_number=1,
                               map_index=-1, xcom_push=lambda key, value: None)
    return {"ti": ti, "dag_run": None, "dag": None}


def _data(seed: int, flip_region_b: bool):
    frame = generate(4000, seed=seed)
    rng = np.random.default_rng(seed)
    frame["region"] = rng.choice(["A", "B"], size=len(frame))
    if flip_region_b:
        in_b = frame["region"] == "B"
        frame.loc[in_b, TARGET] = 1 - frame.loc[in_b, TARGET]
    return frame


def _train(path, task_id: str) -> dict:
    from airflow_mlops_provider.operators.registry import MlflowRegisterModelOperator
    from airflow_mlops_provider.operators.training import MlflowTrainModelOperator
    from dags.fraud_model import train_fraud_model

    trained = MlflowTrainModelOperator(
        task_id=task_id, train_callable=train_fraud_model, data_path=str(path), target=TARGET,
        experiment_name=f"{MODEL}-training", id_columns=["transaction_id"], train_params={"max_iter": 60},
        pip_requirements=["scikit-learn", "skops"]).execute(_context(task_id))
    return MlflowRegisterModelOperator(task_id=f"register_{task_id}", name=MODEL, run_id=trained["run_id"],
                                       alias="challenger").execute(_context(f"register_{task_id}"))


def _decide(challenger: dict, metrics: list[dict], task_id: str, sensitive=("region",)) -> dict:
    from airflow_mlops_provider.operators.registry import MlflowCompareChallengerOperator

    return MlflowCompareChallengerOperator(
        task_id=task_id, name=MODEL, challenger=challenger, policy={"metrics": metrics}, target=TARGET,
        sensitive_features=list(sensitive)).execute(_context(task_id))


def test_a_biased_challenger_passes_on_accuracy_and_is_rejected_on_demographic_parity(mlops_home):
    from airflow_mlops_provider.core import ledger
    from airflow_mlops_provider.core.settings import mlops_home as settings
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    home = settings().ensure()
    fair_path, biased_path = home.data_dir / "fair.parquet", home.data_dir / "biased.parquet"
    _data(1, flip_region_b=False).to_parquet(fair_path, index=False)
    _data(2, flip_region_b=True).to_parquet(biased_path, index=False)

    fair = _train(fair_path, "train_fair")
    first = _decide(fair, GATE, "decide_fair")
    assert first["verdict"] == "promote", first["reasons"]
    assert first["challenger_metrics"]["demographic_parity_difference"] <= 0.1
    client = MlflowHook().client
    client.set_registered_model_alias(MODEL, "champion", fair["version"])

    biased = _train(biased_path, "train_biased")
    # Judged on accuracy alone, the biased challenger is as good as the champion: promoted.
    accuracy_only = _decide(biased, BINARY_FLOORS, "decide_accuracy_only")
    assert accuracy_only["verdict"] == "promote", accuracy_only["reasons"]
    # With the group metric in the gate: rejected, and the reason names it.
    gated = _decide(biased, GATE, "decide_gated")
    assert gated["verdict"] == "rejected"
    reasons = " ".join(gated["reasons"])
    assert "demographic_parity_difference" in reasons, gated["reasons"]
    assert gated["challenger_metrics"]["demographic_parity_difference"] > 0.5
    assert gated["champion_metrics"]["demographic_parity_difference"] <= 0.1  # the champion on the same rows

    record = [r for r in ledger.read(home.ledger_path) if r.get("event") == "decision"][-1]
    assert record["verdict"] == "rejected" and "demographic_parity_difference" in " ".join(record["reasons"])
    groups = record["fairness"]["challenger"]["groups"]["selection_rate"]
    assert set(groups) == {"A", "B"} and groups["B"] - groups["A"] > 0.5
    assert record["fairness"]["sensitive_features"] == ["region"]
    tag = json.loads(client.get_model_version(MODEL, biased["version"]).tags["mlops.fairness"])
    assert tag["metrics"]["demographic_parity_difference"] == pytest.approx(
        gated["challenger_metrics"]["demographic_parity_difference"])
    run = client.get_run(biased["run_id"])
    assert "fairness.demographic_parity_difference" in run.data.metrics


def test_a_missing_sensitive_column_is_named(mlops_home):
    from airflow_mlops_provider.core.fairness import FairnessError
    from airflow_mlops_provider.core.settings import mlops_home as settings

    home = settings().ensure()
    path = home.data_dir / "plain.parquet"
    generate(2000, seed=3).to_parquet(path, index=False)
    challenger = _train(path, "train_plain")
    with pytest.raises(FairnessError, match=r"sensitive column\(s\) \['region'\] are not in challenger"):
        _decide(challenger, GATE, "decide_missing", sensitive=("region",))
