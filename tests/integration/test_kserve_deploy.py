"""KServe deploy → verify → promote / roll back through the real KubernetesHook and kubernetes client.

No Kubernetes can run on the test machines, so the API server is ``tests.fakes.kube_api``: a
loopback test double that speaks the custom-objects REST paths, validates every stored object
against the real KServe CRD schema and simulates KServe's revisions, traffic split and status.
Everything on this side of the socket is real: the Airflow connection, KubernetesHook's kubeconfig
loading, the kubernetes client, the operators, the trigger, MLflow's registry.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from airflow_mlops_provider.core import ledger
from airflow_mlops_provider.core.kserve import (
    PREVIOUS_STORAGE_URI_ANNOTATION,
    InferenceServiceSpec,
    InferenceServiceSpecError,
    load_schema,
    parse_status,
)
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from airflow_mlops_provider.deploy.kserve import InferenceServiceProbe
from airflow_mlops_provider.exceptions import DeploymentRolledBack, KServeError
from airflow_mlops_provider.hooks.kserve import KServeHook
from airflow_mlops_provider.operators.deploy_kserve import (
    KServeDeployInferenceServiceOperator,
    KServePromoteInferenceServiceOperator,
    KServeRollbackInferenceServiceOperator,
    KServeSmokeTestInferenceServiceOperator,
    KServeVerifyInferenceServiceOperator,
)
from airflow_mlops_provider.triggers.base import DeployTargetWaitTrigger
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.mlflow_models import register_versions, served_model

pytestmark = pytest.mark.integration

SCHEMA_PATH = (Path(__file__).parents[2] / "../shared/kserve/inferenceservice-v1beta1.openapi.json").resolve()
CONN = "kserve_fake"
NS = "models"
FAST = {"kubernetes_conn_id": CONN, "namespace": NS, "poll_interval": 0.05, "timeout": 10, "deferrable": False}


class _TaskInstance:
    """Records what the operator pushes to XCom (the extra link's URL)."""

    def __init__(self) -> None:
        self.xcom: dict = {}

    def xcom_push(self, key: str, value) -> None:
        self.xcom[key] = value


def ctx() -> dict:
    return {"ti": _TaskInstance()}


@pytest.fixture(scope="module")
def schema() -> dict:
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"KServe CRD schema not found at {SCHEMA_PATH} (the shared/ folder beside the repo "
                    f"is absent); the fake API server cannot validate manifests without it")
    return load_schema(SCHEMA_PATH)


@pytest.fixture
def kube(schema, monkeypatch):
    with FakeKubeApi(schema, ready_after=1) as api:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config": api.kubeconfig(NS)}}))
        yield api


def deploy(storage_uri: str, task_id: str = "deploy", **kwargs) -> dict:
    return KServeDeployInferenceServiceOperator(
        task_id=task_id, name="churn", storage_uri=storage_uri, **{**FAST, **kwargs}).execute(ctx())


def predictor(api: FakeKubeApi) -> dict:
    return api.stored("churn", NS)["spec"]["predictor"]


# -- hook ---------------------------------------------------------------------------------------
def test_apply_is_idempotent_and_never_surfaces_409(kube):
    hook = KServeHook(kubernetes_conn_id=CONN)
    manifest = InferenceServiceSpec(name="churn", namespace=NS, storage_uri="s3://m/1",
                                    resources={"requests": {"cpu": "250m", "memory": "512Mi"}}).to_manifest()
    assert hook.apply(manifest)["action"] == "created"
    assert hook.apply(manifest)["action"] == "patched"
    assert kube.count("POST", 409) == 1
    stored = kube.stored("churn", NS)
    assert stored["metadata"]["generation"] == 1  # the rerun changed nothing
    assert stored["spec"] == manifest["spec"]
    # A concurrent writer: the next two PATCHes answer 409 and are retried.
    kube.patch_conflicts = 2
    manifest["spec"]["predictor"]["model"]["storageUri"] = "s3://m/2"
    assert hook.apply(manifest)["action"] == "patched"
    assert kube.count("PATCH", 409) == 2
    assert predictor(kube)["model"]["storageUri"] == "s3://m/2"
    assert hook.test_connection()[0] is True


def test_api_errors_name_the_inference_service(kube):
    hook = KServeHook(kubernetes_conn_id=CONN)
    with pytest.raises(KServeError, match=r"read InferenceService models/nope: HTTP 404") as info:
        hook.get("nope", NS)
    assert info.value.context == {"name": "nope", "namespace": NS, "reason": "api", "status": 404, "action": "read"}
    assert hook.get("nope", NS, required=False) is None
    assert hook.delete("nope", NS) is False
    # The API server (here: the fake, with the real CRD schema) refuses an invalid object.
    bad = InferenceServiceSpec(name="churn", namespace=NS, storage_uri="s3://m/1").to_manifest()
    bad["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    with pytest.raises(KServeError, match=r"create InferenceService models/churn: HTTP 422") as info:
        hook.apply(bad)
    assert "canaryTrafficPercent" in str(info.value)
    hook.apply(InferenceServiceSpec(name="churn", namespace=NS, storage_uri="s3://m/1").to_manifest())
    assert hook.delete("churn", NS) is True and hook.get("churn", NS, required=False) is None


# -- deploy, wait, promote, roll back ---------------------------------------------------------
def test_inference_logger_sends_requests_and_responses_to_the_sink(kube):
    """The predictor logs every request and response as CloudEvents to ``logger_url`` (the
    sink whose files ``online_monitoring_dag(capture_format="cloudevents")`` reads); the fake API
    server checks the manifest against KServe's real CRD schema."""
    deploy("s3://m/1", logger_url="http://events.monitoring.svc/fraud")
    assert predictor(kube)["logger"] == {"mode": "all", "url": "http://events.monitoring.svc/fraud"}
    with pytest.raises(InferenceServiceSpecError, match="logger_url"):
        deploy("s3://m/1", logger_url="events.monitoring.svc")


def test_deploy_waits_until_ready_after_n_polls(kube):
    kube.ready_after = 4
    result = deploy("s3://m/1")
    assert result["ready"] is True and result["action"] == "created"
    assert result["url"] == f"{kube.url}/serving/{NS}/churn"
    assert result["traffic"]["latest"] == 100  # first rollout: the only revision takes everything
    assert result["latest_ready_revision"] == "churn-predictor-00001"
    assert kube.count("GET", 200) >= 4
    json.dumps(result)  # XCom-safe


def test_canary_promote_and_rollback_to_previous_storage_uri(kube):
    deploy("s3://m/1")
    canary = deploy("s3://m/2", canary_traffic_percent=20)
    assert canary["action"] == "patched" and canary["previous_storage_uri"] == "s3://m/1"
    assert canary["traffic"]["latest"] == 20 and canary["traffic"]["previous"] == 80
    assert predictor(kube)["canaryTrafficPercent"] == 20
    generation = kube.stored("churn", NS)["metadata"]["generation"]

    rerun = deploy("s3://m/2", canary_traffic_percent=20)  # a retried task: no new revision, same answer
    assert rerun["previous_storage_uri"] == "s3://m/1" and rerun["traffic"] == canary["traffic"]
    assert kube.stored("churn", NS)["metadata"]["generation"] == generation
    assert kube.count("POST", 409) == 2 and kube.count("PATCH", 409) == 0

    promoted = KServePromoteInferenceServiceOperator(task_id="promote", name="churn", **FAST).execute(ctx())
    assert promoted["action"] == "promoted" and promoted["traffic"]["latest"] == 100
    assert predictor(kube)["canaryTrafficPercent"] == 100
    assert promoted["latest_ready_revision"] == "churn-predictor-00002"

    # After a promotion there is no old revision in the split: auto rolls back the storage URI.
    rolled = KServeRollbackInferenceServiceOperator(task_id="rollback", name="churn", **FAST).execute(ctx())
    assert rolled["mode"] == "storage_uri" and rolled["storage_uri"] == "s3://m/1"
    assert rolled["rolled_back_from"] == "s3://m/2" and rolled["traffic"]["latest"] == 100
    stored = kube.stored("churn", NS)
    assert stored["spec"]["predictor"]["model"]["storageUri"] == "s3://m/1"
    assert stored["metadata"]["annotations"][PREVIOUS_STORAGE_URI_ANNOTATION] == "s3://m/2"
    assert rolled["latest_ready_revision"] == "churn-predictor-00003"


def test_rollback_during_canary_sends_traffic_back(kube):
    deploy("s3://m/1")
    deploy("s3://m/2", canary_traffic_percent=10)
    rolled = KServeRollbackInferenceServiceOperator(task_id="rollback", name="churn", **FAST).execute(ctx())
    assert rolled["mode"] == "traffic" and rolled["canary_traffic_percent"] == 0
    assert rolled["traffic"]["latest"] == 0 and rolled["traffic"]["previous"] == 100
    assert predictor(kube)["canaryTrafficPercent"] == 0
    assert predictor(kube)["model"]["storageUri"] == "s3://m/2"  # the spec keeps the candidate; traffic moved


def test_deploy_without_canary_replaces_an_earlier_canary_split(kube):
    deploy("s3://m/1")
    deploy("s3://m/2", canary_traffic_percent=10)
    full = deploy("s3://m/3", canary_traffic_percent=None)
    assert full["canary_traffic_percent"] == 100 and full["traffic"]["latest"] == 100
    assert predictor(kube)["canaryTrafficPercent"] == 100


def test_rollback_of_a_canary_that_never_became_ready(kube):
    deploy("s3://m/1")
    kube.mode = "never"
    with pytest.raises(KServeError, match="did not become Ready"):
        deploy("s3://m/2", canary_traffic_percent=10, timeout=0.2)
    rolled = KServeRollbackInferenceServiceOperator(task_id="rollback", name="churn", **FAST).execute(ctx())
    assert rolled["mode"] == "traffic" and rolled["traffic"] == {
        "latest": 0, "previous": 100,
        "revisions": [{"revision": "churn-predictor-00001", "percent": 100, "latest": False, "tag": "prev"}]}
    assert predictor(kube)["canaryTrafficPercent"] == 0


def test_rollback_with_nothing_to_roll_back_to_fails_clearly(kube):
    deploy("s3://m/1")
    with pytest.raises(KServeError, match="no previous storage URI recorded"):
        KServeRollbackInferenceServiceOperator(task_id="rollback", name="churn", **FAST).execute(ctx())
    with pytest.raises(KServeError, match="no previous revision in the traffic split"):
        KServeRollbackInferenceServiceOperator(task_id="rollback", name="churn", mode="traffic", **FAST).execute(ctx())


def test_never_ready_is_a_clear_timeout(kube):
    kube.mode = "never"
    with pytest.raises(KServeError, match=r"InferenceService models/churn did not become Ready with 10% on the "
                                          r"latest revision within 0.3s") as info:
        deploy("s3://m/1", canary_traffic_percent=10, timeout=0.3)
    assert info.value.context["reason"] == "timeout"
    assert "RevisionMissing" in str(info.value)


def test_model_that_fails_to_load_is_rolled_back_by_kserve(kube):
    deploy("s3://m/1")
    kube.mode = "fail"
    with pytest.raises(DeploymentRolledBack, match="ModelLoadFailed.*previous revision") as info:
        deploy("s3://m/broken", canary_traffic_percent=10)
    assert info.value.context["failure_reason"] == "ModelLoadFailed"


# -- deferral -----------------------------------------------------------------------------------
def run_trigger(trigger: DeployTargetWaitTrigger) -> list[dict]:
    async def collect():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def wait_trigger(expected: int, poll_interval: float, deadline: float) -> DeployTargetWaitTrigger:
    classpath, kwargs = InferenceServiceProbe("churn", NS, CONN, expected).serialize()
    return DeployTargetWaitTrigger(classpath, kwargs, poll_interval, deadline)


def test_deferral_trigger_round_trip_and_execute_complete(kube):
    deploy("s3://m/1")
    kube.ready_after = 3
    op = KServeDeployInferenceServiceOperator(task_id="deploy", name="churn", storage_uri="s3://m/2",
                                              canary_traffic_percent=10, **{**FAST, "deferrable": True})
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx())
    trigger = deferred.value.trigger
    assert isinstance(trigger, DeployTargetWaitTrigger)
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = trigger.serialize()
    module, _, cls = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), cls)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["probe_classpath"] == "airflow_mlops_provider.deploy.kserve.InferenceServiceProbe"
    assert kwargs["probe_kwargs"]["expected_canary_percent"] == 10 and kwargs["probe_kwargs"]["kubernetes_conn_id"] == CONN

    events = run_trigger(rebuilt)
    assert len(events) == 1 and events[0]["status"] == "done"
    context = ctx()
    assert not deferred.value.kwargs  # the event carries everything (dags test drops defer kwargs)
    assert events[0]["details"]["previous_storage_uri"] == "s3://m/1"
    result = op.execute_complete(context, event=events[0])
    assert context["ti"].xcom["inference_service_url"] == result["url"]  # the extra link's target
    assert result["traffic"]["latest"] == 10 and result["previous_storage_uri"] == "s3://m/1"

    # The synchronous path returns the same keys.
    sync = deploy("s3://m/2", canary_traffic_percent=10)
    assert sync.keys() == result.keys()
    assert {k: sync[k] for k in sync if k != "action"} == {k: result[k] for k in result if k != "action"}


def test_already_ready_does_not_defer(kube):
    kube.ready_after = 0
    result = deploy("s3://m/1", deferrable=True)
    assert result["ready"] is True


def test_trigger_timeout_and_failure_events(kube):
    deploy("s3://m/1")
    kube.mode = "never"
    deploy("s3://m/2", canary_traffic_percent=10, wait_for_completion=False)
    import time

    events = run_trigger(wait_trigger(10, 0.05, time.time() + 0.3))
    assert [e["status"] for e in events] == ["timeout"] and events[0]["probe"]["kwargs"]["expected_canary_percent"] == 10
    op = KServeDeployInferenceServiceOperator(task_id="d", name="churn", storage_uri="s3://m/2", **FAST)
    with pytest.raises(KServeError, match="did not become Ready"):
        op.execute_complete({}, event=events[0])
    kube.mode, kube.ready_after = "fail", 3  # the deploy's own first read must not see the failure yet
    deploy("s3://m/3", canary_traffic_percent=10, wait_for_completion=False)
    events = run_trigger(wait_trigger(10, 0.05, time.time() + 5))
    assert [e["status"] for e in events] == ["failed"]
    with pytest.raises(DeploymentRolledBack):
        op.execute_complete({}, event=events[0])


# -- smoke test ---------------------------------------------------------------------------------
def smoke(**kwargs) -> dict:
    return KServeSmokeTestInferenceServiceOperator(task_id="smoke", name="churn", **{**FAST, **kwargs}).execute(ctx())


def test_smoke_test_checks_shape_and_latency(kube):
    deploy("s3://m/1")
    result = smoke(rows=[[1.0, 2.0], [3.0, 4.5]])
    assert result["predictions"] == [3.0, 7.5] and result["rows"] == 2 and result["latency_ms"] >= 0
    assert result["url"].endswith("/serving/models/churn/v2/models/churn/infer")
    assert smoke(rows=[[1, 2]], columns=["a", "b"])["predictions"] == [3.0]
    assert smoke(rows=[[1, 2]], columns=["a", "b"], protocol_version="v1")["predictions"] == [3.0]

    kube.predictor_mode = "bad_shape"
    with pytest.raises(KServeError, match="returned 1 predictions for 2 rows") as info:
        smoke(rows=[[1.0, 2.0], [3.0, 4.5]])
    assert info.value.context["reason"] == "smoke"
    kube.predictor_mode = "ok"
    kube.predictor_delay = 0.2
    with pytest.raises(KServeError, match="above the 50 ms limit"):
        smoke(rows=[[1.0, 2.0]], max_latency_ms=50)
    with pytest.raises(KServeError, match="HTTP 404"):
        smoke(rows=[[1.0]], url=f"{kube.url}/serving/models/other")


def test_verify_bakes_the_deployed_url_with_the_challengers_holdout(kube, mlops_home, tmp_path):
    [challenger] = register_versions("churn", tmp_path, count=1, champion=None)
    deployed = deploy("s3://m/1")

    def verify(**kwargs) -> dict:
        args = {"deployment": deployed, "challenger": challenger, "bake_requests": 3, "smoke_rows": 4, **kwargs}
        return KServeVerifyInferenceServiceOperator(task_id="verify", **args).execute(ctx())

    out = verify()
    assert {k: out[k] for k in ("url", "requests", "errors", "error_rate", "rows")} == {
        "url": deployed["url"], "requests": 3, "errors": 0, "error_rate": 0.0, "rows": 4}
    kube.predictor_mode = "bad_shape"
    with pytest.raises(KServeError, match="returned 3 predictions for 4 rows"):
        verify()
    kube.predictor_mode, kube.predictor_delay = "ok", 0.1
    with pytest.raises(KServeError, match=r"p95 latency \d+ ms of http://\S+ is above the 20 ms limit"):
        verify(max_latency_ms=20)
    with pytest.raises(KServeError, match="challenger lacks \\['run_id'\\]"):
        verify(challenger={"name": "churn", "version": "1"})


def test_quality_canary_rolls_back_a_dissenting_candidate_and_passes_an_agreeing_one(kube, mlops_home, tmp_path):
    """The fake predictor serves each candidate's real model; the champion's answers come from its
    registered model. Neither candidate has errors or latency: only the agreement decides."""
    v1, v2, v3 = register_versions("churn", tmp_path, count=3, flipped=(3,))  # @champion: v1
    deploy("s3://m/1")
    checks = {"canary_rows": 8, "load_concurrency": 2, "load_requests": 20, "bake_requests": 2}

    def verify(deployment: dict, challenger: dict) -> dict:
        return KServeVerifyInferenceServiceOperator(task_id="verify", deployment=deployment, challenger=challenger,
                                                    **checks).execute(ctx())

    dissenting = deploy("s3://m/3", canary_traffic_percent=10)
    kube.model = served_model("churn", v3["version"])
    with pytest.raises(KServeError, match=(
            rf"quality canary \(v{v3['version']} against @champion v{v1['version']}, 8 rows\) of http://\S+: "
            r"class agreement with the champion 0\.0% is below the canary_min_agreement limit of 95\.0%; "
            r"mean absolute difference from the champion's scores 1 is above the canary_max_mean_abs_diff")):
        verify(dissenting, v3)
    rolled = KServeRollbackInferenceServiceOperator(task_id="rollback", name="churn", **FAST).execute(ctx())
    assert rolled["mode"] == "traffic" and rolled["traffic"] == {**rolled["traffic"], "latest": 0, "previous": 100}

    agreeing = deploy("s3://m/2", canary_traffic_percent=10)
    kube.model = served_model("churn", v2["version"])
    out = verify(agreeing, v2)
    assert out["canary"]["agreement"] == 1.0 and out["canary"]["champion_version"] == v1["version"]
    assert out["load"]["requests"] == 20 and out["load"]["errors"] == 0
    promoted = KServePromoteInferenceServiceOperator(task_id="promote", name="churn", **FAST).execute(ctx())
    assert promoted["traffic"]["latest"] == 100
    decisions = [(r["event"], r["challenger_version"], r["verdict"]) for r in ledger.read(home_settings().ledger_path)]
    assert decisions == [("load_test", v3["version"], "passed"), ("quality_canary", v3["version"], "failed"),
                         ("load_test", v2["version"], "passed"), ("quality_canary", v2["version"], "passed")]

    # The rows can come from the last scored partition instead of the holdout: its last rows.
    import pandas as pd

    scored = mlops_home / "outputs" / "churn" / "scored.parquet"
    scored.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"amount": [0.1 * i for i in range(12)], "age": [1.0] * 12, "score": [0] * 12}).to_parquet(scored)
    checks.update(payload_uri=str(scored), canary_rows=5, load_rows=3)
    recent = verify(agreeing, v2)
    assert recent["canary"]["rows"] == 5 and recent["canary"]["payload"] == str(scored)
    assert recent["load"]["rows_per_request"] == 3 and recent["canary"]["agreement"] == 1.0
    checks.update(payload_uri=str(scored.with_name("nope.parquet")))
    with pytest.raises(KServeError, match=r"payload_uri '.*nope\.parquet' cannot be read: .*does not exist"):
        verify(agreeing, v2)


# -- MLflow ---------------------------------------------------------------------------------------
def test_storage_uri_resolved_from_mlflow_model_version(kube, mlflow_sqlite_uri, monkeypatch, tmp_path):
    from mlflow import MlflowClient

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps({"conn_type": "mlflow", "host": mlflow_sqlite_uri}))
    client = MlflowClient(tracking_uri=mlflow_sqlite_uri, registry_uri=mlflow_sqlite_uri)
    client.create_registered_model("churn")
    uris = []
    for n in (1, 2):  # two model directories the worker can list (MLmodel at the root)
        (tmp_path / f"v{n}").mkdir()
        (tmp_path / f"v{n}" / "MLmodel").write_text("flavors: {}\n")
        uris.append((tmp_path / f"v{n}").as_uri())
    v1 = client.create_model_version("churn", uris[0])
    v2 = client.create_model_version("churn", uris[1])
    client.set_registered_model_alias("churn", "challenger", v2.version)

    first = deploy(None, model_name="churn", model_version=v1.version, mlflow_conn_id="mlflow_test")
    assert first["storage_uri"] == uris[0] and first["model_version"] == "1"
    second = deploy(None, model_name="churn", model_version="@challenger", mlflow_conn_id="mlflow_test",
                    canary_traffic_percent=10)
    assert second["storage_uri"] == uris[1] and second["model_version"] == "2"
    assert second["previous_storage_uri"] == uris[0]
    assert kube.stored("churn", NS)["metadata"]["annotations"]["mlops.airflow.apache.org/model"] == "churn/2"
    with pytest.raises(KServeError, match="pass storage_uri, or model_name and model_version"):
        deploy(None)


def test_model_version_without_artifacts_applies_nothing(kube, mlflow_sqlite_uri, monkeypatch, tmp_path):
    from mlflow import MlflowClient

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps({"conn_type": "mlflow", "host": mlflow_sqlite_uri}))
    client = MlflowClient(tracking_uri=mlflow_sqlite_uri, registry_uri=mlflow_sqlite_uri)
    client.create_registered_model("churn")
    empty = tmp_path / "empty-artifacts"
    empty.mkdir()
    version = client.create_model_version("churn", empty.as_uri()).version
    with pytest.raises(InferenceServiceSpecError, match="version 1 has no model artifacts") as err:
        deploy(None, model_name="churn", model_version=version, mlflow_conn_id="mlflow_test")
    assert err.value.context["field"] == "model_version"
    assert kube.count("POST") == 0 and kube.count("PATCH") == 0


def test_rollback_follows_the_champion_alias(kube, mlflow_sqlite_uri, monkeypatch):
    """Serving goes back to what @champion names when the rollback runs, whatever the annotation says."""
    from mlflow import MlflowClient

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps({"conn_type": "mlflow", "host": mlflow_sqlite_uri}))
    client = MlflowClient(tracking_uri=mlflow_sqlite_uri, registry_uri=mlflow_sqlite_uri)
    client.create_registered_model("churn")
    uris = {str(client.create_model_version("churn", f"s3://artifacts/churn/v{i}").version): f"s3://artifacts/churn/v{i}"
            for i in (1, 2, 3)}

    def rollback(task_id: str) -> dict:
        return KServeRollbackInferenceServiceOperator(task_id=task_id, name="churn", model_name="churn",
                                                      mlflow_conn_id="mlflow_test", **FAST).execute(ctx())

    deploy(uris["1"])
    client.set_registered_model_alias("churn", "champion", "1")
    deploy(uris["2"], canary_traffic_percent=20)
    first = rollback("rb1")  # the champion is the previous revision: traffic goes back to it
    assert (first["mode"], first["model_version"]) == ("traffic", "1")
    assert predictor(kube)["canaryTrafficPercent"] == 0

    # A canary over a rolled-back canary: the model that serves (v1) stays "previous", not v2.
    third = deploy(uris["3"], canary_traffic_percent=20)
    assert third["previous_storage_uri"] == uris["1"]
    KServePromoteInferenceServiceOperator(task_id="promote", name="churn", **FAST).execute(ctx())
    # The champion moved to v2 meanwhile (another writer): v3 must not keep serving, v2 must.
    client.set_registered_model_alias("churn", "champion", "2")
    second = rollback("rb2")
    assert (second["mode"], second["model_version"], second["storage_uri"]) == ("storage_uri", "2", uris["2"])
    assert predictor(kube)["model"]["storageUri"] == uris["2"]
    assert parse_status(kube.stored("churn", NS))["traffic"]["latest"] == 100
    # Already serving the champion: all traffic to it, nothing redeployed.
    generation = kube.stored("churn", NS)["metadata"]["generation"]
    again = rollback("rb3")
    assert again["mode"] == "latest" and kube.stored("churn", NS)["metadata"]["generation"] == generation
    # Nothing deployed at all: the rollback skips instead of failing on a 404.
    with pytest.raises(AirflowSkipException, match="does not exist: nothing was deployed"):
        KServeRollbackInferenceServiceOperator(task_id="rb4", name="other", **FAST).execute(ctx())


def test_template_fields_include_connection_ids():
    for op_cls in (KServeDeployInferenceServiceOperator, KServePromoteInferenceServiceOperator,
                   KServeRollbackInferenceServiceOperator, KServeSmokeTestInferenceServiceOperator):
        assert "kubernetes_conn_id" in op_cls.template_fields
    assert "mlflow_conn_id" in KServeDeployInferenceServiceOperator.template_fields


# -- a real Airflow run -------------------------------------------------------------------------
DAG_FILE = '''
"""Canary → smoke → promote against the fake API server (written by test_kserve_deploy)."""
import pendulum
from airflow.sdk import DAG

from airflow_mlops_provider.operators.deploy_kserve import (
    KServeDeployInferenceServiceOperator,
    KServePromoteInferenceServiceOperator,
    KServeRollbackInferenceServiceOperator,
    KServeSmokeTestInferenceServiceOperator,
)

common = {"name": "churn", "namespace": "models", "kubernetes_conn_id": "kserve_fake", "poll_interval": 0.2,
          "timeout": 60}
with DAG("kserve_canary", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    stable = KServeDeployInferenceServiceOperator(task_id="deploy_stable", storage_uri="s3://m/1",
                                                  deferrable=False, **common)
    canary = KServeDeployInferenceServiceOperator(task_id="deploy_canary", storage_uri="s3://m/{{ params.v }}",
                                                  canary_traffic_percent=25, deferrable=True, **common)
    smoke = KServeSmokeTestInferenceServiceOperator(task_id="smoke", rows=[[1.0, 2.0], [3.0, 4.0]],
                                                    url="{{ ti.xcom_pull(task_ids='deploy_canary')['url'] }}",
                                                    max_latency_ms=5000, **common)
    promote = KServePromoteInferenceServiceOperator(task_id="promote", deferrable=True, **common)
    rollback = KServeRollbackInferenceServiceOperator(task_id="rollback", trigger_rule="one_failed", **common)
    stable >> canary >> smoke >> [promote, rollback]
    params = {"v": "2"}
'''


def test_canary_dag_defers_and_promotes_in_a_real_airflow_run(kube, run_dag, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "kserve_canary.py").write_text(DAG_FILE.replace('    params = {"v": "2"}\n', "").replace(
        'catchup=False)', 'catchup=False, params={"v": "2"})'))
    kube.ready_after = 3
    env = {f"AIRFLOW_CONN_{CONN.upper()}": json.dumps({"conn_type": "kubernetes",
                                                       "extra": {"kube_config": kube.kubeconfig(NS)}})}
    result = run_dag("kserve_canary", dags_folder=dags, env=env, timeout=300)
    assert result.returncode == 0, result.output[-4000:]
    assert result.states == {"deploy_stable": "success", "deploy_canary": "success", "smoke": "success",
                             "promote": "success", "rollback": "skipped"}, result
    assert "Pausing task as DEFERRED" in result.output and "Trigger completed" in result.output
    stored = kube.stored("churn", NS)
    assert stored["spec"]["predictor"]["model"]["storageUri"] == "s3://m/2"
    assert stored["spec"]["predictor"]["canaryTrafficPercent"] == 100
    assert stored["status"]["components"]["predictor"]["traffic"][0]["percent"] == 100


def test_serving_says_which_version_takes_which_share(kube):
    from airflow_mlops_provider.deploy.kserve import serving

    deploy("s3://m/1", model_name="churn-model", model_version="1")
    assert [(r["role"], r["version"], r["traffic_percent"]) for r in serving(
        "churn-model", kubernetes_conn_id=CONN, namespace=NS)] == [("live", "1", 100)]
    deploy("s3://m/2", model_name="churn-model", model_version="2", canary_traffic_percent=10)
    rows = serving("churn-model", kubernetes_conn_id=CONN, namespace=NS)
    assert [(r["role"], r["version"], r["traffic_percent"]) for r in rows] == [("canary", "2", 10),
                                                                               ("previous", None, 90)]
    assert rows[0]["resource"] == f"{NS}/churn" and rows[0]["url"] and rows[1]["storage_uri"] == "s3://m/1"
    assert serving("another-model", kubernetes_conn_id=CONN, namespace=NS) == []
