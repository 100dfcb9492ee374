"""Pipeline builders: a model config in, a retraining / batch-scoring / performance-monitoring
pipeline out.

.. code-block:: python

    from airflow_mlops_provider.pipelines import ModelConfig, retraining_dag, batch_scoring_dag

Names resolve lazily so that importing this package in a DAG file stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ModelConfig": "airflow_mlops_provider.pipelines.config",
    "PROMOTION_POOL": "airflow_mlops_provider.pipelines.config",
    "retraining_dag": "airflow_mlops_provider.pipelines.retraining",
    "retraining_pipeline": "airflow_mlops_provider.pipelines.retraining",
    "retraining_params": "airflow_mlops_provider.pipelines.retraining",
    "retraining_schedule": "airflow_mlops_provider.pipelines.retraining",
    "deployment_lane": "airflow_mlops_provider.pipelines.retraining",
    "batch_scoring_dag": "airflow_mlops_provider.pipelines.batch",
    "batch_scoring_pipeline": "airflow_mlops_provider.pipelines.batch",
    "batch_scoring_params": "airflow_mlops_provider.pipelines.batch",
    "BATCH_MACROS": "airflow_mlops_provider.pipelines.batch",
    "performance_monitoring_dag": "airflow_mlops_provider.pipelines.monitoring",
    "performance_monitoring_pipeline": "airflow_mlops_provider.pipelines.monitoring",
    "performance_monitoring_params": "airflow_mlops_provider.pipelines.monitoring",
    "online_monitoring_dag": "airflow_mlops_provider.pipelines.online",
    "online_monitoring_pipeline": "airflow_mlops_provider.pipelines.online",
    "online_monitoring_params": "airflow_mlops_provider.pipelines.online",
    "online_scores_path": "airflow_mlops_provider.pipelines.online",
    "ONLINE_LABELS_PATH": "airflow_mlops_provider.pipelines.online",
    "rollback_dag": "airflow_mlops_provider.pipelines.history",
    "rollback_pipeline": "airflow_mlops_provider.pipelines.history",
    "rollback_params": "airflow_mlops_provider.pipelines.history",
    "alias_audit_dag": "airflow_mlops_provider.pipelines.history",
    "DeployTarget": "airflow_mlops_provider.deploy.base",
    "DeployLane": "airflow_mlops_provider.deploy.base",
    "register_deploy_target": "airflow_mlops_provider.deploy.base",
    "get_deploy_target": "airflow_mlops_provider.deploy.base",
    "deploy_target_names": "airflow_mlops_provider.deploy.base",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
