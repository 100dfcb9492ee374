"""A count model (daily store visits) on a task type this provider does not ship: ``count``.

Importing ``count_task_type`` registers it (a pip package would register it through the
``airflow_mlops_provider.task_types`` entry point instead); the builders and operators then
train, evaluate, gate and score it like a built-in type.
"""

from __future__ import annotations

import count_task_type  # noqa: F401 - registers the "count" task type

from airflow_mlops_provider.pipelines import ModelConfig, batch_scoring_dag, retraining_dag


def train_visits(X, y, alpha=1e-4, shuffle_labels=False):
    """One-hot region + scaled numbers -> Poisson GLM (log link: it predicts a rate > 0)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import PoissonRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if shuffle_labels:  # a deliberately weakened model: labels no longer match the rows
        y = y.sample(frac=1.0, random_state=0).to_numpy()
    numeric = [c for c in X.columns if c != "region"]
    pre = ColumnTransformer([("region", OneHotEncoder(handle_unknown="ignore"), ["region"]),
                             ("num", StandardScaler(), numeric)])
    return make_pipeline(pre, PoissonRegressor(alpha=alpha, max_iter=1000)).fit(X, y)


VISITS = ModelConfig(
    name="store-visits",
    task_type="count",
    target="visits",
    id_columns=["store_day_id"],
    train=train_visits,
    train_params={"alpha": 1e-4},
    data_path="visits.parquet",
    pip_requirements=["scikit-learn", "skops", "numpy", "scipy", "pandas"],
)

retrain = retraining_dag(VISITS, dag_id="visit_count_retrain")
score = batch_scoring_dag(VISITS, dag_id="visit_count_batch_inference")
