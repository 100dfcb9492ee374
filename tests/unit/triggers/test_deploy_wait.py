"""The one trigger every deploy target's wait runs: its probe's verdict as one event, deadline,
errors, transient retries, and the serialize round trip of the probe's classpath and kwargs."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import ClassVar

from airflow_mlops_provider.deploy.base import DeployProbe
from airflow_mlops_provider.triggers.base import DeployTargetWaitTrigger
from tests.trigger_runs import rebuild


class Transient(Exception):
    pass


@dataclass
class ScriptedProbe(DeployProbe):
    """Reads the next status (or raises the next error) of a script; done when status["done"]."""

    name: str
    script: ClassVar[list] = []

    def read(self) -> dict:
        step = ScriptedProbe.script.pop(0) if ScriptedProbe.script else {"done": False}
        if isinstance(step, Exception):
            raise step
        return step

    def classify(self, status: dict):
        return ("done", {"seen": status["n"]}) if status.get("done") else None

    def is_transient(self, err: Exception) -> bool:
        return isinstance(err, Transient)


PROBE = f"{__name__}.ScriptedProbe"


def trigger(deadline: float | None = None, details: dict | None = None) -> DeployTargetWaitTrigger:
    return DeployTargetWaitTrigger(PROBE, {"name": "svc"}, poll_interval=0.0, deadline=deadline, details=details)


def events(t: DeployTargetWaitTrigger) -> list[dict]:
    async def collect():
        return [e.payload async for e in t.run()]

    return asyncio.run(collect())


def test_one_event_when_done_after_transient_errors():
    ScriptedProbe.script = [Transient("slow down"), {"done": False, "n": 1}, {"done": True, "n": 2}]
    assert events(trigger(details={"k": 1})) == [
        {"status": "done", "probe": {"classpath": PROBE, "kwargs": {"name": "svc"}}, "details": {"k": 1},
         "state": {"done": True, "n": 2}, "seen": 2}]


def test_error_and_timeout_events():
    ScriptedProbe.script = [RuntimeError("forbidden")]
    [event] = events(trigger())
    assert event["status"] == "error" and event["message"] == "forbidden" and event["state"] is None
    ScriptedProbe.script = [{"done": False, "n": 1}]
    [event] = events(trigger(deadline=time.time() - 1))
    assert event["status"] == "timeout" and event["state"] == {"done": False, "n": 1}


def test_a_classpath_that_is_not_a_probe_is_an_error_event():
    [event] = events(DeployTargetWaitTrigger("json.JSONDecoder", {}, 0.0))
    assert event["status"] == "error" and "is not a DeployProbe" in event["message"]


def test_the_trigger_round_trips_through_its_classpath_with_json_safe_kwargs():
    t = DeployTargetWaitTrigger(PROBE, {"name": "svc"}, 1.0, 5.0, {"a": [1]})
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_mlops_provider.triggers.base.DeployTargetWaitTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert rebuild(t).serialize() == (classpath, kwargs)
    assert DeployProbe.load(kwargs["probe_classpath"], kwargs["probe_kwargs"]) == ScriptedProbe("svc")
