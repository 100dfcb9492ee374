"""The plug-in target of tests/packages/mlops-echo-target, registered only by its entry point, for
real: its state file, its probe through the operator's loop and through the trigger (same
XCom), what serves where."""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_mlops_provider.deploy.base import DeployProbe, get_deploy_target, serving_everywhere
from airflow_mlops_provider.exceptions import DeploymentError
from tests.trigger_runs import rebuild


def test_the_package_is_found_by_its_entry_point_only():
    from importlib.metadata import entry_points

    (ep,) = [ep for ep in entry_points(group="airflow_mlops_provider.deploy_targets") if ep.name == "echo"]
    assert ep.dist.name == "mlops-echo-target" and ep.value == "mlops_echo_target.target:TARGET"
    assert get_deploy_target("echo").lane.__module__ == "mlops_echo_target.target"


def first_event(trigger) -> dict:
    async def run():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(run())


def test_sync_and_deferred_waits_decide_with_the_same_probe_and_return_the_same_xcom(mlops_home):
    from mlops_echo_target.operators import EchoPromoteOperator
    from mlops_echo_target.probe import EchoProbe
    from mlops_echo_target.state import write_state

    op = EchoPromoteOperator(task_id="promote_traffic", model_name="fraud", timeout=5, poll_interval=0.01,
                             deferrable=True)
    probe = EchoProbe("fraud", "3", "live")
    write_state("fraud", live="2", candidate="3")
    with pytest.raises(TaskDeferred) as deferred:
        op.wait({}, probe, {"model_version": "3"})
    trigger = rebuild(deferred.value.trigger)
    assert trigger.serialize()[1]["probe_kwargs"] == {"model_name": "fraud", "version": "3", "role": "live"}
    write_state("fraud", live="3", candidate=None)
    event = first_event(trigger)
    assert event["status"] == "done"
    resumed = op.execute_complete({}, event)
    op.deferrable = False
    assert resumed == op.wait({}, probe, {"model_version": "3"}) == {
        "model_name": "fraud", "model_version": "3", "serving": {"live": "3", "candidate": None}}


def test_failed_and_timed_out_waits_name_the_resource(mlops_home):
    from mlops_echo_target.operators import EchoPromoteOperator
    from mlops_echo_target.probe import EchoProbe
    from mlops_echo_target.state import write_state

    op = EchoPromoteOperator(task_id="p", model_name="fraud", timeout=0.05, poll_interval=0.01, deferrable=False)
    write_state("fraud", live="2", failed="3")
    with pytest.raises(DeploymentError, match="the echo live of 'fraud' failed: v3 was marked failed"):
        op.wait({}, EchoProbe("fraud", "3", "live"), {})
    with pytest.raises(DeploymentError, match=r"the echo live of 'fraud' did not settle within 0.05s"):
        op.wait({}, EchoProbe("fraud", "4", "live"), {})
    trigger = rebuild(EchoProbeTrigger := _trigger(EchoProbe("fraud", "4", "live")))
    event = first_event(trigger)
    assert event["status"] == "timeout" and EchoProbeTrigger.probe_classpath.endswith("EchoProbe")
    with pytest.raises(DeploymentError, match="did not settle"):
        op.execute_complete({}, event)


def _trigger(probe: DeployProbe):
    import time

    from airflow_mlops_provider.triggers.base import DeployTargetWaitTrigger

    classpath, kwargs = probe.serialize()
    return DeployTargetWaitTrigger(classpath, kwargs, poll_interval=0.0, deadline=time.time() - 1)


def test_what_serves_where(mlops_home):
    from mlops_echo_target.state import write_state

    write_state("fraud", live="2", candidate="3")
    rows = [r for r in serving_everywhere("fraud") if r["target"] == "echo"]
    assert [(r["role"], r["version"], r["traffic_percent"]) for r in rows] == [("live", "2", 100),
                                                                               ("candidate", "3", 0)]
