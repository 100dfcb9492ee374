"""DeploymentApprovalOperator: the optional gate, and what an answer does (the HITL wait itself
runs for real in tests/integration/test_retrain_approval.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_mlops_provider.exceptions import DeploymentRejected
from airflow_mlops_provider.operators.approval import DeploymentApprovalOperator


class _TI:
    def __init__(self) -> None:
        self.xcom: dict = {}

    def xcom_push(self, key: str, value) -> None:
        self.xcom[key] = value


def event(option: str, user: dict | None = None, **extra) -> dict:
    return {"chosen_options": [option], "params_input": {}, "responded_by_user": user,
            "responded_at": datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc), **extra}


@pytest.fixture
def op() -> DeploymentApprovalOperator:
    return DeploymentApprovalOperator(task_id="kserve_approve", subject="Promote fraud v7 on kserve?")


def test_defaults_reject_on_timeout_and_never_retry(op):
    assert op.defaults == ["Reject"] and op.retries == 0
    assert op.response_timeout == timedelta(hours=24)
    assert "required" in op.template_fields and "subject" in op.template_fields


@pytest.mark.parametrize("required", [False, "False", "false", "", 0])
def test_not_required_proceeds_without_asking(required):
    op = DeploymentApprovalOperator(task_id="gate", required=required)
    # No HITL request is written: execute returns before touching the API.
    assert op.execute({"ti": _TI()}) == {"approved": True, "required": False, "by": None, "at": None,
                                         "timed_out": False}


def test_approval_names_the_reviewer(op):
    ti = _TI()
    answer = op.execute_complete({"ti": ti}, event("Approve", {"id": "u1", "name": "alice"}))
    assert answer == {"approved": True, "required": True, "by": "alice", "at": "2026-11-25T09:30:00+00:00",
                      "timed_out": False}
    assert ti.xcom["answer"] == answer


def test_rejection_fails_naming_the_reviewer(op):
    ti = _TI()
    with pytest.raises(DeploymentRejected, match="Promote fraud v7 on kserve\\?: rejected by bob") as err:
        op.execute_complete({"ti": ti}, event("Reject", {"id": "u2", "name": "bob"}))
    assert err.value.context["reason"] == "rejected" and err.value.context["by"] == "bob"
    assert ti.xcom["answer"]["approved"] is False and ti.xcom["answer"]["by"] == "bob"


def test_timeout_default_is_a_rejection(op):
    ti = _TI()
    with pytest.raises(DeploymentRejected, match="no answer within 1 day") as err:
        op.execute_complete({"ti": ti}, event("Reject", None, timedout=True))
    assert err.value.context["reason"] == "timeout"
    assert ti.xcom["answer"] == {"approved": False, "required": True, "by": None,
                                 "at": "2026-11-25T09:30:00+00:00", "timed_out": True}


def test_an_answer_outside_the_options_is_refused(op):
    with pytest.raises(ValueError, match="not in"):
        op.execute_complete({"ti": _TI()}, event("Maybe", {"id": "u3", "name": "carol"}))
