"""The scheduler-side pool guard: which pools a retraining DAG's promotions need, and what it says."""

from __future__ import annotations

from airflow_mlops_provider.listeners.promotion_pool import missing_pool_message, pools_needed
from airflow_mlops_provider.pipelines import PROMOTION_POOL, ModelConfig, retraining_dag


def train(X, y, **params):  # never called here
    raise AssertionError


def config(**overrides) -> ModelConfig:
    return ModelConfig(**{"name": "house-prices", "task_type": "regression", "target": "price", "train": train,
                          "data_path": "data/houses.parquet", **overrides})


def test_every_promotion_of_the_retraining_dag_needs_the_promotion_pool():
    dag = retraining_dag(config(), dag_id="houses_guard")
    needed = pools_needed(dag.tasks)
    pooled = {t.task_id for t in dag.tasks if t.pool == PROMOTION_POOL}
    assert list(needed) == [PROMOTION_POOL] and set(needed[PROMOTION_POOL]) == pooled and "promote" in pooled
    # Without a promotion pool the promotions run in Airflow's default pool, which always exists.
    free = pools_needed(retraining_dag(config(promotion_pool=None), dag_id="houses_guard_free").tasks)
    assert list(free) == ["default_pool"]


def test_the_message_names_the_pool_the_tasks_and_the_commands():
    message = missing_pool_message({PROMOTION_POOL: ["promote", "local.promote"]})
    assert f"pool {PROMOTION_POOL!r} does not exist (tasks local.promote, promote would never be scheduled)" in message
    assert "airflow-mlops init" in message and f"airflow pools set {PROMOTION_POOL} 1" in message
