"""What every pipeline builder shares: the DAG checks, the daily DAG, the path macros and limits.

The builders (``retraining``, ``batch``, ``monitoring``) import these as siblings; none of them
imports another builder for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_mlops_provider.pipelines.config import ModelConfig

PATH_MAX_LENGTH = 4096
ALIAS_PATTERN = "^([A-Za-z_][A-Za-z0-9_-]*)?$"  # an MLflow alias (or empty)


#: The JSON Schema dialect every builder's Param declares. Airflow validates each Param (and the
#: schema itself, against the dialect's meta-schema) every time it serializes a task, and every task
#: carries its DAG's params: with the default dialect (2020-12, whose meta-schema resolves
#: ``$dynamicRef``) that was about 11 of the 18 s of an ``airflow dags test`` of the example DAGs.
#: Draft-07's meta-schema checks the same keywords about four times faster.
PARAM_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"


def param(default: Any, *, description: str | None = None, schema: dict[str, Any] | None = None,
          **keywords: Any) -> Any:
    """An ``airflow.sdk.Param`` whose schema (the JSON Schema keywords, then ``schema``) declares draft-07."""
    from airflow.sdk import Param

    body = {**keywords, **(schema or {})}
    body.setdefault("$schema", PARAM_SCHEMA_DIALECT)
    return Param(default, description=description, schema=body)


def _home() -> str:
    from airflow_mlops_provider.core.settings import mlops_home

    return str(mlops_home().root)


#: ``mlops_home()`` for the default path templates (``MLOPS_HOME`` read when a task renders).
BATCH_MACROS: dict[str, Any] = {"mlops_home": _home}


def check_dag(first_task: Any, builder: str, params: dict[str, Any], params_fn: str, dag_fn: str) -> Any:
    """The DAG a builder adds to, checked for what the builder's templates need."""
    dag = getattr(first_task, "dag", None) if getattr(first_task, "has_dag", lambda: True)() else None
    if dag is None:
        raise RuntimeError(f"{builder}() must be called inside a `with DAG(...)` block")
    if not dag.render_template_as_native_obj:
        raise ValueError(f"DAG {dag.dag_id!r}: {builder} needs render_template_as_native_obj=True (the policy and "
                         f"configs are objects, not strings); or use {dag_fn}()")
    missing = sorted(set(params) - set(dag.params))
    if missing:
        raise ValueError(f"DAG {dag.dag_id!r} lacks the Params {missing}: pass params={params_fn}(model)")
    return dag


def check_macros(dag: Any, *paths: str) -> None:
    """A path template that calls ``mlops_home()`` needs :data:`BATCH_MACROS` on the DAG."""
    if "mlops_home" not in (dag.user_defined_macros or {}) and any("mlops_home()" in p for p in paths):
        raise ValueError(f"DAG {dag.dag_id!r}: pass user_defined_macros=BATCH_MACROS (the paths use mlops_home())")


def connection_defaults(model: ModelConfig, dag_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``default_args`` with the model's connection ids (``ModelConfig.connections``) under the
    caller's own ``default_args`` (which win); pops ``default_args`` from ``dag_kwargs``."""
    return {**model.connections.default_args(), **(dag_kwargs.pop("default_args", None) or {})}


def daily_dag(model: ModelConfig, *, dag_id: str, description: str, schedule: Any, start_date: datetime | None,
              doc_md: str, tags: list[str], params: dict[str, Any], **dag_kwargs: Any) -> Any:
    """The DAG the cron-scheduled builders share: UTC cron (or a timetable), no catchup, one run at
    a time, native rendering, :data:`BATCH_MACROS` and the model's connection ids as ``default_args``;
    the caller adds the tasks inside ``with``."""
    from airflow.sdk import DAG, CronTriggerTimetable

    return DAG(
        dag_id=dag_id, description=description,
        schedule=CronTriggerTimetable(schedule, timezone="UTC") if isinstance(schedule, str) else schedule,
        start_date=start_date or datetime(2026, 1, 1),
        catchup=dag_kwargs.pop("catchup", False),
        max_active_runs=dag_kwargs.pop("max_active_runs", 1),
        render_template_as_native_obj=True,
        user_defined_macros={**BATCH_MACROS, **dag_kwargs.pop("user_defined_macros", {})},
        default_args=connection_defaults(model, dag_kwargs),
        tags=tags, doc_md=doc_md, params=params, **dag_kwargs,
    )
