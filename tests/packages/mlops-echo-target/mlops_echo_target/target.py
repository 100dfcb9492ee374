"""The ``echo`` target: its config, its lane, and what serves where."""

from __future__ import annotations

from typing import Any

from airflow_mlops_provider.deploy import VERIFY_DEFAULTS, VERIFY_SCHEMA, DeployLane, DeployTarget
from mlops_echo_target.state import read_state, state_path


def lane(*, config: str, model_name: Any, model_version: Any, challenger: Any) -> DeployLane:
    from airflow_mlops_provider.operators.deploy import config_field
    from mlops_echo_target.operators import EchoDeployOperator, EchoPromoteOperator, EchoRollbackOperator
    from mlops_echo_target.verify import EchoVerifyOperator

    wait = {"model_name": model_name, "timeout": config_field(config, "ready_timeout_s"),
            "poll_interval": config_field(config, "poll_interval_s")}
    deploy = EchoDeployOperator(task_id="deploy", model_version=model_version, **wait)
    verify = EchoVerifyOperator.from_config(config, deployment=deploy.output, challenger=challenger)
    promote = EchoPromoteOperator(task_id="promote_traffic", **wait)
    rollback = EchoRollbackOperator(task_id="rollback", alias="champion", **wait)
    return DeployLane(deploy=deploy, verify=verify, rollback=rollback, promote_traffic=promote)


def serving(model_name: str) -> list[dict[str, Any]]:
    from airflow_mlops_provider.deploy import serving_row

    state, where = read_state(model_name), str(state_path(model_name))
    return [serving_row("echo", resource=where, role=role, version=state[role], traffic_percent=share)
            for role, share in (("live", 100), ("candidate", 0)) if state.get(role)]


TARGET = DeployTarget(
    name="echo", description="Records the served version in a JSON file (a plug-in example)",
    defaults={"ready_timeout_s": 5, "poll_interval_s": 0.1, **VERIFY_DEFAULTS},
    schema={"ready_timeout_s": {"type": "number", "exclusiveMinimum": 0},
            "poll_interval_s": {"type": "number", "exclusiveMinimum": 0}, **VERIFY_SCHEMA},
    lane=lane, serving=serving)
