"""The polling loop every deploy target's trigger shares: one event, deadline, errors, transient retries."""

from __future__ import annotations

import asyncio
import importlib
import time

from airflow_mlops_provider.triggers.base import DeployTargetWaitTrigger
from airflow_mlops_provider.triggers.kserve import KServeInferenceServiceReadyTrigger
from airflow_mlops_provider.triggers.local import LocalServerReadyTrigger
from airflow_mlops_provider.triggers.sagemaker import SageMakerEndpointSettledTrigger


class Transient(Exception):
    pass


class ScriptedTrigger(DeployTargetWaitTrigger):
    """Reads the next status (or raises the next error) of a script; done when status["done"]."""

    script: list = []

    def __init__(self, name: str, poll_interval: float = 0.0, deadline: float | None = None,
                 details: dict | None = None) -> None:
        super().__init__(poll_interval=poll_interval, deadline=deadline, details=details)
        self.name = name

    def identity(self) -> dict:
        return {"name": self.name}

    def status_reader(self):
        steps = iter(self.script)

        def read() -> dict:
            step = next(steps, {"done": False})
            if isinstance(step, Exception):
                raise step
            return step

        return read

    def classify(self, status: dict):
        return ("ready", {"seen": status["n"]}) if status.get("done") else None

    def timeout_payload(self, status: dict) -> dict:
        return {"last": status}

    def is_transient(self, err: Exception) -> bool:
        return isinstance(err, Transient)


def events(trigger: DeployTargetWaitTrigger) -> list[dict]:
    async def collect():
        return [e.payload async for e in trigger.run()]

    return asyncio.run(collect())


def test_one_event_when_done_after_transient_errors():
    ScriptedTrigger.script = [Transient("slow down"), {"done": False, "n": 1}, {"done": True, "n": 2}]
    assert events(ScriptedTrigger("svc", details={"k": 1})) == [
        {"status": "ready", "name": "svc", "details": {"k": 1}, "seen": 2}]


def test_error_and_timeout_events():
    ScriptedTrigger.script = [RuntimeError("forbidden")]
    assert events(ScriptedTrigger("svc")) == [
        {"status": "error", "name": "svc", "details": None, "message": "forbidden"}]
    ScriptedTrigger.script = [{"done": False, "n": 1}]
    [event] = events(ScriptedTrigger("svc", deadline=time.time() - 1))
    assert event["status"] == "timeout" and event["last"] == {"done": False, "n": 1}


def test_every_deploy_trigger_round_trips_through_its_classpath():
    for trigger in (ScriptedTrigger("svc", 1.0, 5.0, {"a": [1]}),
                    KServeInferenceServiceReadyTrigger("churn", "models", "k8s", 10, 2.0, 9.0, {"b": 1}),
                    SageMakerEndpointSettledTrigger("ep", "aws_x", "eu-west-1", 3.0, 9.0, {"c": 1}),
                    LocalServerReadyTrigger({"version": "1", "port": 5001, "pid": 1}, 0.5, 9.0, {"d": 1})):
        classpath, kwargs = trigger.serialize()
        module, _, name = classpath.rpartition(".")
        rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
        assert rebuilt.serialize() == (classpath, kwargs)
        assert kwargs["details"] and kwargs["deadline"] in (5.0, 9.0)
