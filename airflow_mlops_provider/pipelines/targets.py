"""Deploy targets, as the pipeline builders see them: a re-export of the contract in
:mod:`airflow_mlops_provider.deploy.base` (kept for existing imports).

A target is registered through the entry-point group ``airflow_mlops_provider.deploy_targets``
(docs/pipelines.md, "Write a deploy target in your own package"), or at runtime with
:func:`register_deploy_target`.
"""

from __future__ import annotations

from airflow_mlops_provider.deploy.base import (
    VERIFY_DEFAULTS,
    VERIFY_SCHEMA,
    DeployLane,
    DeployTarget,
    deploy_target_names,
    get_deploy_target,
    register_deploy_target,
    resource_name,
    unregister_deploy_target,
)

__all__ = ["VERIFY_DEFAULTS", "VERIFY_SCHEMA", "DeployLane", "DeployTarget", "deploy_target_names",
           "get_deploy_target", "register_deploy_target", "resource_name", "unregister_deploy_target"]
