"""The retraining pipeline: validate → train → evaluate → champion/challenger gate → deploy → promote.

``retraining_dag(model, dag_id=...)`` builds a whole DAG; ``retraining_pipeline(model)`` adds the
same tasks to a DAG of your own (give it ``params=retraining_params(model)`` and
``render_template_as_native_obj=True``); ``deployment_lane(...)`` builds one target's lane.

Task ids (stable, read by tests and the UI): ``resolve_data_version``, ``validate_data``,
``train``, ``evaluate``, ``register_challenger``, ``decide``, ``route``, ``no_deploy``,
``promote``; per deploy target ``<target>.deploy``, ``<target>.verify``,
``<target>.approve``, ``[<target>.promote_traffic]``, ``<target>.promote``,
``<target>.rollback``; then ``record_rollback`` and ``summarize``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow_mlops_provider.deploy.base import VERIFY_DEFAULTS, get_deploy_target
from airflow_mlops_provider.pipelines.common import check_dag, connection_defaults, param
from airflow_mlops_provider.pipelines.config import ModelConfig

_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "direction": {"enum": ["higher", "lower"]},
        "floor": {"type": ["number", "null"]},
        "max_regression": {"type": "number", "minimum": 0},
        "min_improvement": {"type": ["number", "null"]},
        "max_relative_regression": {"type": ["number", "null"], "minimum": 0},
        "require_significant_improvement": {"type": "boolean"},
    },
}

POLICY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["metrics"],
    "additionalProperties": False,
    "properties": {
        "min_eval_rows": {"type": "integer", "minimum": 1},
        "metrics": {"type": "array", "minItems": 1, "items": _RULE_SCHEMA},
        # Confidence intervals of every gate metric (core.bootstrap); resamples 0: off.
        "bootstrap": {"type": "object", "additionalProperties": False, "properties": {
            "resamples": {"type": "integer", "minimum": 0, "maximum": 100000},
            "seed": {"type": "integer", "minimum": 0},
            "confidence": {"type": "number", "minimum": 0.5, "exclusiveMaximum": 1}}},
        # Rules per declared slice (ModelConfig.slices; core.slices).
        "slices": {"type": "object", "required": ["metrics"], "additionalProperties": False, "properties": {
            "min_rows": {"type": "integer", "minimum": 1},
            "metrics": {"type": "array", "minItems": 1, "items": _RULE_SCHEMA}}},
    },
}

APPROVAL_TIMEOUT = timedelta(hours=24)
# What the reviewer sees in "Required actions" before a deployed challenger takes over.
_APPROVAL_BODY = """\
{% set d = ti.xcom_pull(task_ids='DECIDE') %}{% set v = ti.xcom_pull(task_ids='VERIFY') %}\
**{{ d.model }} v{{ d.challenger_version }}** ({{ d.task_type }} challenger) against \
{{ ('**v%s** (champion)' % d.champion_version) if d.champion_version else 'no champion' }}: \
{{ d.reasons | join('; ') }}

| metric | challenger | champion |
|---|---|---|
{% for k, val in d.challenger_metrics.items() %}\
| {{ k }} | {{ '%.4f' | format(val) if val is number else val }} | \
{{ '%.4f' | format(d.champion_metrics[k]) if d.champion_metrics and d.champion_metrics[k] is number else '-' }} |
{% endfor %}
Verified on TARGET: {{ v.requests }} requests, error rate {{ '%.1f' | format(100 * v.error_rate) }}%, \
p95 latency {{ '%.0f' | format(v.p95_latency_ms) }} ms.

**Approve** moves all traffic and `@champion` to the challenger. **Reject** (or no answer within \
HOURS h) sends traffic back to the champion.
"""



def training_data_asset(model: ModelConfig) -> Any:
    """The training file as an Asset whose DVC watcher emits one event per new data version."""
    from airflow_mlops_provider import assets
    from airflow_mlops_provider.core.settings import mlops_home

    home = mlops_home()
    return assets.dvc_data(
        model.dataset_name, repo=model.dvc_repo or str(home.dvc_repo), path=model.data_path,
        state_path=str(home.root / "state" / f"dvc-watch-{model.dataset_name}.json"),
        poll_interval=float(os.environ.get("MLOPS_DVC_WATCH_INTERVAL", "60")))


def retraining_schedule(model: ModelConfig, cron: str | None = "0 3 * * 0") -> Any:
    """``cron`` (UTC) **or** a new training-data version **or** drift detected **or** performance
    degraded for this model."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    from airflow_mlops_provider import assets

    events = training_data_asset(model) | assets.drift_detected(model.name) | assets.performance_degraded(model.name)
    if cron is None:
        return events
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=events)


def retraining_params(model: ModelConfig) -> dict[str, Any]:
    """The Params a retraining DAG needs, with JSON schemas (the UI's trigger form)."""

    params: dict[str, Any] = {
        "data_path": param(model.data_path, type="string", minLength=1, maxLength=1024,
                           pattern=r"^(?!/)(?!.*(^|/)\.\.(/|$))[^:]+$",
                           description="Path of the training file inside the DVC repository"),
        "data_rev": param("", type="string", description="Git rev of the data; empty: the latest (HEAD)"),
        "train_params": param(dict(model.train_params), type="object",
                              description="Hyper-parameters passed to the training callable"),
        "policy": param(model.effective_policy, type="object", schema=POLICY_SCHEMA,
                        description=f"PromotionPolicy for this {model.task_type} model: per-metric direction, "
                                    "floor and change threshold against the champion"),
        "deploy_target": param(model.deploy_target, enum=["none", *model.lanes],
                               description="Where an accepted challenger is rolled out before promotion"),
        "require_approval": param(model.require_approval, type="boolean",
                                  description="Ask a human (Required actions) before a verified deployment is "
                                              "promoted; a rejection rolls it back"),
    }
    for name in model.lanes:
        target = get_deploy_target(name)
        defaults = target.defaults_for(model.name, model.deploy_config.get(name))
        params[name] = param(defaults, type="object", schema=target.param_schema(), description=target.description)
    return params


def deployment_lane(target_name: str, *, model: ModelConfig, decision: Any, challenger: Any,
                    approval: bool = True, on_superseded: str = "fail") -> dict[str, Any]:
    """One target's lane in a TaskGroup named after it.

    deploy → verify → [approve] → [promote_traffic] → promote (``@champion``, compare-and-set);
    ``rollback`` runs when any of them failed and sends serving back to what ``@champion``
    names. Returns the lane's operators by step (``deploy``, ``verify``, ``approve``,
    ``promote_traffic``, ``promote``, ``rollback``; absent steps are None) and ``steps``.
    """
    from airflow.sdk import TaskGroup, TriggerRule, chain

    from airflow_mlops_provider.operators.approval import DeploymentApprovalOperator
    from airflow_mlops_provider.operators.registry import MlflowPromoteModelOperator

    target = get_deploy_target(target_name)
    with TaskGroup(group_id=target.name, tooltip=target.description) as group:
        lane = target.lane(config=f"params.{target.name}", model_name=model.name,
                           model_version=challenger["version"], challenger=challenger)
        approve = None
        if approval:
            body = (_APPROVAL_BODY.replace("DECIDE", decision.operator.task_id)
                    .replace("VERIFY", lane.verify.task_id).replace("TARGET", target.name)
                    .replace("HOURS", f"{APPROVAL_TIMEOUT.total_seconds() / 3600:g}"))
            approve = DeploymentApprovalOperator(
                task_id="approve", required="{{ params.require_approval }}",
                subject=f"Promote {model.name} v{{{{ ti.xcom_pull(task_ids='{decision.operator.task_id}')"
                        f"['challenger_version'] }}}} on {target.name}?",
                body=body, response_timeout=APPROVAL_TIMEOUT)
        promote = MlflowPromoteModelOperator(
            task_id="promote", name=model.name, decision=decision, on_superseded=on_superseded,
            outlets=[_champion_changed(model)], **_promotion_pool(model))
        steps = [s for s in (lane.deploy, lane.verify, approve, lane.promote_traffic, promote) if s is not None]
        chain(*steps)
        # Any failed step — ours, the platform's, a rejection, a superseded promotion — rolls back.
        lane.rollback.trigger_rule = TriggerRule.ONE_FAILED
        # ...but only failures of the lane itself: one before it left nothing deployed.
        lane.rollback.after_task_id = lane.deploy.task_id
        steps >> lane.rollback
    return {"group": group, "deploy": lane.deploy, "verify": lane.verify, "approve": approve,
            "promote_traffic": lane.promote_traffic, "promote": promote, "rollback": lane.rollback, "steps": steps}


def _promotion_pool(model: ModelConfig) -> dict[str, Any]:
    """Promotions run one at a time across hosts: a 1-slot pool (``ModelConfig.promotion_pool``)."""
    return {"pool": model.promotion_pool} if model.promotion_pool else {}


def _champion_changed(model: ModelConfig) -> Any:
    from airflow_mlops_provider import assets

    return assets.champion_changed(model.name)


def retraining_pipeline(model: ModelConfig) -> dict[str, Any]:
    """Add the retraining tasks for ``model`` to the DAG being defined; returns them by name.

    The DAG must have ``params=retraining_params(model)`` and
    ``render_template_as_native_obj=True`` (policy and configs are objects): both are checked
    here, with a message that says what to add.
    """
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import task

    from airflow_mlops_provider.operators.deploy import DeploymentRecordRollbackOperator
    from airflow_mlops_provider.operators.dvc import DvcGetDataVersionOperator
    from airflow_mlops_provider.operators.history import MlflowReconcileAliasesOperator
    from airflow_mlops_provider.operators.registry import (
        MlflowCompareChallengerOperator,
        MlflowPromoteModelOperator,
        MlflowRegisterModelOperator,
        MlflowSummarizeDecisionOperator,
    )
    from airflow_mlops_provider.operators.training import (
        MlflowEvaluateModelOperator,
        MlflowTrainModelOperator,
    )
    from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator

    data_version = DvcGetDataVersionOperator(
        # tojson: native rendering would turn an all-digit rev or path into a number.
        task_id="resolve_data_version", path="{{ params.data_path | tojson }}", rev="{{ params.data_rev | tojson }}",
        dvc_conn_id=model.dvc_conn_id)
    check_dag(data_version, "retraining_pipeline", retraining_params(model), "retraining_params", "retraining_dag")
    validation = GreatExpectationsValidateDataOperator(
        task_id="validate_data", path=data_version.output["local_path"], suite=model.training_suite)
    training = MlflowTrainModelOperator(
        task_id="train", train_callable=model.train, model_task_type=model.task_type, policy="{{ params.policy }}",
        data_path=data_version.output["local_path"], data_version=data_version.output, validation=validation.output,
        target=model.target, id_columns=list(model.id_columns), experiment_name=model.experiment_name,
        train_params="{{ params.train_params }}", pip_requirements=model.pip_requirements, flavor=model.flavor,
        log_model=model.log_model, skops_trusted_types=model.skops_trusted_types,
        categorical_features=model.categorical_features, holdout_fraction=model.holdout_fraction,
        exclude_features=[] if model.sensitive_as_features else list(model.sensitive_features))
    evaluation = MlflowEvaluateModelOperator(task_id="evaluate", run_id=training.output["run_id"], target=model.target)
    registration = MlflowRegisterModelOperator(
        task_id="register_challenger", name=model.name, run_id=training.output["run_id"], alias="challenger")
    evaluation >> registration
    decision = MlflowCompareChallengerOperator(
        task_id="decide", name=model.name, challenger=registration.output,
        challenger_metrics=evaluation.output["metrics"], policy="{{ params.policy }}", target=model.target,
        sensitive_features=list(model.sensitive_features), slices=list(model.slices),
        model_card=model.card_identity())
    # An alias moved outside the pipeline is recorded before the gate reads @champion.
    reconcile = MlflowReconcileAliasesOperator(task_id="reconcile_aliases", name=model.name)
    reconcile >> decision

    lanes = {name: deployment_lane(name, model=model, decision=decision.output, challenger=registration.output)
             for name in model.lanes}
    deploy_ids = {name: lane["deploy"].task_id for name, lane in lanes.items()}

    @task.branch(task_id="route")
    def route(decision: dict, **context: Any) -> str:
        """Deploy only a challenger the policy accepted, and only when a target is set."""
        target = context["params"]["deploy_target"]
        return "no_deploy" if decision["verdict"] != "promote" or target == "none" else deploy_ids[target]

    no_deploy = EmptyOperator(task_id="no_deploy")
    # No deployment: aliases only. A champion that moved meanwhile just skips the promotion.
    promote = MlflowPromoteModelOperator(task_id="promote", name=model.name, decision=decision.output,
                                         on_superseded="skip", outlets=[_champion_changed(model)],
                                         **_promotion_pool(model))
    route(decision.output) >> [no_deploy, *(lane["deploy"] for lane in lanes.values())]
    no_deploy >> promote

    promote_tasks = [promote, *(lane["promote"] for lane in lanes.values())]
    record = DeploymentRecordRollbackOperator(
        task_id="record_rollback", decision=decision.output, target="{{ params.deploy_target }}",
        # Only the chosen target's lane runs (the others are skipped), so every lane's steps are listed.
        lane_task_ids=[s.task_id for lane in lanes.values() for s in lane["steps"]],
        rollback_task_ids=[lane["rollback"].task_id for lane in lanes.values()],
        approval_task_id="{{ params.deploy_target }}.approve" if lanes else None,
        trigger_rule="all_done")
    for lane in lanes.values():
        [lane["rollback"], lane["promote"]] >> record
    summary = MlflowSummarizeDecisionOperator(
        task_id="summarize", decision=decision.output, promote_task_ids=[t.task_id for t in promote_tasks])
    promote_tasks >> summary
    return {"reconcile": reconcile, "data_version": data_version, "validation": validation, "train": training, "evaluate": evaluation,
            "register": registration, "decide": decision, "promote": promote, "lanes": lanes,
            "record_rollback": record, "summarize": summary}


def retraining_dag(model: ModelConfig, *, dag_id: str, schedule: Any = "default", cron: str | None = "0 3 * * 0",
                   start_date: datetime | None = None, doc_md: str | None = None, tags: list[str] | None = None,
                   **dag_kwargs: Any) -> Any:
    """A complete retraining DAG for ``model``.

    Scheduled by ``cron`` (UTC, weekly by default) **or** a new version of the training data
    **or** drift detected **or** performance degraded for this model (``schedule`` overrides all
    of it). Params: data
    path/rev, train params, policy, deploy target and each target's config, approval. The model's
    connection ids (``ModelConfig.connections``) become the DAG's ``default_args``.
    """
    from airflow.sdk import DAG

    with DAG(
        dag_id=dag_id,
        description=f"Retrain, evaluate and promote {model.name} ({model.task_type}) by champion/challenger aliases",
        schedule=retraining_schedule(model, cron) if schedule == "default" else schedule,
        start_date=start_date or datetime(2026, 1, 1),
        catchup=dag_kwargs.pop("catchup", False),
        max_active_runs=dag_kwargs.pop("max_active_runs", 1),
        render_template_as_native_obj=True,
        tags=tags or ["mlops", "training", model.name],
        doc_md=doc_md or __doc__,
        params=retraining_params(model),
        default_args=connection_defaults(model, dag_kwargs),
        **dag_kwargs,
    ) as dag:
        retraining_pipeline(model)
    return dag


__all__ = ["POLICY_SCHEMA", "VERIFY_DEFAULTS", "deployment_lane", "retraining_dag", "retraining_params",
           "retraining_pipeline", "retraining_schedule", "training_data_asset"]
