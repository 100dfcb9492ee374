"""Waiting for the day's partition: poke, deferral, the trigger itself, and a timeout that names the path."""

from __future__ import annotations

import asyncio
import importlib
import time

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferred

from airflow_mlops_provider.sensors.object_storage import ObjectStoragePartitionSensor
from airflow_mlops_provider.triggers.object_storage import ObjectStoragePathTrigger

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def allowed_roots(tmp_path, monkeypatch):
    """The partitions live in the test's folder: allow it, as a deployment would."""
    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", str(tmp_path))


def test_existing_partition_returns_without_deferring(tmp_path):
    path = tmp_path / "2026-11-20.parquet"
    path.write_bytes(b"x" * 10)
    sensor = ObjectStoragePartitionSensor(task_id="wait", path=str(path), deferrable=True)
    assert sensor.execute({}) == {"path": str(path), "size": 10}


def test_missing_partition_defers_with_a_deadline(tmp_path):
    path = tmp_path / "later.parquet"
    sensor = ObjectStoragePartitionSensor(task_id="wait", path=str(path), deferrable=True, timeout=120,
                                          poke_interval=5)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ObjectStoragePathTrigger)
    assert trigger.path == str(path) and trigger.poll_interval == 5
    assert time.time() < trigger.deadline <= time.time() + 120
    assert deferred.value.method_name == "execute_complete"


def test_trigger_round_trip_and_events(tmp_path):
    path = tmp_path / "p.parquet"
    trigger = ObjectStoragePathTrigger(str(path), None, 0.05, time.time() + 5)
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)

    async def first_event(t):
        async for event in t.run():
            return event.payload

    async def appear_later():
        await asyncio.sleep(0.3)
        path.write_bytes(b"abc")

    async def scenario():
        waiter = asyncio.create_task(first_event(again))
        await appear_later()
        return await asyncio.wait_for(waiter, 10)

    assert asyncio.run(scenario()) == {"status": "found", "path": str(path), "size": 3}
    gone = ObjectStoragePathTrigger(str(tmp_path / "never.parquet"), None, 0.05, time.time() + 0.3)
    assert asyncio.run(first_event(gone)) == {"status": "timeout", "path": str(tmp_path / "never.parquet")}


def test_timeout_and_errors_name_the_path(tmp_path):
    path = str(tmp_path / "missing.parquet")
    sensor = ObjectStoragePartitionSensor(task_id="wait", path=path, deferrable=True, timeout=30)
    with pytest.raises(AirflowSensorTimeout, match=f"input partition '{path}' did not appear within 30s"):
        sensor.execute_complete({}, {"status": "timeout", "path": path})
    with pytest.raises(Exception, match=f"cannot check input partition '{path}': access denied"):
        sensor.execute_complete({}, {"status": "error", "path": path, "message": "access denied"})
    assert sensor.execute_complete({}, {"status": "found", "path": path, "size": 1}) == {"path": path, "size": 1}


def test_poke_sees_the_partition_when_it_lands(tmp_path):
    sensor = ObjectStoragePartitionSensor(task_id="wait", path=str(tmp_path / "x.parquet"), deferrable=False,
                                          timeout=1, poke_interval=0.2, mode="poke")
    assert not sensor.poke({}).is_done
    (tmp_path / "x.parquet").write_bytes(b"1")
    done = sensor.poke({})
    assert done.is_done and done.xcom_value == {"path": str(tmp_path / "x.parquet"), "size": 1}
