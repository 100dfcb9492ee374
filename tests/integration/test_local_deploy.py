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

from airflow_mlops_provider.core import ledger
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
from tests.conftest import conn_env
from tests.fakes.mlflow_models import register_versions
from tests.prometheus_stack import prometheus_stack, scraped

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
        elif any(b"capture_server:app" in arg for arg in cmdline):  # the capturing server: its model is in env
            try:
                if str(home / "serving" / "models").encode() in (proc / "environ").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def registry(mlops_home, tmp_path):
    """v1 (``@champion``) and v2 of MODEL, each with a signature and its run's holdout."""
    yield from _serving_cleaned(mlops_home, register_versions(MODEL, tmp_path))


@pytest.fixture
def registry_with_a_dissenter(mlops_home, tmp_path):
    """v1 (``@champion``), v2 (answers like v1) and v3 (learned the inverted label: answers unlike v1)."""
    yield from _serving_cleaned(mlops_home, register_versions(MODEL, tmp_path, count=3, flipped=(3,)))


def _serving_cleaned(mlops_home: Path, out: list[dict]):
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


def verify(deployment: dict, challenger: dict, context: dict | None = None, **kwargs) -> dict:
    return LocalVerifyDeploymentOperator(task_id="verify", deployment=deployment, challenger=challenger,
                                         **kwargs).execute(context or {})


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
    assert not answers(started["url"]) and state() == {"model": MODEL, "live": None, "candidate": None, "capture_dir": ""}


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


class _TaskInstance:
    """What the verify step reads of its task instance: labels for Prometheus, XCom for the record."""

    dag_id, task_id, run_id, map_index = "release_checks", "local.verify", "manual__1", -1

    def __init__(self) -> None:
        self.xcom: dict = {}

    def xcom_push(self, key: str, value) -> None:
        self.xcom[key] = value


def checks_in_ledger(event: str) -> list[dict]:
    from airflow_mlops_provider.core.settings import mlops_home

    return [r for r in ledger.read(mlops_home().ledger_path) if r.get("event") == event]


def test_load_policy_and_quality_canary_decide_the_local_lane(registry_with_a_dissenter, tmp_path, monkeypatch):
    """The lane's verify step against real scoring servers: a candidate that answers without errors
    but unlike the champion is rolled back; a load policy the server cannot meet is rolled back
    naming the limit and the measured figure; a reachable one passes and the figures reach the
    ledger and Prometheus; then the candidate is promoted."""
    v1, v2, v3 = registry_with_a_dissenter
    deploy(v1["version"])
    live = run(LocalPromoteModelVersionOperator)

    # 1. Quality canary: v3 answers every row, fast, and the opposite of @champion (v1, the live server).
    dissenter = deploy(v3["version"])
    with pytest.raises(LocalServingError, match=(
            rf"quality canary \(v{v3['version']} against @champion v{v1['version']}, 8 rows\) of http://\S+: class "
            r"agreement with the champion 0\.0% is below the canary_min_agreement limit of 95\.0%")):
        verify(dissenter, v3, canary_rows=8, load_concurrency=0)
    [record] = checks_in_ledger("quality_canary")
    assert record["verdict"] == "failed" and record["figures"]["agreement"] == 0.0
    assert record["figures"]["champion_version"] == v1["version"] and record["figures"]["mean_abs_diff"] == 1.0
    rolled = run(LocalRollbackModelVersionOperator)
    assert rolled["action"] == "rolled_back" and rolled["pid"] == live["pid"] and not answers(dissenter["url"])

    # 2. A load policy the server cannot meet: 4 concurrent requests, at least 100000 requests/s.
    candidate = deploy(v2["version"])
    with pytest.raises(LocalServingError, match=(
            r"load test \(\d+ requests, 4 concurrent, [\d.]+s\) of http://\S+: throughput [\d.]+ requests/s is "
            r"below the load_min_rps limit of 100000\.0 requests/s")) as failed:
        verify(candidate, v2, load_concurrency=4, load_requests=100, load_min_rps=100000)
    assert failed.value.context["broken_limits"] == ["load_min_rps"]
    [load_failed] = checks_in_ledger("load_test")
    assert load_failed["verdict"] == "failed" and load_failed["broken_limits"][0]["limit"] == "load_min_rps"
    assert load_failed["broken_limits"][0]["measured"] == load_failed["figures"]["throughput_rps"] < 100000

    # 3. Reachable policy + agreeing canary: passes; figures in the ledger and in Prometheus.
    with prometheus_stack(tmp_path / "prometheus") as (gateway, query):
        for key, value in conn_env("pushgateway_default", conn_type="pushgateway", host=gateway).items():
            monkeypatch.setenv(key, value)
        serial = verify(candidate, v2, load_concurrency=1, load_requests=100, load_duration_s=60)["load"]
        ti = _TaskInstance()
        out = verify(candidate, v2, {"ti": ti}, load_concurrency=4, load_requests=200, load_duration_s=60,
                     load_max_p95_ms=2000, load_max_p99_ms=5000, load_min_rps=5, canary_rows=8)
        load, canary = out["load"], out["canary"]
        print(json.dumps({"local_load_rps": {"concurrency_1": serial["throughput_rps"],
                                             "concurrency_4": load["throughput_rps"]},
                          "p95_ms": {"concurrency_1": serial["p95_ms"], "concurrency_4": load["p95_ms"]},
                          "p99_ms": {"concurrency_1": serial["p99_ms"], "concurrency_4": load["p99_ms"]}}))
        assert load["requests"] == 200 and load["errors"] == 0 and load["errors_by_kind"] == {}
        assert load["stopped_by"] == "requests" and load["throughput_rps"] >= 5
        assert 0 < load["p50_ms"] <= load["p95_ms"] <= load["p99_ms"] <= load_failed["policy"]["load_max_p99_ms"]
        assert canary["agreement"] == 1.0 and canary["psi"] == 0.0 and canary["mean_abs_diff"] == 0.0
        assert ti.xcom["load_test"]["verdict"] == "passed" and ti.xcom["quality_canary"]["verdict"] == "passed"
        passed = checks_in_ledger("load_test")[-1]
        assert passed["verdict"] == "passed" and passed["figures"] == load and passed["dag_id"] == "release_checks"
        assert checks_in_ledger("quality_canary")[-1]["figures"] == canary
        [series] = scraped(query, f'mlops_load_throughput_rps{{model="{MODEL}",task_id="local.verify"}}',
                           "load-test throughput")
        assert float(series["value"][1]) == load["throughput_rps"]
        [agreement] = scraped(query, f'mlops_canary_agreement{{model="{MODEL}"}}', "canary agreement")
        assert float(agreement["value"][1]) == 1.0

    promoted = run(LocalPromoteModelVersionOperator)
    assert promoted["model_version"] == v2["version"] and promoted["stopped_version"] == v1["version"]


def test_capture_records_served_traffic_that_becomes_a_partition(registry, tmp_path, monkeypatch):
    """With ``capture`` on, the server is MLflow's scoring app behind the capture middleware: the
    answered calls (JSON and CSV) land as CloudEvents under MLOPS_HOME/capture/<model>/date=<day>/,
    keyed by the caller's X-Request-Id; the provider's own checks do not. The online operator
    turns the day into a partition of v1's rows."""
    from datetime import datetime, timezone

    import pandas as pd

    from airflow_mlops_provider.core.settings import mlops_home
    from airflow_mlops_provider.core.tasks import TASK_TYPE_TAG
    from airflow_mlops_provider.operators.capture import CapturedTrafficToPartitionOperator

    v1, _ = registry
    MlflowHook().client.set_model_version_tag(MODEL, v1["version"], TASK_TYPE_TAG, "binary")
    served = deploy(v1["version"], capture=True)
    assert served["ready"] is True and state()["capture_dir"] == str(mlops_home().root / "capture" / MODEL)
    run(LocalPromoteModelVersionOperator)

    def post(body: bytes, content_type: str, request_id: str | None = None) -> tuple[dict, str | None]:
        headers = {"Content-Type": content_type, **({"X-Request-Id": request_id} if request_id else {})}
        req = urllib.request.Request(served["url"] + "/invocations", data=body, method="POST", headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read()), resp.headers.get("X-Request-Id")

    answer, rid = post(json.dumps({"dataframe_split": {"columns": ["amount", "age"], "data": [[1.0, 0.0]]}}).encode(),
                       "application/json", "tx-1")
    assert rid == "tx-1" and len(answer["predictions"]) == 1
    _, generated = post(b"amount,age\n2.0,1.0\n0.5,3.0\n", "text/csv")
    assert generated and generated != "tx-1"
    invoke(served["url"], [[1.0, 1.0]], ["amount", "age"])  # a release check: not traffic
    with pytest.raises(urllib.error.HTTPError):  # refused by the model: not captured either
        post(b'{"dataframe_split": {"columns": ["nope"], "data": [["x"]]}}', "application/json")

    today = datetime.now(timezone.utc).date().isoformat()
    files = list((mlops_home().root / "capture" / MODEL / f"date={today}").glob("*.jsonl"))
    assert len(files) == 1 and files[0].name.startswith(f"{MODEL}-v{v1['version']}-")
    events = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [(e["id"], e["type"].rsplit(".", 1)[1], e["modelversion"]) for e in events] == [
        ("tx-1", "request", v1["version"]), ("tx-1", "response", v1["version"]),
        (generated, "request", v1["version"]), (generated, "response", v1["version"])]

    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", f"{mlops_home().root}, {tmp_path}")
    out = tmp_path / "online.parquet"
    result = CapturedTrafficToPartitionOperator(
        task_id="capture", model_name=MODEL, capture_format="cloudevents",
        capture_path=str(mlops_home().root / "capture" / MODEL), output_path=str(out), day=today,
        deploy_target="local").execute({})
    assert result["rows"] == 3 and result["calls"] == 2 and result["versions"] == {v1["version"]: 3}
    frame = pd.read_parquet(out)
    assert sorted(frame["request_id"]) == sorted(["tx-1", f"{generated}#0", f"{generated}#1"])
    assert frame.set_index("request_id").loc["tx-1", "amount"] == 1.0
