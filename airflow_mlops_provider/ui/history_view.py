"""The Models view's history: what was live when (JSON and a timeline), compare, and the rollback button.

Routes (added to the Models view's app by :func:`install`; every one behind the view's login guard):

- ``GET /mlops/api/history?model=M[&alias=champion|&target=local][&at=T]`` — which version was live
  at ``T`` and why, plus the timeline (:func:`airflow_mlops_provider.history.history`, the same
  function ``airflow-mlops history`` prints);
- ``GET /mlops/api/compare?model=M&a=1&b=2`` — two versions side by side;
- ``POST /mlops/api/models/{model}/rollback`` (JSON ``{"to_version", "reason"}``) and
  ``POST /mlops/models/{model}/rollback`` (the page's form) — trigger the model's rollback DAG
  (tagged ``rollback:<model>``) through Airflow's REST API **as the user who asked** (their token
  is forwarded), so Airflow decides and records who triggered it. A user whom the auth manager
  does not allow to trigger that DAG gets 403 here, and the page shows them no button.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, whose
types are imported inside :func:`install`.
"""

import html
import json
import os
from typing import Annotated, Any
from urllib.parse import quote

from airflow_mlops_provider.pipelines.history import rollback_tag


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# -- facts ------------------------------------------------------------------------------------------
def history_facts(records: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """What the page's history section shows: the champion's timeline, each deploy target's, and the
    moves made outside the pipeline (newest first)."""
    from airflow_mlops_provider.core.history import deploy_targets_of, timeline

    targets = sorted({t for r in records if r.get("model") == model
                      and r.get("event") in ("promoted", "champion_rolled_back")
                      for t in deploy_targets_of(r)})
    external = [r for r in records if r.get("model") == model and r.get("event") == "external_change"]
    return {"champion": timeline(records, model, alias="champion"),
            "targets": {t: timeline(records, model, target=t) for t in targets},
            "external_changes": list(reversed(external))[:50]}


def rollback_dag_of(model: str) -> dict[str, Any] | None:
    """The model's rollback DAG from Airflow's metadata DB (the DAG tagged ``rollback:<model>``):
    ``{"dag_id", "paused"}``; None when there is none (or the DB cannot say)."""
    try:
        from airflow.models.dag import DagModel, DagTag
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.execute(
                select(DagModel.dag_id, DagModel.is_paused).join(DagTag, DagTag.dag_id == DagModel.dag_id)
                .where(DagTag.name == rollback_tag(model), DagModel.is_stale.is_(False))
                .order_by(DagModel.dag_id)).first()
    except Exception:
        import logging

        logging.getLogger(__name__).warning("cannot look up the rollback DAG of %s", model, exc_info=True)
        return None
    return None if row is None else {"dag_id": row[0], "paused": bool(row[1])}


def may_access_dag(user: Any, dag_id: str, *, method: str, entity: str) -> bool:
    """Whether Airflow's auth manager lets ``user`` do ``method`` on ``dag_id``'s ``entity`` (a
    ``DagAccessEntity`` name: ``RUN``, ``HITL_DETAIL``, ...)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    return bool(get_auth_manager().is_authorized_dag(
        method=method, access_entity=DagAccessEntity[entity],
        details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)), user=user))


def may_trigger(user: Any, dag_id: str) -> bool:
    """Whether Airflow's auth manager lets ``user`` trigger (create a run of) ``dag_id``."""
    return may_access_dag(user, dag_id, method="POST", entity="RUN")


def rollback_action(model: str, user: Any) -> dict[str, Any] | None:
    """The page's rollback button for ``model``, or None when there is no rollback DAG or the user may
    not trigger it."""
    dag = rollback_dag_of(model)
    if dag is None or not may_trigger(user, dag["dag_id"]):
        return None
    return dag


def airflow_api_root(request: Any) -> str:
    """Airflow's REST API root as this request reached the api-server (``MLOPS_AIRFLOW_API_URL`` overrides)."""
    from airflow_mlops_provider.links.base import api_base_path

    configured = os.environ.get("MLOPS_AIRFLOW_API_URL")
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}{api_base_path()}"


def user_token(request: Any) -> str | None:
    """The credential this request came with: the bearer token, else the UI's JWT cookie."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    header = request.headers.get("authorization") or ""
    if header.lower().startswith("bearer "):
        return header.split(" ", 1)[1].strip()
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN)


def call_airflow_as_user(request: Any, method: str, path: str, body: dict[str, Any], *, refused: str) -> dict[str, Any]:
    """``method path`` on Airflow's REST API with the requesting user's own token (so Airflow checks the
    permission again and records the user); its JSON answer.

    Raises ``HTTPException``: 401 no token, 502 no answer, the API's own status with ``refused`` and
    its detail when it refuses."""
    import httpx
    from fastapi import HTTPException

    token = user_token(request)
    if not token:
        raise HTTPException(status_code=401, detail="Not authenticated")
    url = f"{airflow_api_root(request)}{path}"
    try:
        answer = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    except httpx.HTTPError as err:
        raise HTTPException(status_code=502, detail=f"Airflow's REST API at {url} did not answer: {err}") from err
    if answer.status_code >= 400:
        try:
            detail = answer.json().get("detail")
        except ValueError:
            detail = answer.text[:500]
        raise HTTPException(status_code=answer.status_code, detail=f"{refused}: {detail}")
    return answer.json()


def trigger_rollback(request: Any, user: Any, model: str, to_version: str | None, reason: str | None) -> dict[str, Any]:
    """Trigger ``model``'s rollback DAG as ``user`` (their token forwarded to Airflow's REST API).

    Raises ``HTTPException``: 404 no rollback DAG, 403 not allowed, 400 a bad version, the REST API's
    own status when it refuses."""
    from fastapi import HTTPException

    dag = rollback_dag_of(model)
    if dag is None:
        raise HTTPException(status_code=404, detail=f"no rollback DAG for model {model!r} (a DAG tagged "
                                                    f"{rollback_tag(model)!r}; see pipelines.rollback_dag)")
    if not may_trigger(user, dag["dag_id"]):
        raise HTTPException(status_code=403, detail=f"Forbidden: you may not trigger {dag['dag_id']!r}")
    version = (to_version or "").strip().lstrip("v")
    if version and not version.isdigit():
        raise HTTPException(status_code=400, detail=f"to_version {to_version!r} is not a version number")
    body = {"logical_date": None, "conf": {"to_version": version, "reason": (reason or "").strip()[:500]},
            "note": f"Rollback of {model} requested from the Models view"}
    run = call_airflow_as_user(request, "POST", f"/api/v2/dags/{quote(dag['dag_id'], safe='')}/dagRuns", body,
                               refused="Airflow refused the run")
    return {"model": model, "dag_id": dag["dag_id"], "dag_run_id": run.get("dag_run_id"), "state": run.get("state"),
            "paused": dag["paused"], "to_version": version or None}


# -- page -------------------------------------------------------------------------------------------
def _moves_table(moves: list[dict[str, Any]], css: str) -> str:
    out = [f"<table class='{css}'><tr><th>from</th><th>until</th><th>version</th><th>how</th><th>who</th>"
           "<th>why</th></tr>"]
    for move in reversed(moves):
        why = move.get("why") or {}
        decision = why.get("decision") or {}
        reason = why.get("reason") or "; ".join(map(str, decision.get("reasons") or [])) or (
            "moved outside the pipeline" if move["event"] == "external_change" else "")
        css_event = "reject" if move["event"] in ("external_change", "champion_rolled_back") else ""
        out.append(f"<tr data-version='{_e(move['version'])}' data-event='{_e(move['event'])}'>"
                   f"<td>{_e(move['at'][:19].replace('T', ' '))}</td>"
                   f"<td>{_e((move.get('until') or 'now')[:19].replace('T', ' '))}</td>"
                   f"<td>{'v' + _e(move['version']) if move['version'] else '(unset)'}</td>"
                   f"<td class='{css_event}'>{_e(move['event'])}</td><td>{_e(move.get('who') or 'unknown')}</td>"
                   f"<td>{_e(reason)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def history_section(model: dict[str, Any], *, base: str = "/mlops") -> str:
    """The page's "What was live when" section of one model: the champion's and each deploy target's
    timeline, moves made outside the pipeline, the rollback form when the user may use it, and the
    outcome of a rollback just triggered."""
    facts = model.get("history")
    if not facts:
        return ""
    name = model["name"]
    out = ["<h3>What was live when</h3>"]
    started = model.get("rollback_started")
    if started:
        out.append(f"<p class='rollback-started' data-run='{_e(started.get('dag_run_id'))}'>Rollback run "
                   f"<b>{_e(started.get('dag_run_id'))}</b> of {_e(started.get('dag_id'))} started"
                   + (" (the DAG is paused: it waits until unpaused)" if started.get("paused") else "") + ".</p>")
    external = facts.get("external_changes") or []
    if external:
        out.append("<div class='external-changes'><p class='reject'>Moved outside the pipeline (MLflow UI or "
                   "client; MLflow records no author or time, so each is dated by when it was seen):</p><ul>")
        for r in external:
            out.append(f"<li data-alias='{_e(r.get('alias'))}' data-version='{_e(r.get('to_version'))}'>"
                       f"@{_e(r.get('alias'))}: v{_e(r.get('from_version') or '-')} → v{_e(r.get('to_version') or '-')}"
                       f", seen {_e((r.get('recorded_at') or '')[:19].replace('T', ' '))} by {_e(r.get('dag_id'))}"
                       + (f" (after {_e(r['not_before'][:19].replace('T', ' '))})" if r.get("not_before") else "")
                       + "</li>")
        out.append("</ul></div>")
    out.append("<p>@champion:</p>")
    out.append(_moves_table(facts["champion"], "timeline") if facts["champion"] else
               "<p class='muted'>No champion move recorded yet.</p>")
    for target, moves in (facts.get("targets") or {}).items():
        out.append(f"<p>Served on <b>{_e(target)}</b>:</p>{_moves_table(moves, 'timeline target')}")
    action = model.get("rollback")
    if action:
        out.append(f"<form class='rollback' method='post' action='{base}/models/{quote(name, safe='')}/rollback'>"
                   "<label>to version <input name='to_version' size='4' placeholder='last good'></label> "
                   "<label>reason <input name='reason' size='40'></label> "
                   f"<button type='submit' data-dag='{_e(action['dag_id'])}'>Roll back @champion</button>"
                   + (" <span class='muted'>(the rollback DAG is paused)</span>" if action.get("paused") else "")
                   + "</form>")
    out.append(f"<p class='links'><a href='{base}/api/history?model={quote(name)}'>history as JSON</a></p>")
    return "".join(out)


# -- routes -----------------------------------------------------------------------------------------
def install(app: Any, facts: Any) -> None:
    """Add the history and rollback routes to the Models view's ``app``; ``facts(model)`` is the page's
    data loader (used by the page route to find the models)."""
    from airflow.api_fastapi.core_api.security import GetUserDep
    from fastapi import Body, Form, HTTPException, Request
    from fastapi.responses import JSONResponse, RedirectResponse

    from airflow_mlops_provider import history
    from airflow_mlops_provider.core.history import HistoryError

    def client_and_ledger() -> tuple[Any, Any]:
        from airflow_mlops_provider.core.settings import mlops_home
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook().client, mlops_home().ledger_path

    def answer(call: Any) -> JSONResponse:
        try:
            return JSONResponse(json.loads(json.dumps(call(), default=str)))
        except HistoryError as err:
            raise HTTPException(status_code=400, detail=str(err)) from err

    @app.get("/api/history")
    def history_json(model: str, alias: str | None = None, target: str | None = None,
                     at: str | None = None) -> JSONResponse:
        from airflow_mlops_provider.core.history import parse_time

        answer(lambda: parse_time(at))  # a bad time is a 400 naming it, before MLflow is asked anything
        client, ledger_path = client_and_ledger()
        return answer(lambda: history.history(client, ledger_path, model, at=at, alias=alias, target=target))

    @app.get("/api/compare")
    def compare_json(model: str, a: str, b: str) -> JSONResponse:
        client, ledger_path = client_and_ledger()
        return answer(lambda: history.compare_versions(client, ledger_path, model, a, b))

    @app.post("/api/models/{model}/rollback")
    def rollback_json(model: str, request: Request, user: GetUserDep,
                      payload: Annotated[dict[str, Any] | None, Body()] = None) -> JSONResponse:
        payload = payload or {}
        return JSONResponse(trigger_rollback(request, user, model, payload.get("to_version"),
                                             payload.get("reason")))

    @app.post("/models/{model}/rollback")
    def rollback_form(model: str, request: Request, user: GetUserDep, to_version: Annotated[str, Form()] = "",
                      reason: Annotated[str, Form()] = "") -> RedirectResponse:
        run = trigger_rollback(request, user, model, to_version, reason)
        back = f"{request.scope.get('root_path', '')}/models?model={quote(model)}&rollback_run={quote(str(run['dag_run_id']))}"
        return RedirectResponse(back, status_code=303)


def page_actions(facts: dict[str, Any], user: Any, rollback_run: str | None = None,
                 answered: dict[str, str] | None = None) -> dict[str, Any]:
    """Add what ``user`` may do (the rollback button, the answers to waiting approvals) and a
    just-started rollback run or a just-given answer to each model of the page."""
    from airflow_mlops_provider.ui.approvals import approvals_for

    for model in facts.get("models", []):
        try:
            model["approvals"] = approvals_for(model["name"], user)
        except Exception:
            import logging

            logging.getLogger(__name__).warning("cannot list the waiting approvals of %s", model["name"],
                                                exc_info=True)
            model["approvals"] = []
        if answered and answered.get("model") == model["name"]:
            model["approval_answered"] = answered
        model["rollback"] = rollback_action(model["name"], user) if user is not None else None
        if rollback_run and model["rollback"]:
            model["rollback_started"] = {"dag_id": model["rollback"]["dag_id"], "dag_run_id": rollback_run,
                                         "paused": model["rollback"]["paused"]}
    return facts


__all__ = ["airflow_api_root", "call_airflow_as_user", "history_facts", "history_section", "install",
           "may_access_dag", "may_trigger", "page_actions", "rollback_action", "rollback_dag_of", "trigger_rollback",
           "user_token"]
