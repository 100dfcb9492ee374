"""Deploy targets: the contract (:mod:`.base`) and one module per built-in target (``local``,
``kserve``, ``sagemaker``), each registered through the ``airflow_mlops_provider.deploy_targets``
entry-point group like a target from any other package.

.. code-block:: python

    from airflow_mlops_provider.deploy import DeployTarget, DeployLane, DeployProbe, get_deploy_target
"""

from __future__ import annotations

from airflow_mlops_provider.deploy.base import (
    ENTRY_POINT_GROUP,
    SERVING_KEYS,
    VERIFY_DEFAULTS,
    VERIFY_SCHEMA,
    DeployLane,
    DeployProbe,
    DeployTarget,
    deploy_target_names,
    get_deploy_target,
    register_deploy_target,
    resource_name,
    serving_everywhere,
    serving_row,
    unregister_deploy_target,
)

__all__ = ["ENTRY_POINT_GROUP", "SERVING_KEYS", "VERIFY_DEFAULTS", "VERIFY_SCHEMA", "DeployLane", "DeployProbe",
           "DeployTarget", "deploy_target_names", "get_deploy_target", "register_deploy_target", "resource_name",
           "serving_everywhere", "serving_row", "unregister_deploy_target"]
