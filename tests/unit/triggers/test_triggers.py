"""Triggers: serialize round trips, and real runs against real files.

Nothing is faked: ObjectStoragePathTrigger polls a real directory. DvcNewDataVersionTrigger runs
against a real git + DVC repository in tests/integration/test_dvc_trigger.py.
"""

from __future__ import annotations

import asyncio
import time

from airflow.triggers.base import BaseEventTrigger

from airflow_mlops_provider.triggers.dvc import DvcNewDataVersionTrigger
from airflow_mlops_provider.triggers.object_storage import ObjectStoragePathTrigger
from tests.trigger_runs import Run, quiet_for, rebuild

DATA = "data/tx.csv"


def test_object_storage_trigger_round_trips():
    trigger = ObjectStoragePathTrigger("s3://bucket/day=2026-01-01/part.parquet", "aws_default", 12.5,
                                       1_900_000_000.0)
    again = rebuild(trigger)
    assert again.serialize() == trigger.serialize()
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops_provider.triggers.object_storage.ObjectStoragePathTrigger"
    assert kwargs == {"path": "s3://bucket/day=2026-01-01/part.parquet", "conn_id": "aws_default",
                      "poll_interval": 12.5, "deadline": 1_900_000_000.0}
    assert rebuild(ObjectStoragePathTrigger("/tmp/x")).serialize()[1]["deadline"] is None


def test_dvc_trigger_round_trips_and_is_an_event_trigger(tmp_path):
    trigger = DvcNewDataVersionTrigger(repo="/srv/data-repo", path=DATA, rev="main", since_md5="ab" * 16,
                                       state_path=str(tmp_path / "state.json"), poll_interval=5.0)
    again = rebuild(trigger)
    assert isinstance(again, BaseEventTrigger)  # usable by an AssetWatcher
    assert again.serialize() == trigger.serialize()
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops_provider.triggers.dvc.DvcNewDataVersionTrigger"
    assert kwargs == {"repo": "/srv/data-repo", "path": DATA, "rev": "main", "since_md5": "ab" * 16,
                      "state_path": str(tmp_path / "state.json"), "poll_interval": 5.0}
    # Same kwargs, same hash: the dag-processor sees one watcher trigger, not a new one per parse.
    assert BaseEventTrigger.hash(classpath, kwargs) == BaseEventTrigger.hash(*again.serialize())


# -- ObjectStoragePathTrigger ----------------------------------------------------------------
def test_path_trigger_fires_found_with_size_once_the_file_lands(tmp_path):
    path = tmp_path / "day=2026-01-01" / "part-0.parquet"
    trigger = rebuild(ObjectStoragePathTrigger(str(path), None, 0.05, time.time() + 30))

    async def scenario():
        run = Run(trigger)
        await asyncio.sleep(0.4)
        assert run.events == [] and not run.task.done()  # polling, nothing yet
        path.parent.mkdir()
        path.write_bytes(b"x" * 1234)
        return await run.finish(10)

    started = time.monotonic()
    assert asyncio.run(scenario()) == [{"status": "found", "path": str(path), "size": 1234}]
    assert time.monotonic() - started < 5


def test_path_trigger_times_out_at_its_deadline(tmp_path):
    path = str(tmp_path / "never.parquet")
    deadline = time.time() + 0.5
    trigger = ObjectStoragePathTrigger(path, None, 0.05, deadline)

    async def scenario():
        return await Run(trigger).finish(10)

    assert asyncio.run(scenario()) == [{"status": "timeout", "path": path}]
    assert time.time() >= deadline


def test_path_trigger_without_deadline_keeps_waiting(tmp_path):
    trigger = ObjectStoragePathTrigger(str(tmp_path / "later.parquet"), None, 0.05, None)
    assert asyncio.run(quiet_for(trigger, 0.5)) == []


def test_path_trigger_reports_an_unreadable_location_once(tmp_path):
    path = "nosuchproto://bucket/part.parquet"
    trigger = ObjectStoragePathTrigger(path, None, 0.05, time.time() + 30)

    async def scenario():
        return await Run(trigger).finish(10)

    [event] = asyncio.run(scenario())
    assert event["status"] == "error" and event["path"] == path and event["message"]


# -- DvcNewDataVersionTrigger ----------------------------------------------------------------
