"""Explanations through the real operators, MLflow (sqlite store) and shap.

Two fraud models (the example's one-hot + gradient-boosted trees pipeline) are trained and
registered; the gate judges the second against the first and returns the attributions of both
on the same holdout rows, with the shift, and logs ``explanations.json`` on the challenger's run.
Then a partition is batch-scored with ``explain_top_k=3``: every row carries three reasons.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops_provider.core.demo_data import TARGET, generate

pytestmark = [pytest.mark.integration]
pytest.importorskip("shap")

MODEL = "explained-fraud"


def _context(task_id: str) -> dict:
    ti = types.SimpleNamespace(dag_id="explain", run_id=f"manual__{task_id}", task_id=task_id, try_number=1,
                               map_index=-1, xcom_push=lambda key, value: None)
    return {"ti": ti, "dag_run": None, "dag": None}


def _train(path, task_id: str) -> dict:
    from airflow_mlops_provider.operators.registry import MlflowRegisterModelOperator
    from airflow_mlops_provider.operators.training import MlflowTrainModelOperator
    from dags.fraud_model import train_fraud_model

    trained = MlflowTrainModelOperator(
        task_id=task_id, train_callable=train_fraud_model, data_path=str(path), target=TARGET,
        experiment_name=f"{MODEL}-training", id_columns=["transaction_id"], train_params={"max_iter": 40},
        pip_requirements=["scikit-learn", "skops"]).execute(_context(task_id))
    return MlflowRegisterModelOperator(task_id=f"register_{task_id}", name=MODEL, run_id=trained["run_id"],
                                       alias="challenger").execute(_context(f"register_{task_id}"))


def test_gate_explains_both_versions_and_batch_scoring_writes_three_reasons_per_row(mlops_home):
    import mlflow

    from airflow_mlops_provider.core.settings import mlops_home as settings
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from examples.explained_scoring import gate, score_with_reasons

    home = settings().ensure()
    first_path, second_path = home.data_dir / "first.parquet", home.data_dir / "second.parquet"
    generate(3000, seed=1).to_parquet(first_path, index=False)
    generate(3000, seed=2).to_parquet(second_path, index=False)
    client = MlflowHook().client
    champion = _train(first_path, "train_first")
    client.set_registered_model_alias(MODEL, "champion", champion["version"])
    challenger = _train(second_path, "train_second")

    decision = gate(MODEL, challenger, TARGET, {"metrics": [
        {"name": "roc_auc", "direction": "higher", "floor": 0.6, "max_regression": 0.2}]}).execute(_context("decide"))
    found = decision["explanations"]
    features = ["amount", "avg_amount_30d", "card_age_days", "customer_age", "distance_km", "hour", "is_online",
                "merchant_category", "tx_count_24h"]
    assert found["version"] == challenger["version"] and found["method"] == "shap.tree" and found["rows"] == 300
    assert sorted(found["features"]) == features  # the input columns, one-hot columns summed back
    assert found["champion"]["version"] == champion["version"]
    assert sorted(found["champion"]["features"]) == features
    shift = found["shift"]
    assert shift["against_version"] == champion["version"] and 0 <= shift["top_k_overlap"] <= 1
    assert set(shift["rank_changes"]) == set(features)
    # The same data-generating process: the two versions agree on what matters.
    assert shift["rank_correlation"] > 0.5, shift
    logged = mlflow.artifacts.load_dict(f"runs:/{challenger['run_id']}/explanations.json")
    assert logged == json.loads(json.dumps(found))

    src = home.data_dir / "incoming.parquet"
    out = home.root / "outputs" / "scored.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    partition = generate(5000, seed=7).drop(columns=[TARGET])
    pq.write_table(pa.Table.from_pandas(partition, preserve_index=False), src, row_group_size=2000)
    result = score_with_reasons(MODEL, challenger["version"], str(src), str(out)).execute(_context("score"))
    reasons = [f"reason_{i}_{part}" for i in (1, 2, 3) for part in ("feature", "contribution")]
    assert result["rows"] == 5000 and result["output_columns"] == ["score", *reasons]
    assert result["reason_codes"]["top_k"] == 3 and result["reason_codes"]["method"] == "shap.tree"
    table = pq.read_table(out).to_pandas()
    assert len(table) == 5000 and table["transaction_id"].tolist() == partition["transaction_id"].tolist()
    for i in (1, 2, 3):
        assert table[f"reason_{i}_feature"].isin(features).all()
        assert np.isfinite(table[f"reason_{i}_contribution"]).all()
    assert (table[[f"reason_{i}_feature" for i in (1, 2, 3)]].nunique(axis=1) == 3).all()
    mags = table[[f"reason_{i}_contribution" for i in (1, 2, 3)]].abs().to_numpy()
    assert (np.diff(mags, axis=1) <= 1e-12).all()
