"""The shipped example model: card-fraud detection (binary), shared by the fraud DAGs.

Everything specific to this model lives here — its training code, the expectations its
training data must meet, its serving requirements and deploy names; the DAG files are one
builder call each. Data: ``airflow_mlops_provider.core.demo_data.generate`` (seeded, with
normal, drifted, noisy and corrupt days).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import conf

from airflow_mlops_provider.core.demo_data import CATEGORIES, FEATURES, ID_COLUMN, TARGET
from airflow_mlops_provider.pipelines.config import ModelConfig

MODEL_NAME = "fraud-detector"
# Per deployment, in airflow.cfg (or AIRFLOW__MLOPS_EXAMPLE__*): where an accepted challenger of a
# scheduled or event-triggered retrain is deployed (`none` or a registered target; `make demo` sets
# `local`), the weekly retrain's cron (empty: asset events only; `make demo` sets it empty) and the
# nightly scoring's cron (empty: manual and API-triggered runs only).
DEPLOY_TARGET = conf.get("mlops_example", "deploy_target", fallback="none")
RETRAIN_CRON = conf.get("mlops_example", "retrain_cron", fallback="0 3 * * 0") or None
BATCH_CRON = conf.get("mlops_example", "batch_cron", fallback="0 2 * * *") or None
# Online traffic (dags/mlops_online_monitoring.py): where the serving side captures requests and
# responses, in which format (`cloudevents`: KServe's inference logger sink or the local target's
# capture; `sagemaker`: the Data Capture destination), and the daily cron (empty: triggered only).
CAPTURE_FORMAT = conf.get("mlops_example", "capture_format", fallback="cloudevents")
CAPTURE_PATH = conf.get("mlops_example", "capture_path", fallback="") or "{{ mlops_home() }}/capture/" + MODEL_NAME
ONLINE_CRON = conf.get("mlops_example", "online_cron", fallback="30 0 * * *") or None

TRAINING_SUITE: dict[str, Any] = {
    "name": "transactions_training",
    "expectations": [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": [ID_COLUMN, *FEATURES, TARGET], "exact_match": True}, "severity": "critical"},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 500}, "severity": "critical"},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": ID_COLUMN}, "severity": "critical"},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}, "severity": "critical"},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0},
         "severity": "critical"},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "hour", "min_value": 0, "max_value": 23},
         "severity": "critical"},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": TARGET, "value_set": [0, 1]},
         "severity": "critical"},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "merchant_category", "value_set": CATEGORIES}, "severity": "warning"},
        {"type": "expect_column_mean_to_be_between",
         "kwargs": {"column": TARGET, "min_value": 0.01, "max_value": 0.6}, "severity": "warning"},
    ],
}



def train_fraud_model(X, y, **params):
    """The user's training code: gradient-boosted trees behind a one-hot encoder."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = [c for c in X.columns if X[c].dtype == object]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
                            remainder="passthrough")
    model = Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier(random_state=0, **params))])
    return model.fit(X, y)


FRAUD = ModelConfig(
    name=MODEL_NAME,
    task_type="binary",
    target=TARGET,
    id_columns=[ID_COLUMN],
    train=train_fraud_model,
    train_params={"max_iter": 150, "learning_rate": 0.1, "max_leaf_nodes": 31},
    data_path="transactions.parquet",
    suite=TRAINING_SUITE,
    # What the pipeline needs when it is loaded for serving (skops format); pinned at training.
    pip_requirements=["scikit-learn", "skops", "numpy", "scipy", "pandas"],
    # Late labels: retrain when roc_auc on >= 200 labelled rows falls 0.05 below the holdout's.
    decay_policy={"metrics": [{"name": "roc_auc", "max_degradation": 0.05}], "min_rows": 200,
                  "max_label_delay_days": 7},
    # The model card (written at the promotion gate on every challenger version) shows these.
    owner="fraud-analytics team",
    intended_use="Rank card transactions by fraud risk so analysts review the riskiest first.",
    out_of_scope_uses=["Blocking a card or declining a payment without human review",
                       "Credit or other decisions about a customer"],
    limitations=["Trained on synthetic demo data (core.demo_data)",
                 "Scores assume the merchant categories seen in training; a new category scores as unknown"],
    # Reported per slice (challenger and champion on the same rows, with intervals) on the model card;
    # add "slices" rules to the policy to gate on them.
    slices=[{"column": "merchant_category"}, {"column": "amount", "bins": [0, 20, 100, None]}],
    deploy_target=DEPLOY_TARGET,
)
