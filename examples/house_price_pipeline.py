"""A regression model trained with LightGBM's own API and logged with ``mlflow.lightgbm``.

Any MLflow flavor works: set ``flavor`` and return the flavor's model from the training callable;
scoring, serving checks and drift go through pyfunc.
"""

from __future__ import annotations

from airflow_mlops_provider.pipelines import ModelConfig, batch_scoring_dag, retraining_dag


def train_house_prices(X, y, num_boost_round=200, learning_rate=0.05, shuffle_labels=False):
    """A LightGBM Booster (``lgb.train``), not a scikit-learn estimator."""
    import lightgbm as lgb

    if shuffle_labels:  # a deliberately weakened model: labels no longer match the rows
        y = y.sample(frac=1.0, random_state=0).to_numpy()
    params = {"objective": "regression", "learning_rate": learning_rate, "num_leaves": 15, "verbose": -1,
              "seed": 0, "deterministic": True, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=num_boost_round)


HOUSES = ModelConfig(
    name="house-prices",
    task_type="regression",
    target="price",
    id_columns=["house_id"],
    train=train_house_prices,
    flavor="lightgbm",
    train_params={"num_boost_round": 200, "learning_rate": 0.05},
    data_path="houses.parquet",
    pip_requirements=["lightgbm", "numpy", "scipy", "pandas"],
)

retrain = retraining_dag(HOUSES, dag_id="house_price_retrain")
score = batch_scoring_dag(HOUSES, dag_id="house_price_batch_inference")
