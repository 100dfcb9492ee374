"""Fail a run at its start when its promotion tasks name a pool that does not exist.

Airflow never schedules a task whose pool is missing: it logs a warning in the scheduler and the
task waits in ``scheduled`` forever, after the whole pipeline has trained, evaluated and deployed.
No task can look pools up (Airflow 3 blocks the metadata DB in task and DAG-parsing processes,
and the execution API has no pool route), so the check runs in the scheduler, the one process
that starts runs and knows the pools: when a run of a DAG holding ``MlflowPromoteModelOperator``
tasks starts, a missing pool fails that run at once, with a note naming the pool, the tasks and
the command that creates it. Registered by the provider's plugin
(:class:`airflow_mlops_provider.ui.plugin.MlopsModelsPlugin`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)
PROMOTION_OPERATORS = frozenset({"MlflowPromoteModelOperator"})


def pools_needed(tasks: Iterable[Any]) -> dict[str, list[str]]:
    """The pools the promotion tasks run in, with their task ids."""
    needed: dict[str, list[str]] = {}
    for task in tasks:
        if getattr(task, "task_type", None) in PROMOTION_OPERATORS and getattr(task, "pool", None):
            needed.setdefault(task.pool, []).append(task.task_id)
    return needed


def missing_pool_message(missing: dict[str, list[str]]) -> str:
    parts = [f"pool {pool!r} does not exist (tasks {', '.join(sorted(ids))} would never be scheduled)"
             for pool, ids in sorted(missing.items())]
    commands = "; ".join(f'airflow pools set {pool} 1 "champion promotions, one at a time"' for pool in sorted(missing))
    return (f"Run failed at start: {'; '.join(parts)}. Create it with `airflow-mlops init` "
            f"(or `airflow mlops init`, or: {commands}), then trigger the run again.")


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    dag = getattr(dag_run, "dag", None)
    needed = pools_needed(dag.tasks) if dag is not None else {}
    if not needed:
        return
    from airflow.models.pool import Pool
    from airflow.utils.state import DagRunState
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:
        return
    existing = set(session.scalars(select(Pool.pool).where(Pool.pool.in_(list(needed)))))
    missing = {pool: ids for pool, ids in needed.items() if pool not in existing}
    if not missing:
        return
    message = missing_pool_message(missing)
    log.error("%s: %s", dag_run.run_id, message)
    dag_run.note = message
    dag_run.set_state(DagRunState.FAILED)
