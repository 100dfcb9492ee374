"""One deploy target's lane built alone in a DAG, for the target and conformance tests."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup

from airflow_mlops_provider.deploy.base import get_deploy_target


def lane_of(name: str):
    """(target, dag, lane) for the registered target ``name``, its config read from ``params.<name>``."""
    target = get_deploy_target(name)
    with DAG(f"lane_{name}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
        register = EmptyOperator(task_id="register_challenger")
        with TaskGroup(name):
            lane = target.lane(config=f"params.{name}", model_name="{{ params.model_name }}",
                               model_version=register.output["version"], challenger=register.output)
    return target, dag, lane
