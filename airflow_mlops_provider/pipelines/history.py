"""Acting on history: the rollback DAG (one click in the Models view) and the alias-audit DAG.

``rollback_dag(model, dag_id=...)``: ``reconcile_aliases`` → ``plan`` (what ``@champion`` goes
back to: a version given, else the last good champion) → ``rollback_champion`` (the promote
operator: compare-and-set under the promotion lock and pool, ledger record
``champion_rolled_back`` naming who triggered the run and why) → ``route`` → the own rollback
step ``<target>.rollback`` of each deploy target where the model was live (Param
``deploy_target``: ``auto``, or one target, or ``none``): serving goes back to what ``@champion``
names; else ``no_serving``. Its tag ``rollback:<model>`` is how the Models view finds it.

``alias_audit_dag(model, dag_id=...)``: ``reconcile_aliases`` on a schedule (hourly by default),
so an alias moved in MLflow's UI or with a client is recorded even when no pipeline runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_mlops_provider.deploy.base import get_deploy_target
from airflow_mlops_provider.pipelines.config import ModelConfig

ROLLBACK_TAG_PREFIX = "rollback:"


def rollback_tag(model_name: str) -> str:
    """The DAG tag that marks ``model_name``'s rollback DAG (the Models view looks it up)."""
    return f"{ROLLBACK_TAG_PREFIX}{model_name}"[:100]


def rollback_params(model: ModelConfig) -> dict[str, Any]:
    from airflow_mlops_provider.pipelines.common import param

    params: dict[str, Any] = {
        "to_version": param("", type="string", pattern=r"^(v?[0-9]+)?$", maxLength=12,
                            description="The version @champion goes back to; empty: the last good champion"),
        "reason": param("", type="string", maxLength=500, description="Why (recorded in the audit ledger)"),
        "deploy_target": param("auto", enum=["auto", "none", *model.lanes],
                               description="Where serving goes back to the restored champion (auto: every "
                                           "target where the model is live now)"),
    }
    for name in model.lanes:
        target = get_deploy_target(name)
        params[name] = param(target.defaults_for(model.name, model.deploy_config.get(name)), type="object",
                             schema=target.param_schema(), description=target.description)
    return params


def _rollback_step(target_name: str, model: ModelConfig) -> Any:
    """The deploy target's own rollback step (what its lane rolls back with), alone in a TaskGroup
    named after the target: the contract builds a lane as a whole, so the lane's other steps are
    dropped before any task depends on them (none of them is upstream of the rollback)."""
    from airflow.sdk import TaskGroup

    target = get_deploy_target(target_name)
    with TaskGroup(group_id=target.name, tooltip=target.description) as group:
        lane = target.lane(config=f"params.{target.name}", model_name=model.name, model_version="@champion",
                           challenger={"name": model.name, "version": "@champion"})
    dag = lane.rollback.dag
    dropped = [op for op in (lane.deploy, lane.verify, lane.promote_traffic) if op is not None]
    for op in dropped:
        for other in [*op.upstream_list, *op.downstream_list]:
            other.upstream_task_ids.discard(op.task_id)
            other.downstream_task_ids.discard(op.task_id)
        dag.task_dict.pop(op.task_id, None)
        group.children.pop(op.task_id, None)
    if lane.rollback.upstream_task_ids:
        raise ValueError(f"deploy target {target_name!r}: its rollback step depends on other lane steps "
                         f"{sorted(lane.rollback.upstream_task_ids)}; it cannot run alone")
    return lane.rollback


def rollback_pipeline(model: ModelConfig) -> dict[str, Any]:
    """Add the rollback tasks for ``model`` to the DAG being defined (``params=rollback_params(model)``,
    ``render_template_as_native_obj=True``); returns them by name."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import task

    from airflow_mlops_provider.operators.history import (
        MlflowPlanRollbackOperator,
        MlflowReconcileAliasesOperator,
    )
    from airflow_mlops_provider.operators.registry import MlflowPromoteModelOperator
    from airflow_mlops_provider.pipelines.common import check_dag
    from airflow_mlops_provider.pipelines.retraining import _champion_changed, _promotion_pool

    reconcile = MlflowReconcileAliasesOperator(task_id="reconcile_aliases", name=model.name)
    check_dag(reconcile, "rollback_pipeline", rollback_params(model), "rollback_params", "rollback_dag")
    plan = MlflowPlanRollbackOperator(task_id="plan", name=model.name, to_version="{{ params.to_version | tojson }}",
                                      reason="{{ params.reason | tojson }}",
                                      deploy_target="{{ params.deploy_target }}", deploy_targets=list(model.lanes))
    champion = MlflowPromoteModelOperator(
        task_id="rollback_champion", name=model.name, decision=plan.output, event="champion_rolled_back",
        ledger_fields=plan.output["ledger_fields"], on_superseded="fail", outlets=[_champion_changed(model)],
        **_promotion_pool(model))
    steps = {name: _rollback_step(name, model) for name in model.lanes}
    step_ids = {name: op.task_id for name, op in steps.items()}

    @task.branch(task_id="route")
    def route(targets: list[str]) -> list[str]:
        """Serving goes back on the targets the plan chose (where the model was live)."""
        return [step_ids[t] for t in targets if t in step_ids] or ["no_serving"]

    no_serving = EmptyOperator(task_id="no_serving")
    reconcile >> plan >> champion
    champion >> route(plan.output["deploy_targets"]) >> [no_serving, *steps.values()]
    return {"reconcile": reconcile, "plan": plan, "rollback_champion": champion, "serving": steps}


def rollback_dag(model: ModelConfig, *, dag_id: str, start_date: datetime | None = None, doc_md: str | None = None,
                 tags: list[str] | None = None, **dag_kwargs: Any) -> Any:
    """A DAG, triggered by hand or from the Models view, that rolls ``@champion`` and serving back."""
    from airflow.sdk import DAG

    from airflow_mlops_provider.pipelines.common import connection_defaults

    with DAG(dag_id=dag_id, description=f"Roll {model.name}'s @champion and serving back to the last good version",
             schedule=None, start_date=start_date or datetime(2026, 1, 1), catchup=False, max_active_runs=1,
             render_template_as_native_obj=True, doc_md=doc_md or __doc__,
             tags=[*(tags or ["mlops", "rollback", model.name]), rollback_tag(model.name)],
             params=rollback_params(model), default_args=connection_defaults(model, dag_kwargs), **dag_kwargs) as dag:
        rollback_pipeline(model)
    return dag


def alias_audit_dag(model: ModelConfig, *, dag_id: str, schedule: Any = "17 * * * *",
                    start_date: datetime | None = None, doc_md: str | None = None, tags: list[str] | None = None,
                    **dag_kwargs: Any) -> Any:
    """``reconcile_aliases`` for ``model`` on ``schedule`` (a UTC cron, hourly by default)."""
    from airflow_mlops_provider.operators.history import MlflowReconcileAliasesOperator
    from airflow_mlops_provider.pipelines.common import daily_dag

    with daily_dag(model, dag_id=dag_id, schedule=schedule, start_date=start_date,
                   description=f"Record moves of {model.name}'s aliases made outside the pipeline",
                   doc_md=doc_md or __doc__, tags=tags or ["mlops", "audit", model.name], params={},
                   **dag_kwargs) as dag:
        MlflowReconcileAliasesOperator(task_id="reconcile_aliases", name=model.name)
    return dag


__all__ = ["alias_audit_dag", "rollback_dag", "rollback_params", "rollback_pipeline", "rollback_tag"]
