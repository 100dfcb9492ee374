"""A human approval gate between a verified canary and its full promotion.

Built on the standard provider's Human-in-the-loop ``ApprovalOperator`` (Airflow 3.1+): the
reviewer answers in the web UI ("Required actions") or through the HITL REST API. Two
differences suit a deployment gate:

- ``required`` is templated, so a DAG Param can switch the gate off; then the task succeeds at
  once without asking anybody.
- "Reject" (or no answer before ``response_timeout``, which defaults to "Reject") fails the
  task with :class:`DeploymentRejected` naming who rejected it, so a ``one_failed`` rollback
  downstream sends the canary's traffic back. The standard operator would only skip what
  follows, which leaves the canary serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator

from airflow_mlops_provider.exceptions import DeploymentRejected
from airflow_mlops_provider.operators.deploy import truthy


class DeploymentApprovalOperator(ApprovalOperator):
    """Ask a human to approve a deployment; a rejection fails the task so the rollback runs.

    :param required: ask at all (templated, e.g. ``"{{ params.require_approval }}"``).
    :param response_timeout: how long to wait for an answer; on timeout the answer is "Reject".

    Returns ``{"approved": True, "required": bool, "by": user name or None, "at": ISO time or None,
    "timed_out": False}``; the same record (with ``approved: False`` after a rejection) is also
    pushed under the XCom key ``answer``.
    """

    template_fields: Sequence[str] = (*HITLOperator.template_fields, "required")
    ui_color = "#ffd966"

    def __init__(self, *, required: bool | str = True, subject: str = "Approve the deployment?",
                 response_timeout: timedelta | None = timedelta(hours=24), **kwargs: Any) -> None:
        kwargs.setdefault("defaults", [self.REJECT])
        kwargs.setdefault("retries", 0)  # a retry would ask again after a rejection
        super().__init__(subject=subject, response_timeout=response_timeout, **kwargs)
        self.required = required

    def execute(self, context: Any) -> Any:
        if not truthy(self.required):
            self.log.info("Approval not required for this run: proceeding")
            return {"approved": True, "required": False, "by": None, "at": None, "timed_out": False}
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        answer = HITLOperator.execute_complete(self, context, event)
        user = answer.get("responded_by_user") or {}
        by = (user.get("name") or user.get("id")) if isinstance(user, dict) else str(user)
        at = answer.get("responded_at")
        at = at.isoformat() if hasattr(at, "isoformat") else at
        approved = answer["chosen_options"] == [self.APPROVE]
        timed_out = not approved and (bool(event.get("timedout")) or not by)
        record = {"approved": approved, "required": True, "by": None if timed_out else by, "at": at,
                  "timed_out": timed_out}
        # Kept under its own key so a rollback can say who rejected it even though this task failed.
        context["ti"].xcom_push(key="answer", value=record)
        if approved:
            self.log.info("Approved by %s at %s", by, at)
            return record
        if timed_out:
            raise DeploymentRejected(
                f"{self.subject}: no answer within {self.response_timeout}; the default answer is Reject",
                reason="timeout", task_id=self.task_id)
        raise DeploymentRejected(f"{self.subject}: rejected by {by} at {at}", reason="rejected", by=by, at=at,
                                 task_id=self.task_id)
