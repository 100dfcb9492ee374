"""The local deploy target against real ``mlflow models serve`` processes on loopback.

Two versions of a tiny sklearn model are registered in the embedded sqlite store under
MLOPS_HOME (``@champion`` on v1, each run with its holdout). Every test kills the servers it
started, recorded or not.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import urllib.request
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from airflow_mlops_provider.core.local_serving import Server, invoke, is_running
from airflow_mlops_provider.exceptions import LocalServingError, ModelNotFoundError
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.hooks.mlflow_serving import MlflowServingHook
from airflow_mlops_provider.operators.deploy_local import (
    LocalDeployModelVersionOperator,
    LocalPromoteModelVersionOperator,
    LocalRollbackModelVersionOperator,
    LocalUndeployModelOperator,
    LocalVerifyDeploymentOperator,
)
from airflow_mlops_provider.triggers.base import DeployTargetWaitTrigger
from tests.fakes.mlflow_models import register_versions

pytestmark = pytest.mark.integration

MODEL = "local-fraud"
FAST = {"model_name": MODEL, "timeout": 120, "poll_interval": 0.2, "deferrable": False}


def _servers_of(home: Path) -> list[int]:
    """Pids of every process serving a model copy from ``home`` (our servers)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmdline and any(str(home / "serving" / "models").encode() in arg for arg in cmdline):
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def registry(mlops_home, tmp_path):
    """v1 (``@champion``) and v2 of MODEL, each with a signature and its run's holdout."""
    out = register_versions(MODEL, tmp_path)
    try:
        yield out
    finally:
        MlflowServingHook().stop_all(MODEL)
        for pid in _servers_of(mlops_home):  # anything started but never recorded
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def run(op_cls, **kwargs) -> dict:
    return op_cls(task_id=op_cls.__name__, **{**FAST, **kwargs}).execute({})


def deploy(version: str, **kwargs) -> dict:
    return run(LocalDeployModelVersionOperator, model_version=version, **kwargs)


def verify(deployment: dict, challenger: dict, **kwargs) -> dict:
    return LocalVerifyDeploymentOperator(task_id="verify", deployment=deployment, challenger=challenger,
                                         **kwargs).execute({})


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def state() -> dict:
    return json.loads(MlflowServingHook().state_path(MODEL).read_text())


def test_deploy_verify_promote_and_idempotent_reruns(registry):
    v1, v2 = registry
    first = deploy("@champion")
    assert first["role"] == "candidate" and first["action"] == "started" and first["model_version"] == v1["version"]
    assert first["ready"] is True and answers(first["url"])
    again = deploy(v1["version"])  # rerun: same process, nothing started
    assert again["action"] == "unchanged" and again["pid"] == first["pid"]
    live = run(LocalPromoteModelVersionOperator)
    assert live["action"] == "promoted" and live["model_version"] == v1["version"] and live["stopped_version"] is None
    assert run(LocalPromoteModelVersionOperator)["action"] == "unchanged"
    assert deploy(v1["version"])["role"] == "live"  # already live: nothing beside it

    canary = deploy(v2["version"])
    assert canary["role"] == "candidate" and canary["live_version"] == v1["version"]
    assert canary["port"] != live["port"] and answers(canary["url"]) and answers(live["url"])
    assert state()["candidate"]["version"] == v2["version"] and state()["live"]["version"] == v1["version"]

    verified = verify(canary, v2)
    assert verified["url"] == canary["url"] and verified["requests"] == 5 and verified["error_rate"] == 0.0
    assert verified["rows"] == 5 and verified["p95_latency_ms"] > 0

    promoted = run(LocalPromoteModelVersionOperator)
    assert promoted["model_version"] == v2["version"] and promoted["stopped_version"] == v1["version"]
    assert not is_running(Server.from_dict({**live, "version": v1["version"]})) and not answers(live["url"])
    assert invoke(promoted["url"], [[1.0, 0.0], [0.0, 3.0]], ["amount", "age"])["rows"] == 2
    current = state()
    assert current["candidate"] is None
    assert (current["live"]["version"], current["live"]["pid"]) == (v2["version"], canary["pid"])


def test_failed_verify_rolls_back_to_the_champion(registry):
    v1, v2 = registry
    deploy(v1["version"])
    live = run(LocalPromoteModelVersionOperator)
    canary = deploy(v2["version"])
    with pytest.raises(LocalServingError, match=r"p95 latency .* of http://127\.0\.0\.1:\d+ is above the 0 ms limit"):
        verify(canary, v2, max_latency_ms=0.001)

    rolled = run(LocalRollbackModelVersionOperator)
    assert rolled["action"] == "rolled_back" and rolled["stopped_versions"] == [v2["version"]]
    assert rolled["model_version"] == v1["version"] and rolled["pid"] == live["pid"]
    assert not answers(canary["url"]) and answers(live["url"])
    assert state()["candidate"] is None and state()["live"]["version"] == v1["version"]
    again = run(LocalRollbackModelVersionOperator)  # a rerun changes nothing
    assert again["action"] == "unchanged" and again["pid"] == live["pid"]


def test_rollback_starts_the_champion_or_skips_without_one(registry):
    v1, _ = registry
    client = MlflowHook().client
    client.delete_registered_model_alias(MODEL, "champion")
    with pytest.raises(AirflowSkipException, match="no @champion and no candidate"):
        run(LocalRollbackModelVersionOperator)
    client.set_registered_model_alias(MODEL, "champion", v1["version"])
    started = run(LocalRollbackModelVersionOperator)  # nothing serves: the champion is started
    assert started["action"] == "started" and started["model_version"] == v1["version"] and answers(started["url"])
    assert state()["live"]["pid"] == started["pid"]
    stopped = LocalUndeployModelOperator(task_id="undeploy", model_name=MODEL).execute({})
    assert stopped == {"model_name": MODEL, "stopped_versions": [v1["version"]]}
    assert not answers(started["url"]) and state() == {"model": MODEL, "live": None, "candidate": None}


def test_deferred_deploy_round_trips_and_returns_the_sync_shape(registry):
    _, v2 = registry
    op = LocalDeployModelVersionOperator(task_id="deploy", **{**FAST, "deferrable": True},
                                         model_version=v2["version"])
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops_provider.triggers.base.DeployTargetWaitTrigger"
    assert kwargs["probe_classpath"] == "airflow_mlops_provider.deploy.local.LocalServerProbe"
    assert json.loads(json.dumps(kwargs)) == kwargs
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert isinstance(rebuilt, DeployTargetWaitTrigger) and rebuilt.serialize() == (classpath, kwargs)

    async def first_event():
        async for event in rebuilt.run():
            return event.payload

    event = asyncio.run(first_event())
    assert event["status"] == "done"
    resumed = op.execute_complete({}, event)
    sync = deploy(v2["version"])
    assert resumed.keys() == sync.keys() and sync["action"] == "unchanged"
    assert {k: v for k, v in resumed.items() if k != "action"} == {k: v for k, v in sync.items() if k != "action"}
    with pytest.raises(LocalServingError, match="no usable event"):
        op.execute_complete({}, {"status": "bogus"})
    with pytest.raises(LocalServingError, match="exited before it answered"):
        op.execute_complete({}, {**event, "status": "failed", "state": {**event["state"], "alive": False,
                                                                        "healthy": False}})


def test_bad_input_names_the_version_alias_or_field_and_starts_nothing(registry):
    with pytest.raises(ModelNotFoundError, match=r"'local-fraud' has no version 99"):
        deploy("99")
    with pytest.raises(ModelNotFoundError, match=r"'local-fraud' has no alias 'nope'"):
        deploy("@nope")
    with pytest.raises(LocalServingError, match="port 70000"):
        deploy("1", port=70000)
    with pytest.raises(LocalServingError, match="model name 'a/b'"):
        run(LocalDeployModelVersionOperator, model_version="1", model_name="a/b")
    with pytest.raises(LocalServingError, match="no candidate server to promote"):
        run(LocalPromoteModelVersionOperator)
    assert not MlflowServingHook().state(MODEL).servers()
