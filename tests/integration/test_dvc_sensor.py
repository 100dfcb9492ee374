"""DvcNewDataVersionSensor against a real git + DVC repository (processes: integration)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_mlops_provider.exceptions import DataVersionError
from airflow_mlops_provider.hooks.dvc import DvcHook
from airflow_mlops_provider.sensors.dvc import DvcNewDataVersionSensor
from airflow_mlops_provider.triggers.dvc import DvcNewDataVersionTrigger
from tests.trigger_runs import first_event

DATA = "data/tx.csv"
V_A, V_B = b"id,amount\n1,10.5\n", b"id,amount\n1,10.5\n2,3.25\n"


pytestmark = [pytest.mark.integration]


@pytest.fixture
def dvc_conn(dvc_repo, monkeypatch):
    def set_conn(**fields):
        monkeypatch.setenv("AIRFLOW_CONN_DVC_DEFAULT",
                           json.dumps({"conn_type": "dvc", "host": str(dvc_repo.path), **fields}))

    set_conn()
    return set_conn


def current(dvc_repo, rev: str | None = None) -> dict:
    return DvcHook.for_repo(str(dvc_repo.path)).data_version(DATA, rev).to_dict()


def test_dvc_poke_is_done_only_for_a_different_md5(dvc_repo, dvc_conn):
    dvc_repo.commit_file(DATA, V_A, "A")
    a = current(dvc_repo)
    same = DvcNewDataVersionSensor(task_id="wait", path=DATA, since_md5=a["md5"], deferrable=False)
    assert not same.poke({}).is_done
    dvc_repo.commit_file(DATA, V_B, "B")
    done = same.poke({})
    assert done.is_done and done.xcom_value == current(dvc_repo)
    assert done.xcom_value["md5"] != a["md5"]


def test_dvc_different_version_returns_without_deferring(dvc_repo, dvc_conn):
    commit = dvc_repo.commit_file(DATA, V_A, "A")
    sensor = DvcNewDataVersionSensor(task_id="wait", path=DATA, since_md5="0" * 32, deferrable=True)
    result = sensor.execute({})
    assert result == current(dvc_repo)
    assert result["commit"] == commit and result["repo"] == str(dvc_repo.path) and "status" not in result


def test_dvc_same_version_defers_with_since_md5(dvc_repo, dvc_conn):
    dvc_repo.commit_file(DATA, V_A, "A")
    a = current(dvc_repo)
    sensor = DvcNewDataVersionSensor(task_id="wait", path=DATA, since_md5=a["md5"], deferrable=True,
                                     poke_interval=20, timeout=3600)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DvcNewDataVersionTrigger)
    assert (trigger.repo, trigger.path, trigger.since_md5, trigger.poll_interval) == (
        str(dvc_repo.path), DATA, a["md5"], 20)
    assert trigger.state_path is None  # a task's wait needs no state across runs
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=3600)


def test_dvc_execute_complete_returns_the_version_without_status(dvc_repo, dvc_conn):
    dvc_repo.commit_file(DATA, V_A, "A")
    a = current(dvc_repo)
    sensor = DvcNewDataVersionSensor(task_id="wait", path=DATA, since_md5=a["md5"], deferrable=True,
                                     poke_interval=0.1)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})

    async def scenario():
        task = asyncio.create_task(first_event(deferred.value.trigger))
        await asyncio.sleep(1.0)
        assert not task.done()
        await asyncio.to_thread(dvc_repo.commit_file, DATA, V_B, "B")
        return await asyncio.wait_for(task, 15)

    event = asyncio.run(scenario())
    b = current(dvc_repo)
    result = getattr(sensor, deferred.value.method_name)({}, event)
    assert result == {"previous_md5": a["md5"], **b}
    assert "status" not in result
    with pytest.raises(DataVersionError, match="unexpected event"):
        sensor.execute_complete({}, {"status": "error", "message": "boom"})


def test_dvc_deferred_wait_follows_the_connections_rev(dvc_repo, dvc_conn):
    """The connection's default rev (``schema``) applies to the deferred wait as to poke."""
    dvc_repo.commit_file(DATA, V_A, "A")
    dvc_repo.git("branch", "release")
    a = current(dvc_repo, "release")
    dvc_repo.commit_file(DATA, V_B, "B on main only")
    dvc_conn(schema="release")
    sensor = DvcNewDataVersionSensor(task_id="wait", path=DATA, since_md5=a["md5"], deferrable=True,
                                     poke_interval=0.1)
    assert not sensor.poke({}).is_done  # release still has A
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})

    async def scenario():
        events: list[dict] = []

        async def consume():
            async for event in deferred.value.trigger.run():
                events.append(event.payload)

        task = asyncio.create_task(consume())
        await asyncio.sleep(2.0)
        quiet = list(events)
        await asyncio.to_thread(dvc_repo.git, "branch", "-f", "release", "main")
        await asyncio.wait_for(task, 15)
        return quiet, events

    quiet, events = asyncio.run(scenario())
    assert quiet == [], "the deferred wait watched HEAD of main, not the connection's rev 'release'"
    assert len(events) == 1 and events[0]["md5"] == current(dvc_repo, "release")["md5"]
    assert events[0]["rev"] == "release"
