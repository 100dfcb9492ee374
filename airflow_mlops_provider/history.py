"""History queries against the live registry: the one door the Models view's routes and the CLI share.

:func:`history` and :func:`compare_versions` read the audit ledger (``MLOPS_HOME``), MLflow (through
:class:`~airflow_mlops_provider.hooks.mlflow.MlflowHook`) and, for a deploy target, what it serves
now, then answer with :mod:`airflow_mlops_provider.core.history` — so
``GET /mlops/api/history``, ``airflow-mlops history`` and the function agree by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_mlops_provider.core import history as core


def _records(ledger_path: Path) -> list[dict[str, Any]]:
    from airflow_mlops_provider.core import ledger

    return ledger.read(ledger_path)


def _aliases(client: Any, model: str) -> dict[str, str]:
    try:
        registered = client.get_registered_model(model)
    except Exception as err:
        if "RESOURCE_DOES_NOT_EXIST" not in f"{getattr(err, 'error_code', '')} {err}":
            raise
        raise core.HistoryError(f"no registered model {model!r} in MLflow", field="model") from err
    return {str(k): str(v) for k, v in (registered.aliases or {}).items()}


def _serving_now(model: str, target: str) -> str | None:
    from airflow_mlops_provider.deploy.base import get_deploy_target, serving_of

    rows = serving_of(get_deploy_target(target), model)
    live = [r for r in rows if r.get("role") == "live" and r.get("available") is not False]
    return str(live[0]["version"]) if live and live[0].get("version") is not None else None


def history(client: Any, ledger_path: Path, model: str, *, at: Any = None, alias: str | None = None,
            target: str | None = None, serving: bool = True) -> dict[str, Any]:
    """``{"live": core.live_at(...), "timeline": core.timeline(...), "now": what MLflow (alias) or
    the target (``serving``: ask it) says now}`` for ``model``'s ``alias`` (default champion) or
    deploy ``target``."""
    if alias is None and target is None:
        alias = core.CHAMPION
    if alias is not None and target is not None:
        raise core.HistoryError("ask about an alias or a deploy target, not both", field="target")
    records = _records(ledger_path)
    if target is not None:
        now = _serving_now(model, target) if serving else None
        current: Any = now if serving else ...
    else:
        now = _aliases(client, model).get(alias)
        current = now
    live = core.live_at(records, model, at, alias=alias, target=target, current=current)
    return {"live": live, "timeline": core.timeline(records, model, alias=alias, target=target), "now": now}


def version_facts(client: Any, model: str, version: str) -> dict[str, Any]:
    """A version's facts from MLflow: its run's metrics (its own holdout), lineage and decision tags."""
    from airflow_mlops_provider.core.history import HistoryError

    try:
        mv = client.get_model_version(model, str(version))
    except Exception as err:
        raise HistoryError(f"{model!r} has no version {version!r}: {err}", field="version") from err
    metrics: dict[str, float] = {}
    if mv.run_id:
        metrics = {k: float(v) for k, v in sorted(client.get_run(mv.run_id).data.metrics.items())}
    tags = dict(mv.tags or {})
    return {"version": str(mv.version), "run_id": mv.run_id, "metrics": metrics,
            "created": mv.creation_timestamp, "task_type": tags.get("mlops.task_type"),
            "data_version": tags.get("mlops.data.id"), "decision": tags.get("mlops.decision"),
            "decision_reasons": tags.get("mlops.decision.reasons"), "deployment": tags.get("mlops.deployment"),
            "aliases": sorted(getattr(mv, "aliases", []) or [])}


def compare_versions(client: Any, ledger_path: Path, model: str, a: str, b: str) -> dict[str, Any]:
    """:func:`core.history.compare` of versions ``a`` and ``b`` with their facts from MLflow."""
    a, b = str(a).lstrip("v"), str(b).lstrip("v")
    return core.compare(_records(ledger_path), model, version_facts(client, model, a),
                        version_facts(client, model, b))


__all__ = ["compare_versions", "history", "version_facts"]
