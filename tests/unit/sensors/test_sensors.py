"""Sensors: poke, defer (``TaskDeferred`` carrying the right trigger), return at once, resume.

Real files; the only stand-in is the empty ``context`` dict, which these sensors do not read.
The DVC sensor runs against a real git + DVC repository in tests/integration/test_dvc_sensor.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferred

from airflow_mlops_provider.exceptions import DataFileError
from airflow_mlops_provider.sensors.object_storage import ObjectStoragePartitionSensor
from airflow_mlops_provider.triggers.object_storage import ObjectStoragePathTrigger
from tests.trigger_runs import first_event

# -- ObjectStoragePartitionSensor ------------------------------------------------------------


def test_partition_poke_is_done_once_the_file_exists(mlops_home):
    path = mlops_home / "day=2026-01-01.parquet"
    sensor = ObjectStoragePartitionSensor(task_id="wait", path=str(path), deferrable=False)
    assert not sensor.poke({}).is_done
    path.write_bytes(b"x" * 7)
    done = sensor.poke({})
    assert done.is_done and done.xcom_value == {"path": str(path), "size": 7}
    # The synchronous execute loop returns the same shape as the deferred path.
    assert sensor.execute({}) == {"path": str(path), "size": 7}


def test_partition_outside_the_allowed_roots_is_refused_before_looking(tmp_path, mlops_home):
    from airflow.sdk.exceptions import AirflowFailException

    outside = tmp_path / "elsewhere.parquet"
    outside.write_bytes(b"x")
    for deferrable in (False, True):
        sensor = ObjectStoragePartitionSensor(task_id="wait", path=str(outside), deferrable=deferrable)
        with pytest.raises(AirflowFailException, match="outside the allowed roots"):
            sensor.execute({})


def test_partition_missing_times_out_when_poking(mlops_home):
    sensor = ObjectStoragePartitionSensor(task_id="wait", path=str(mlops_home / "never.parquet"),
                                          deferrable=False, timeout=0.3, poke_interval=0.1)
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute({})


def test_partition_missing_defers_with_path_and_deadline(mlops_home):
    path = str(mlops_home / "later.parquet")
    sensor = ObjectStoragePartitionSensor(task_id="wait", path=path, conn_id=None, deferrable=True,
                                          timeout=600, poke_interval=15)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ObjectStoragePathTrigger)
    assert (trigger.path, trigger.conn_id, trigger.poll_interval) == (path, None, 15)
    assert before + 600 <= trigger.deadline <= time.time() + 600
    assert deferred.value.method_name == "execute_complete"
    # The task-level deferral timeout is a backstop behind the trigger's own deadline.
    assert deferred.value.timeout is not None and deferred.value.timeout > timedelta(seconds=600)


def test_partition_existing_returns_without_deferring(mlops_home):
    path = mlops_home / "today.parquet"
    path.write_bytes(b"abc")
    sensor = ObjectStoragePartitionSensor(task_id="wait", path=str(path), deferrable=True)
    assert sensor.execute({}) == {"path": str(path), "size": 3}


def test_partition_execute_complete_found_timeout_and_error(mlops_home):
    path = str(mlops_home / "missing.parquet")
    sensor = ObjectStoragePartitionSensor(task_id="wait", path=path, deferrable=True, timeout=90)
    assert sensor.execute_complete({}, {"status": "found", "path": path, "size": 5}) == {"path": path, "size": 5}
    with pytest.raises(AirflowSensorTimeout) as timed_out:
        sensor.execute_complete({}, {"status": "timeout", "path": path})
    assert path in str(timed_out.value) and "90s" in str(timed_out.value)
    with pytest.raises(DataFileError) as failed:
        sensor.execute_complete({}, {"status": "error", "path": path, "message": "403 Forbidden"})
    assert not isinstance(failed.value, AirflowSensorTimeout)
    assert path in str(failed.value) and "403 Forbidden" in str(failed.value)


def test_partition_deferred_trigger_fires_and_resumes(mlops_home):
    """The trigger the sensor defers with really finds the file, and its event resumes the task."""
    path = mlops_home / "later.parquet"
    sensor = ObjectStoragePartitionSensor(task_id="wait", path=str(path), deferrable=True, timeout=60,
                                          poke_interval=0.05)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})

    async def scenario():
        task = asyncio.create_task(first_event(deferred.value.trigger))
        await asyncio.sleep(0.2)
        path.write_bytes(b"12345")
        return await asyncio.wait_for(task, 10)

    event = asyncio.run(scenario())
    resume = getattr(sensor, deferred.value.method_name)
    assert resume({}, event) == {"path": str(path), "size": 5}
