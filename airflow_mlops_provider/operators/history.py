"""History operators: catch alias moves made outside the pipeline, and plan a rollback of ``@champion``.

- :class:`MlflowReconcileAliasesOperator` compares MLflow's aliases with the ledger's last word
  (:func:`airflow_mlops_provider.core.history.reconcile`) and appends an ``external_change``
  record for each alias moved outside the pipeline (MLflow UI, ``MlflowClient``); it pushes the
  count as a metric. The retraining, batch and rollback pipelines run it first; the alias-audit
  DAG runs it on a schedule.
- :class:`MlflowPlanRollbackOperator` chooses the version a rollback goes back to (a version
  given, else the last good champion) and returns a decision the promote operator executes with
  the same compare-and-set, lock and ledger as any promotion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow_mlops_provider.core.history import LEDGER_ALIASES
from airflow_mlops_provider.core.settings import mlops_home
from airflow_mlops_provider.operators.mixins import MlflowHookMixin


def reconcile_aliases(hook: Any, name: str, aliases: Sequence[str] = LEDGER_ALIASES, *, seen_by: dict[str, Any],
                      mlflow_reports: Callable[[dict[str, str]], dict[str, Any]] | None = None,
                      ) -> tuple[dict[str, str], list[dict[str, Any]]] | None:
    """MLflow's aliases of ``name`` now against the ledger: the ``external_change`` records appended.

    Under the model's promotion lock, so a move the pipeline is making (alias set, ledger record
    not yet written) is never taken for an outside one. ``mlflow_reports(aliases now)``: what
    MLflow said about the change, recorded with it. Returns ``(MLflow's aliases now, records
    appended)``, or None when ``name`` is not registered. Shared by
    :class:`MlflowReconcileAliasesOperator` (every run, and the audit DAG's schedule) and the
    Models view's MLflow webhook receiver (at once, when MLflow reports an alias move).
    """
    from mlflow.exceptions import MlflowException

    from airflow_mlops_provider.core import ledger
    from airflow_mlops_provider.core.history import reconcile

    home = mlops_home()
    with ledger.file_lock(home.root / "locks" / f"promote-{name}.lock"):
        try:
            registered = hook.client.get_registered_model(name)
        except MlflowException as err:
            if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(err, "error_code", "")) + str(err):
                raise
            return None
        now = {str(k): str(v) for k, v in (registered.aliases or {}).items()}
        found = reconcile(ledger.read(home.ledger_path), name, now, aliases=list(aliases), seen_by=seen_by,
                          mlflow_reports=mlflow_reports(now) if mlflow_reports else None)
        return now, [ledger.append(home.ledger_path, record) for record in found]


class MlflowReconcileAliasesOperator(MlflowHookMixin):
    """Record alias moves made outside the pipeline as ``external_change`` ledger records.

    Runs under the promotion lock of the model (a promotion between its alias move and its ledger
    record is never mistaken for an external change). Never fails on a difference: it records it,
    logs a warning and pushes ``external_alias_changes`` (the ledger's count for the model).

    :param name: the registered model.
    :param aliases: the aliases the pipeline owns (``champion``, ``previous``).
    Returns ``{"model", "aliases": MLflow's aliases now, "champion": version or None,
    "external_changes": [records appended]}``.
    """

    template_fields: Sequence[str] = ("name", "aliases", "mlflow_conn_id")
    ui_color = "#f0e68c"

    def __init__(self, *, name: str, aliases: Sequence[str] = LEDGER_ALIASES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.aliases = aliases

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops_provider.hooks.prometheus import ledger_count, push_task_metrics

        home = mlops_home()
        ti = context["ti"]
        found = reconcile_aliases(self.hook, self.name, list(self.aliases),
                                  seen_by={"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id})
        if found is None:
            self.log.info("%s is not registered yet: no alias to reconcile", self.name)
            return {"model": self.name, "aliases": {}, "champion": None, "external_changes": []}
        now, appended = found
        for record in appended:
            self.log.warning("%s @%s moved outside the pipeline: v%s -> v%s (MLflow records no author or time; "
                             "seen by %s / %s)", self.name, record["alias"], record["from_version"],
                             record["to_version"], ti.dag_id, ti.run_id)
        champion = now.get("champion")
        if champion is not None:
            self.log.info("%s @champion is v%s", self.name, champion)
        push_task_metrics(context, model=self.name, version=champion, metrics={
            "external_alias_changes": ledger_count(home.ledger_path, self.name, "external_change")},
            descriptions={"external_alias_changes": "alias moves made outside the pipeline (audit ledger)"})
        return {"model": self.name, "aliases": now, "champion": champion, "external_changes": appended}


class MlflowPlanRollbackOperator(MlflowHookMixin):
    """Choose what ``@champion`` goes back to, as a decision :class:`MlflowPromoteModelOperator` executes.

    :param name: the registered model.
    :param to_version: the version to go back to; empty: the last good champion
        (:func:`~airflow_mlops_provider.core.history.last_good_version`: the latest earlier champion
        never rolled back from).
    :param reason: why (recorded).
    :param deploy_target: where serving goes back: a target's name, ``none``, or ``auto`` (every
        target in ``deploy_targets`` where the model has a live deployment now).
    :param deploy_targets: the targets ``auto`` looks at (the pipeline's lanes).
    Who asked is the DAG run's triggering user (Airflow records it; a form field could be forged).
    Returns ``{"model", "challenger_version": the version to restore, "champion_version": the
    current champion (the compare-and-set's expectation), "verdict": "promote", "reasons",
    "ledger_fields": {"from_version", "to_version", "requested_by", "reason", "deploy_targets"},
    "deploy_targets": [targets whose serving goes back]}``.
    """

    template_fields: Sequence[str] = ("name", "to_version", "reason", "deploy_target", "mlflow_conn_id")
    ui_color = "#f5c6cb"

    def __init__(self, *, name: str, to_version: str | int | None = None, reason: str = "",
                 deploy_target: str = "auto", deploy_targets: Sequence[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.name = name
        self.to_version = to_version
        self.reason = reason
        self.deploy_target = deploy_target
        self.deploy_targets = list(deploy_targets)

    def serving_targets(self) -> list[str]:
        """The targets whose serving goes back (``auto``: those where the model is live now)."""
        from airflow_mlops_provider.deploy.base import get_deploy_target, serving_of

        choice = str(self.deploy_target or "none")
        if choice == "none":
            return []
        if choice != "auto":
            return [choice]
        live = []
        for name in self.deploy_targets:
            rows = serving_of(get_deploy_target(name), self.name)
            if any(r.get("role") == "live" and r.get("available") is not False for r in rows):
                live.append(name)
        self.log.info("%s is live on %s", self.name, live or "no deploy target")
        return live

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops_provider.core import ledger
        from airflow_mlops_provider.core.history import last_good_version
        from airflow_mlops_provider.exceptions import DeploymentError

        current = self.hook.get_version_by_alias(self.name, "champion", required=False)
        if current is None:
            raise DeploymentError(f"{self.name} has no @champion: nothing to roll back", model=self.name,
                                  reason="invalid")
        current_v = str(current.version)
        wanted = None if self.to_version in (None, "", "None") else str(self.to_version).lstrip("v")
        if wanted is None:
            wanted = last_good_version(ledger.read(mlops_home().ledger_path), self.name, current_v)
            if wanted is None:
                raise DeploymentError(f"{self.name}: the ledger knows no earlier good champion than v{current_v}; "
                                      "name the version to go back to (to_version)", model=self.name,
                                      field="to_version", reason="invalid")
        if wanted == current_v:
            raise DeploymentError(f"{self.name} v{wanted} is already the champion: nothing to roll back",
                                  model=self.name, field="to_version", reason="invalid")
        self.hook.resolve_version(self.name, wanted)  # exists, else an error naming model and version
        dag_run = context.get("dag_run")
        who = getattr(dag_run, "triggering_user_name", None) or None
        reason = str(self.reason or "").strip()[:500]
        line = f"rollback of @champion from v{current_v} to v{wanted} requested by {who or 'an unnamed user'}"
        self.log.info("%s%s", line, f": {reason}" if reason else "")
        targets = self.serving_targets()
        return {"model": self.name, "challenger_version": wanted, "champion_version": current_v,
                "verdict": "promote", "reasons": [line + (f": {reason}" if reason else "")],
                "ledger_fields": {"from_version": current_v, "to_version": wanted, "requested_by": who,
                                  "reason": reason, "deploy_targets": targets},
                "deploy_targets": targets}
