"""The Models view's waiting promotions: approve or reject a verified canary from the model's page.

A retrain built with ``require_approval`` parks each lane at a
:class:`~airflow_mlops_provider.operators.approval.DeploymentApprovalOperator` (Airflow's
Human-in-the-loop). Airflow's own "Required actions" page answers it; the Models view lists the
model's waiting approvals beside its evidence and answers them too.

Routes (added to the Models view's app by :func:`install`; every one behind the view's login guard):

- ``GET /mlops/api/models/{model}/approvals`` — the model's waiting approvals (subject, body, run,
  task, since when) and whether the user may answer them;
- ``POST /mlops/api/models/{model}/approvals`` (JSON ``{"dag_id", "dag_run_id", "task_id",
  "map_index", "answer": "approve"|"reject"}``) and ``POST /mlops/models/{model}/approvals``
  (the page's buttons) — answer one, through Airflow's HITL REST API **as the user who asked**
  (their token is forwarded), so Airflow checks the permission and records who answered. A user
  whom the auth manager does not allow to answer gets 403 here, and the page shows them no buttons.

A waiting approval belongs to a model when its DAG carries the model's name among its tags (what
:func:`~airflow_mlops_provider.pipelines.retraining_dag` sets by default).

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, whose
types are imported inside :func:`install`.
"""

from typing import Annotated, Any
from urllib.parse import quote

from airflow_mlops_provider.ui.history_view import _e, call_airflow_as_user, may_access_dag

APPROVAL_OPERATOR = "DeploymentApprovalOperator"
ANSWERS = {"approve": "Approve", "reject": "Reject"}


def pending_approvals(model: str) -> list[dict[str, Any]]:
    """The model's unanswered deployment approvals, oldest first, from Airflow's metadata DB."""
    from airflow.models.dag import DagTag
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    ti = TaskInstance
    with create_session() as session:
        rows = session.execute(
            select(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, HITLDetail.subject, HITLDetail.body,
                   HITLDetail.options, HITLDetail.created_at)
            .join(HITLDetail, HITLDetail.ti_id == ti.id)
            .join(DagTag, DagTag.dag_id == ti.dag_id)
            .where(DagTag.name == model, ti.operator == APPROVAL_OPERATOR,
                   ti.state == TaskInstanceState.AWAITING_INPUT, HITLDetail.responded_at.is_(None))
            .order_by(HITLDetail.created_at)).all()
    return [{"dag_id": r[0], "dag_run_id": r[1], "task_id": r[2], "map_index": r[3], "subject": r[4],
             "body": r[5], "options": list(r[6] or []),
             "since": r[7].isoformat() if hasattr(r[7], "isoformat") else r[7]} for r in rows]


def may_answer(user: Any, dag_id: str) -> bool:
    """Whether Airflow's auth manager lets ``user`` answer the HITL tasks of ``dag_id``."""
    return may_access_dag(user, dag_id, method="PUT", entity="HITL_DETAIL")


def approvals_for(model: str, user: Any) -> list[dict[str, Any]]:
    """The waiting approvals of ``model``, each with ``may_answer`` for ``user``."""
    found = pending_approvals(model)
    allowed: dict[str, bool] = {}
    for item in found:
        if item["dag_id"] not in allowed:
            allowed[item["dag_id"]] = user is not None and may_answer(user, item["dag_id"])
        item["may_answer"] = allowed[item["dag_id"]]
    return found


def answer_approval(request: Any, user: Any, model: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Answer one of ``model``'s waiting approvals as ``user`` (their token forwarded to Airflow's HITL
    REST API).

    Raises ``HTTPException``: 400 a bad answer, 404 no such waiting approval of this model, 403 not
    allowed, the REST API's own status when it refuses."""
    from fastapi import HTTPException

    choice = ANSWERS.get(str(payload.get("answer") or "").strip().lower())
    if choice is None:
        raise HTTPException(status_code=400, detail=f"answer must be one of {sorted(ANSWERS)}, "
                                                    f"got {payload.get('answer')!r}")
    wanted = (str(payload.get("dag_id") or ""), str(payload.get("dag_run_id") or ""), str(payload.get("task_id") or ""),
              str(payload.get("map_index", -1)))
    item = next((a for a in pending_approvals(model)
                 if (a["dag_id"], a["dag_run_id"], a["task_id"], str(a["map_index"])) == wanted), None)
    if item is None:
        raise HTTPException(status_code=404, detail=f"no waiting approval of model {model!r} at dag {wanted[0]!r}, "
                                                    f"run {wanted[1]!r}, task {wanted[2]!r} (answered already, "
                                                    "timed out, or not this model's)")
    if not may_answer(user, item["dag_id"]):
        raise HTTPException(status_code=403, detail=f"Forbidden: you may not answer the approvals of "
                                                    f"{item['dag_id']!r}")
    path = (f"/api/v2/dags/{quote(item['dag_id'], safe='')}/dagRuns/{quote(item['dag_run_id'], safe='')}/"
            f"taskInstances/{quote(item['task_id'], safe='')}/{item['map_index']}/hitlDetails")
    body = call_airflow_as_user(request, "PATCH", path, {"chosen_options": [choice], "params_input": {}},
                                refused="Airflow refused the answer")
    return {"model": model, "dag_id": item["dag_id"], "dag_run_id": item["dag_run_id"], "task_id": item["task_id"],
            "map_index": item["map_index"], "chosen_options": body.get("chosen_options", [choice]),
            "responded_by": (body.get("responded_by_user") or body.get("responded_by") or {}).get("name")}


# -- page -------------------------------------------------------------------------------------------
def approvals_section(model: dict[str, Any], *, base: str = "/mlops") -> str:
    """The page's "Waiting for approval" section of one model (empty when nothing waits)."""
    waiting = model.get("approvals") or []
    answered = model.get("approval_answered")
    if not waiting and not answered:
        return ""
    name = model["name"]
    out = ["<h3>Waiting for approval</h3>"]
    if answered:
        out.append(f"<p class='approval-answered'>Answered <b>{_e(answered.get('answer'))}</b> for "
                   f"{_e(answered.get('task_id'))} of run {_e(answered.get('dag_run_id'))}.</p>")
    for item in waiting:
        out.append(f"<div class='approval' data-run='{_e(item['dag_run_id'])}' data-task='{_e(item['task_id'])}'>"
                   f"<p><b>{_e(item['subject'])}</b> <span class='muted'>({_e(item['dag_id'])}, run "
                   f"{_e(item['dag_run_id'])}, waiting since {_e(str(item.get('since') or '')[:19].replace('T', ' '))}"
                   ")</span></p>")
        if item.get("body"):
            out.append(f"<pre class='approval-body'>{_e(item['body'])}</pre>")
        if item.get("may_answer"):
            hidden = "".join(f"<input type='hidden' name='{k}' value='{_e(item[k])}'>"
                             for k in ("dag_id", "dag_run_id", "task_id", "map_index"))
            out.append(f"<form class='approval-answer' method='post' action='{base}/models/{quote(name, safe='')}"
                       f"/approvals'>{hidden}<button type='submit' name='answer' value='approve'>Approve</button> "
                       "<button type='submit' name='answer' value='reject'>Reject</button></form>")
        else:
            out.append("<p class='muted'>You may not answer this approval.</p>")
        out.append("</div>")
    return "".join(out)


# -- routes -----------------------------------------------------------------------------------------
def install(app: Any) -> None:
    """Add the approval routes to the Models view's ``app``."""
    from airflow.api_fastapi.core_api.security import GetUserDep
    from fastapi import Body, Form, Request
    from fastapi.responses import JSONResponse, RedirectResponse

    @app.get("/api/models/{model}/approvals")
    def approvals_json(model: str, user: GetUserDep) -> JSONResponse:
        return JSONResponse({"model": model, "approvals": approvals_for(model, user)})

    @app.post("/api/models/{model}/approvals")
    def answer_json(model: str, request: Request, user: GetUserDep,
                    payload: Annotated[dict[str, Any] | None, Body()] = None) -> JSONResponse:
        return JSONResponse(answer_approval(request, user, model, payload or {}))

    @app.post("/models/{model}/approvals")
    def answer_form(model: str, request: Request, user: GetUserDep, dag_id: Annotated[str, Form()],
                    dag_run_id: Annotated[str, Form()], task_id: Annotated[str, Form()],
                    answer: Annotated[str, Form()], map_index: Annotated[str, Form()] = "-1") -> RedirectResponse:
        done = answer_approval(request, user, model, {"dag_id": dag_id, "dag_run_id": dag_run_id, "task_id": task_id,
                                                      "map_index": map_index, "answer": answer})
        back = (f"{request.scope.get('root_path', '')}/models?model={quote(model)}"
                f"&answered={quote(answer)}&answered_run={quote(done['dag_run_id'])}&answered_task={quote(task_id)}")
        return RedirectResponse(back, status_code=303)


__all__ = ["answer_approval", "approvals_for", "approvals_section", "install", "may_answer", "pending_approvals"]
