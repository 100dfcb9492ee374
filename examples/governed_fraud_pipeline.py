"""A governed fraud model: a model card per version, slice rules and a significance rule at the gate.

Every challenger gets a model card (JSON + HTML on its MLflow version) at the promotion gate.
This model also declares slices of its holdout and a policy that judges them, and asks that an
improvement on ROC AUC be significant (paired bootstrap on the same holdout rows).
"""

from __future__ import annotations

from airflow_mlops_provider.pipelines import ModelConfig, retraining_dag


def train_fraud_model(X, y, **params):
    """Gradient-boosted trees behind a one-hot encoder (the demo's fraud model)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = [c for c in X.columns if X[c].dtype == object]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
                            remainder="passthrough")
    return Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier(random_state=0, **params))]).fit(X, y)


GOVERNED = ModelConfig(
    name="fraud-detector-governed",
    task_type="binary",
    target="is_fraud",
    id_columns=["transaction_id"],
    train=train_fraud_model,
    data_path="transactions.parquet",
    # Identity on the card.
    owner="fraud-analytics team",
    intended_use="Rank card transactions by fraud risk for analyst review.",
    out_of_scope_uses=["Declining a payment without human review"],
    limitations=["Trained on synthetic data"],
    # One slice per merchant category, and three amount ranges: [0, 20), [20, 100), [100, ∞).
    slices=[{"column": "merchant_category"}, {"column": "amount", "bins": [0, 20, 100, None]}],
    policy={
        "metrics": [
            {"name": "roc_auc", "floor": 0.7, "max_regression": 0.01, "require_significant_improvement": True},
            {"name": "log_loss", "max_regression": 0.02},
        ],
        # Intervals on every gate metric: 1000 resamples of the holdout rows, seeded.
        "bootstrap": {"resamples": 1000, "seed": 0, "confidence": 0.95},
        # Each slice of at least 100 rows: AUC at least 0.6, and at most 0.05 below the champion's.
        "slices": {"min_rows": 100, "metrics": [{"name": "roc_auc", "floor": 0.6, "max_regression": 0.05}]},
    },
)

retrain = retraining_dag(GOVERNED, dag_id="fraud_governed_retrain")
