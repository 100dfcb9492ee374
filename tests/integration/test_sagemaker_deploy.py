"""SageMaker deployment against moto in server mode, through a real ``aws`` Airflow connection.

MLflow is real (a tiny sklearn model registered in the embedded store); SageMaker and S3 are
moto over HTTP, with the test doubles of ``tests.fakes.sagemaker`` for UpdateEndpoint and
InvokeEndpoint (moto lacks the first and answers a fixed body for the second). The task
instance is the boundary mock (its ``xcom_push`` calls are what a real task would store).
"""

from __future__ import annotations

import importlib.metadata
import json
import tarfile
import threading
import time
from unittest.mock import MagicMock

import pytest
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from airflow_mlops_provider.core import ledger
from airflow_mlops_provider.core.sagemaker import SageMakerSpecError, version_resource_name
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from airflow_mlops_provider.exceptions import DeploymentRolledBack, SageMakerError
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.links.sagemaker import SageMakerEndpointLink
from airflow_mlops_provider.operators.deploy_sagemaker import (
    SageMakerDeployModelVersionOperator,
    SageMakerRollbackEndpointOperator,
    SageMakerVerifyEndpointOperator,
    smoke_test_endpoint,
)
from airflow_mlops_provider.triggers.base import DeployTargetWaitTrigger
from tests.conftest import free_port
from tests.fakes import sagemaker as fake_sagemaker
from tests.fakes.mlflow_models import register_versions, served_model

pytestmark = pytest.mark.integration

MODEL = "fraud"
ENDPOINT = "fraud-prod"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.17"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-exec"
BUCKET = "models"
CANARY = {"traffic_shift": {"type": "canary", "percent": 10, "wait_seconds": 300},
          "termination_wait_seconds": 60, "max_execution_timeout": 1800, "auto_rollback_alarms": ["fraud-5xx"]}


@pytest.fixture
def sm(monkeypatch):
    fake, server = fake_sagemaker.start(monkeypatch, free_port())
    # botocore's own retries are switched off so the provider's backoff is what is tested.
    monkeypatch.setenv("AIRFLOW_CONN_AWS_SM", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": fake.url, "region_name": fake_sagemaker.REGION,
                  "config_kwargs": {"retries": {"total_max_attempts": 1}}}}))
    fake.client("s3").create_bucket(Bucket=BUCKET)
    yield fake
    server.stop()


REQUIREMENTS = [f"scikit-learn=={importlib.metadata.version('scikit-learn')}"]


@pytest.fixture
def versions(mlops_home):
    """Two real registered versions of a tiny sklearn model in the embedded MLflow store."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    hook = MlflowHook()
    hook.activate()
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [0.5, 3.0]])
    out = []
    for seed in (1, 2):
        model = LogisticRegression(random_state=seed).fit(x, [0, 1, 1, 0])
        with mlflow.start_run():
            # Pinned requirements: MLflow's inference of them starts a subprocess (~10 s) per model.
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name=MODEL,
                                            serialization_format="cloudpickle", pip_requirements=REQUIREMENTS)
        out.append(str(info.registered_model_version))
    return out


def deploy(version, *, ti=None, **kwargs):
    kwargs = {"endpoint_name": ENDPOINT, "model_name": MODEL, "model_version": version, "image_uri": IMAGE,
              "execution_role_arn": ROLE, "s3_bucket": BUCKET, "aws_conn_id": "aws_sm", "poll_interval": 0.05,
              "timeout": 30, "deferrable": False, **kwargs}
    op = SageMakerDeployModelVersionOperator(task_id="deploy", **kwargs)
    return op.execute({"ti": ti or MagicMock()})


def live(fake) -> dict:
    return fake.client().describe_endpoint(EndpointName=ENDPOINT)


def runtime_hook():
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id="aws_sm", client_type="sagemaker-runtime")


# -- first deploy, rerun ---------------------------------------------------------------------
def test_first_deploy_creates_everything_and_serves(sm, versions):
    ti = MagicMock()
    started = time.monotonic()
    result = deploy(versions[0], ti=ti, deployment_config=CANARY)
    print(f"first deploy: {time.monotonic() - started:.2f}s")

    name = version_resource_name(ENDPOINT, MODEL, versions[0])
    assert name == f"fraud-prod-fraud-v{versions[0]}"
    assert result == {"endpoint_name": ENDPOINT, "endpoint_config_name": name, "model_name": name,
                      "previous_config_name": None, "model_version": versions[0], "region": "us-east-1",
                      "model_data_url": f"s3://{BUCKET}/mlops/sagemaker/{ENDPOINT}/{MODEL}/v{versions[0]}/model.tar.gz",
                      "action": "created"}
    json.dumps(result, allow_nan=False)
    assert sm.names() == {"models": [name], "configs": [name], "endpoints": [ENDPOINT]}
    assert sm.updates == []  # a new endpoint is created, never updated
    desc = live(sm)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", name)
    model = sm.client().describe_model(ModelName=name)
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == result["model_data_url"]
    config = sm.client().describe_endpoint_config(EndpointConfigName=name)
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"

    # The archive is the MLflow model with MLmodel at its root.
    body = sm.client("s3").get_object(Bucket=BUCKET, Key=result["model_data_url"].split("/", 3)[3])["Body"]
    with tarfile.open(fileobj=body, mode="r|gz") as tar:
        members = {m.name for m in tar}
    assert {"MLmodel", "model.pkl", "requirements.txt"} <= members

    # The console link went to XCom.
    ti.xcom_push.assert_any_call(key=SageMakerEndpointLink.key,
                                 value="https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1"
                                       f"#/endpoints/{ENDPOINT}")

    smoke = smoke_test_endpoint(runtime_hook(), ENDPOINT, [[0.0, 1.0], [2.0, 1.0], [1.0, 1.0]], timeout=5,
                                columns=["a", "b"])
    assert smoke["endpoint_name"] == ENDPOINT and smoke["rows"] == 3 and len(smoke["predictions"]) == 3
    assert smoke["latency_ms"] < 5000
    assert sm.invocations[-1]["content_type"] == "application/json"
    assert sm.invocations[-1]["inference_id"].startswith("mlops-check-")  # left out of the online partition
    assert sm.invocations[-1]["payload"] == {"dataframe_split": {"columns": ["a", "b"],
                                                                 "data": [[0.0, 1.0], [2.0, 1.0], [1.0, 1.0]]}}


def test_data_capture_goes_to_one_prefix_per_version(sm, versions):
    """Each version's endpoint config captures to ``<uri>/v<version>``: a captured call names the
    version that answered it, through a blue/green switch too (the online pipeline reads it)."""
    deploy(versions[0], data_capture_uri="s3://lake/capture/fraud/", data_capture_percent="25")
    deploy(versions[1], data_capture_uri="s3://lake/capture/fraud/", data_capture_percent="25")
    for version in versions:
        config = sm.client().describe_endpoint_config(EndpointConfigName=version_resource_name(ENDPOINT, MODEL, version))
        capture = config["DataCaptureConfig"]
        assert capture["EnableCapture"] is True and capture["InitialSamplingPercentage"] == 25
        assert capture["DestinationS3Uri"] == f"s3://lake/capture/fraud/v{version}"
        assert {o["CaptureMode"] for o in capture["CaptureOptions"]} == {"Input", "Output"}
    # A rerun asking for other capture settings cannot reuse the immutable config: it says so.
    with pytest.raises(SageMakerError, match="already exists with other variants"):
        deploy(versions[1], data_capture_uri="s3://lake/other")


def test_rerun_is_idempotent(sm, versions):
    first = deploy(versions[0])
    calls_before = dict(sm.calls)
    MlflowHook().client.set_registered_model_alias(MODEL, "champion", versions[0])
    second = deploy("@champion")  # the same version, named through its alias

    assert second == {**first, "action": "unchanged"}
    assert sm.names()["models"] == [first["model_name"]] and sm.names()["configs"] == [first["model_name"]]
    assert sm.updates == []
    new_calls = {k: v - calls_before.get(k, 0) for k, v in sm.calls.items() if v - calls_before.get(k, 0)}
    assert "CreateModel" not in new_calls and "CreateEndpointConfig" not in new_calls
    assert "CreateEndpoint" not in new_calls and "UpdateEndpoint" not in new_calls


# -- update, rollback ------------------------------------------------------------------------
def test_new_version_goes_through_update_endpoint_with_the_deployment_config(sm, versions):
    v1 = deploy(versions[0])
    sm.updating_polls = 3
    v2 = deploy(versions[1], deployment_config=CANARY)

    assert v2["action"] == "updated"
    assert v2["previous_config_name"] == v1["endpoint_config_name"]
    assert live(sm)["EndpointConfigName"] == v2["endpoint_config_name"]
    assert len(sm.updates) == 1
    update = sm.updates[0]
    assert (update["from"], update["EndpointConfigName"]) == (v1["endpoint_config_name"], v2["endpoint_config_name"])
    assert update["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 300,
                                            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}},
            "TerminationWaitInSeconds": 60, "MaximumExecutionTimeoutInSeconds": 1800},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "fraud-5xx"}]}}

    # A rerun of the same update keeps the previous config it recorded, and changes nothing.
    again = deploy(versions[1], deployment_config=CANARY)
    assert again == {**v2, "action": "unchanged"}
    assert len(sm.updates) == 1

    # Explicit rollback to the previous config.
    rolled = SageMakerRollbackEndpointOperator(
        task_id="rollback", endpoint_name=ENDPOINT, endpoint_config_name=v2["previous_config_name"],
        aws_conn_id="aws_sm", poll_interval=0.05, deferrable=False).execute({"ti": MagicMock()})
    assert rolled == {"endpoint_name": ENDPOINT, "endpoint_config_name": v1["endpoint_config_name"],
                      "previous_config_name": v2["endpoint_config_name"], "region": "us-east-1",
                      "action": "updated"}
    assert live(sm)["EndpointConfigName"] == v1["endpoint_config_name"]
    assert len(sm.updates) == 2


def test_automatic_rollback_raises_and_changes_nothing_else(sm, versions):
    v1 = deploy(versions[0])
    sm.update_mode = "rollback"
    before = sm.names()
    with pytest.raises(DeploymentRolledBack) as err:
        deploy(versions[1], deployment_config=CANARY)

    v2_name = version_resource_name(ENDPOINT, MODEL, versions[1])
    message = str(err.value)
    assert v1["endpoint_config_name"] in message and v2_name in message
    assert err.value.context == {"endpoint": ENDPOINT, "requested_config": v2_name,
                                 "live_config": v1["endpoint_config_name"], "model_version": versions[1],
                                 "region": "us-east-1"}
    desc = live(sm)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", v1["endpoint_config_name"])
    after = sm.names()
    # Only the new version's own model and config were added; nothing deleted, no second update.
    assert after["endpoints"] == before["endpoints"]
    assert set(after["models"]) - set(before["models"]) == {v2_name}
    assert set(before["models"]) <= set(after["models"]) and set(before["configs"]) <= set(after["configs"])
    assert len(sm.updates) == 1


def test_failed_update_names_the_reason(sm, versions):
    deploy(versions[0])
    sm.update_mode = "fail"
    with pytest.raises(SageMakerError, match="is Failed .*ping health check") as err:
        deploy(versions[1])
    assert err.value.context["reason"] == "failed"


def test_rollback_without_previous_config_skips(sm):
    op = SageMakerRollbackEndpointOperator(task_id="rb", endpoint_name=ENDPOINT, endpoint_config_name=None,
                                           aws_conn_id="aws_sm")
    with pytest.raises(AirflowSkipException, match="first deployment"):
        op.execute({"ti": MagicMock()})


def test_rollback_follows_the_champion_alias(sm, versions):
    """The rollback target is the config of the version @champion names when it runs."""
    v1 = deploy(versions[0])
    deploy(versions[1])
    client = MlflowHook().client
    client.set_registered_model_alias(MODEL, "champion", versions[0])

    def rollback(task_id: str, fallback: str | None) -> dict:
        return SageMakerRollbackEndpointOperator(
            task_id=task_id, endpoint_name=ENDPOINT, endpoint_config_name=fallback, model_name=MODEL,
            aws_conn_id="aws_sm", poll_interval=0.05, timeout=30).execute({"ti": MagicMock()})

    # No fallback given: the alias alone finds v1's config.
    back = rollback("rb1", None)
    assert (back["action"], back["model_version"]) == ("updated", versions[0])
    assert live(sm)["EndpointConfigName"] == v1["endpoint_config_name"]
    # A champion that was never deployed to this endpoint: the given config is used.
    never = client.create_model_version(MODEL, client.get_model_version_download_uri(MODEL, versions[0]))
    client.set_registered_model_alias(MODEL, "champion", never.version)
    v2_config = version_resource_name(ENDPOINT, MODEL, versions[1])
    other = rollback("rb2", v2_config)
    assert other["endpoint_config_name"] == v2_config and "model_version" not in other
    assert live(sm)["EndpointConfigName"] == v2_config


# -- deferral --------------------------------------------------------------------------------
def test_deferral_then_completion(sm, versions):
    v1 = deploy(versions[0])
    sm.updating_polls = 1
    op = SageMakerDeployModelVersionOperator(
        task_id="deploy", endpoint_name=ENDPOINT, model_name=MODEL, model_version=versions[1], image_uri=IMAGE,
        execution_role_arn=ROLE, s3_bucket=BUCKET, aws_conn_id="aws_sm", deferrable=True, poll_interval=0.05,
        timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": MagicMock()})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DeployTargetWaitTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert not deferred.value.kwargs  # the event carries everything (dags test drops defer kwargs)
    details = trigger.details
    assert details["previous_config_name"] == v1["endpoint_config_name"]

    # Serialize round trip, then run the trigger for real against the fake.
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops_provider.triggers.base.DeployTargetWaitTrigger"
    assert kwargs["probe_classpath"] == "airflow_mlops_provider.deploy.sagemaker.EndpointProbe"
    json.dumps(kwargs)
    rebuilt = DeployTargetWaitTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)

    import asyncio

    async def first_event():
        async for event in rebuilt.run():
            return event.payload

    event = asyncio.run(first_event())
    assert event["status"] == "done" and event["state"]["EndpointConfigName"] == details["endpoint_config_name"]
    assert event["details"] == details
    result = op.execute_complete({"ti": MagicMock()}, event)
    assert result == details

    # The same event on a rolled-back endpoint is refused.
    with pytest.raises(DeploymentRolledBack):
        op.execute_complete({"ti": MagicMock()}, {**event, "status": "failed", "settled": "other_config", "state": {
            **event["state"], "EndpointConfigName": v1["endpoint_config_name"]}})
    with pytest.raises(SageMakerError, match="still Updating"):
        op.execute_complete({"ti": MagicMock()}, {**event, "status": "timeout", "state": {
            **event["state"], "EndpointStatus": "Updating"}})


def test_retry_while_our_update_is_in_flight_waits_instead_of_updating_again(sm, versions):
    v1 = deploy(versions[0])
    sm.updating_polls = 2
    with pytest.raises(TaskDeferred):  # first try: update started, then the worker went away
        deploy(versions[1], deferrable=True)
    assert live(sm)["EndpointStatus"] == "Updating"
    result = deploy(versions[1])  # the retry sees PendingDeploymentSummary naming its config
    assert result["action"] == "unchanged" and result["previous_config_name"] == v1["endpoint_config_name"]
    assert len(sm.updates) == 1
    assert live(sm)["EndpointConfigName"] == result["endpoint_config_name"]


def test_operator_surface():
    op = SageMakerDeployModelVersionOperator(
        task_id="d", endpoint_name="{{ params.ep }}", model_name=MODEL, model_version="@challenger",
        image_uri=IMAGE, execution_role_arn=ROLE, s3_bucket=BUCKET, deferrable=False)
    assert {"endpoint_name", "model_version", "deployment_config", "aws_conn_id", "mlflow_conn_id",
            "region_name", "image_uri", "instance_type"} <= set(op.template_fields)
    assert op.template_fields_renderers["deployment_config"] == "json"
    assert [type(link) for link in op.operator_extra_links] == [SageMakerEndpointLink]
    rollback = SageMakerRollbackEndpointOperator(task_id="r", endpoint_name="ep", endpoint_config_name="c")
    assert {"endpoint_name", "endpoint_config_name", "aws_conn_id"} <= set(rollback.template_fields)


def test_already_settled_endpoint_does_not_defer(sm, versions):
    deploy(versions[0])
    result = deploy(versions[0], deferrable=True)  # InService on the requested config: nothing to wait for
    assert result["action"] == "unchanged"


# -- throttling ------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:.*ThrottlingException does not match an error shape")
def test_throttling_is_retried_then_named(sm, versions, monkeypatch):
    from airflow_mlops_provider.core import sagemaker as core

    # Only this thread's sleeps are the backoff's (and skipped): ``time.sleep`` is one global, and
    # other threads of the worker (the fake server's, a session's) sleep through it too.
    sleeps, real_sleep, me = [], time.sleep, threading.get_ident()
    monkeypatch.setattr(core.time, "sleep",
                        lambda s: sleeps.append(s) if threading.get_ident() == me else real_sleep(s))
    sm.throttle["CreateModel"] = 2
    sm.throttle["CreateEndpointConfig"] = 1
    result = deploy(versions[0])
    assert result["action"] == "created"
    assert sm.calls["CreateModel"] == 3 and sm.calls["CreateEndpointConfig"] == 2
    assert len(sleeps) == 3 and all(0 < s <= 20 for s in sleeps)

    sm.throttle["UpdateEndpoint"] = 100
    with pytest.raises(SageMakerError, match="SageMaker UpdateEndpoint was throttled 3 times in a row") as err:
        deploy(versions[1], throttle_attempts=3)
    assert err.value.context["call"] == "UpdateEndpoint" and err.value.context["reason"] == "throttled"
    assert sm.calls["UpdateEndpoint"] == 3
    assert live(sm)["EndpointConfigName"] == result["endpoint_config_name"]


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(("override", "field"), [
    ({"instance_type": "ml.z9.large"}, "instance_type"),
    ({"instance_type": "m5.large"}, "instance_type"),
    ({"image_uri": ""}, "image_uri"),
    ({"image_uri": "docker.io/library/python:3.11"}, "image_uri"),
    ({"execution_role_arn": "sagemaker-exec"}, "execution_role_arn"),
    ({"deployment_config": {"traffic_shift": {"type": "canary", "percent": 80}}}, "traffic_shift.percent"),
    ({"data_capture_uri": "capture/fraud"}, "data_capture_uri"),
    ({"data_capture_uri": "s3://lake/capture", "data_capture_percent": 0}, "data_capture_percent"),
])
def test_bad_inputs_create_nothing(sm, versions, override, field):
    with pytest.raises(SageMakerSpecError) as err:
        deploy(versions[0], **override)
    assert err.value.context["field"] == field and field in str(err.value)
    assert sm.names() == {"models": [], "configs": [], "endpoints": []}
    assert sm.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_model_version_without_artifacts_creates_nothing(sm, versions, tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    mv = MlflowHook().client.create_model_version(MODEL, source=empty.as_uri())
    with pytest.raises(SageMakerSpecError, match=f"version {mv.version} has no model artifacts") as err:
        deploy(mv.version)
    assert err.value.context["field"] == "model_version"
    assert sm.names() == {"models": [], "configs": [], "endpoints": []}
    assert sm.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


# -- smoke test ------------------------------------------------------------------------------
def test_smoke_test_failures_are_clear(sm, versions):
    deploy(versions[0])
    rows = [[0.0, 1.0], [2.0, 1.0]]
    sm.invoke_mode = "short"
    with pytest.raises(SageMakerError, match="2 rows sent, 1 predictions returned"):
        smoke_test_endpoint(runtime_hook(), ENDPOINT, rows, timeout=5)
    sm.invoke_mode, sm.invoke_delay = "ok", 0.3
    with pytest.raises(SageMakerError, match=r"over the 0.1s limit"):
        smoke_test_endpoint(runtime_hook(), ENDPOINT, [[1.0, 1.0]], timeout=0.1)
    sm.invoke_delay = 0
    with pytest.raises(SageMakerError, match="'nope' failed: the call raised"):
        smoke_test_endpoint(runtime_hook(), "nope", rows, timeout=5)


def test_verify_operator_uses_its_connection_and_the_holdout_rows(sm, versions, tmp_path):
    # aws_sm is the only AWS connection: the verify step must use the one it is given.
    [challenger] = register_versions("fraud-verify", tmp_path, count=1, champion=None)
    deployed = deploy(versions[0])

    def verify(**kwargs) -> dict:
        return SageMakerVerifyEndpointOperator(
            task_id="verify", deployment=deployed, challenger=challenger, aws_conn_id="aws_sm",
            **{"bake_requests": 3, "smoke_rows": 2, **kwargs}).execute({"ti": MagicMock()})

    out = verify()
    assert {k: out[k] for k in ("endpoint_name", "requests", "errors", "rows")} == {
        "endpoint_name": ENDPOINT, "requests": 3, "errors": 0, "rows": 2}
    sm.invoke_mode = "short"
    with pytest.raises(SageMakerError, match="2 rows sent, 1 predictions returned"):
        verify()
    sm.invoke_mode = "ok"


def test_quality_canary_rolls_back_a_dissenting_candidate_and_passes_an_agreeing_one(sm, mlops_home, tmp_path):
    """The fake container serves the deployed version's real model; the champion's answers come from its
    registered model. Neither candidate has errors or latency: only the agreement decides."""
    name = "fraud-canary"
    v1, v2, v3 = register_versions(name, tmp_path, count=3, flipped=(3,))  # @champion: v1
    first = deploy(v1["version"], model_name=name)
    checks = {"canary_rows": 8, "load_concurrency": 2, "load_requests": 20, "bake_requests": 2}

    def verify(deployment: dict, challenger: dict) -> dict:
        return SageMakerVerifyEndpointOperator(task_id="verify", deployment=deployment, challenger=challenger,
                                               aws_conn_id="aws_sm", **checks).execute({"ti": MagicMock()})

    dissenting = deploy(v3["version"], model_name=name)
    sm.model = served_model(name, v3["version"])
    with pytest.raises(SageMakerError, match=(
            rf"quality canary \(v{v3['version']} against @champion v{v1['version']}, 8 rows\) of {ENDPOINT}: class "
            r"agreement with the champion 0\.0% is below the canary_min_agreement limit of 95\.0%")):
        verify(dissenting, v3)
    back = SageMakerRollbackEndpointOperator(
        task_id="rollback", endpoint_name=ENDPOINT, endpoint_config_name=None, model_name=name,
        aws_conn_id="aws_sm", poll_interval=0.05, timeout=30).execute({"ti": MagicMock()})
    assert back["model_version"] == v1["version"]
    assert live(sm)["EndpointConfigName"] == first["endpoint_config_name"]

    agreeing = deploy(v2["version"], model_name=name)
    sm.model = served_model(name, v2["version"])
    out = verify(agreeing, v2)
    assert out["canary"]["agreement"] == 1.0 and out["canary"]["mean_abs_diff"] == 0.0
    assert out["load"]["requests"] == 20 and out["load"]["errors"] == 0
    decisions = [(r["event"], r["challenger_version"], r["verdict"]) for r in ledger.read(home_settings().ledger_path)]
    assert decisions == [("load_test", v3["version"], "passed"), ("quality_canary", v3["version"], "failed"),
                         ("load_test", v2["version"], "passed"), ("quality_canary", v2["version"], "passed")]


SAGEMAKER_DAG = '''
"""Blue/green update waited on by the trigger, then a rollback if anything failed (test_sagemaker_deploy)."""
import pendulum
from airflow.sdk import DAG

from airflow_mlops_provider.operators.deploy_sagemaker import (
    SageMakerDeployModelVersionOperator,
    SageMakerRollbackEndpointOperator,
)

common = {"endpoint_name": "fraud-prod", "aws_conn_id": "aws_sm", "poll_interval": 0.2, "timeout": 60}
deploy = {"model_name": "fraud", "image_uri": "IMAGE", "execution_role_arn": "ROLE", "s3_bucket": "models", **common}
with DAG("sagemaker_bluegreen", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    first = SageMakerDeployModelVersionOperator(task_id="deploy_v1", model_version="V1", deferrable=False, **deploy)
    second = SageMakerDeployModelVersionOperator(task_id="deploy_v2", model_version="V2", deferrable=True,
                                                 deployment_config=CANARY, retries=0, **deploy)
    rollback = SageMakerRollbackEndpointOperator(
        task_id="rollback", trigger_rule="one_failed", deferrable=True, model_name="fraud",
        endpoint_config_name="{{ ti.xcom_pull(task_ids='deploy_v1')['endpoint_config_name'] }}", **common)
    first >> second >> rollback
'''


@pytest.mark.parametrize("mode", ["apply", "rollback"])
def test_deferred_blue_green_update_in_a_real_airflow_run(sm, versions, run_dag, tmp_path, mode):
    """The wait runs in the triggerer loop of `airflow dags test`; SageMaker's own rollback is still caught."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "sagemaker_bluegreen.py").write_text(
        SAGEMAKER_DAG.replace("IMAGE", IMAGE).replace("ROLE", ROLE).replace('"V1"', repr(versions[0]))
        .replace('"V2"', repr(versions[1])).replace("deployment_config=CANARY", f"deployment_config={CANARY!r}"))
    sm.updating_polls = 4
    sm.update_mode = mode
    result = run_dag("sagemaker_bluegreen", dags_folder=dags, timeout=300)
    assert "Pausing task as DEFERRED" in result.output and "Trigger completed" in result.output, result
    v1_config = version_resource_name(ENDPOINT, MODEL, versions[0])
    v2_config = version_resource_name(ENDPOINT, MODEL, versions[1])
    assert sm.updates[0]["EndpointConfigName"] == v2_config, result
    assert len(sm.updates) == 1, result
    if mode == "apply":
        assert result.returncode == 0, result
        assert result.states == {"deploy_v1": "success", "deploy_v2": "success", "rollback": "skipped"}, result
        assert live(sm)["EndpointConfigName"] == v2_config
    else:
        # The run's leaf (the rollback) succeeded, so the run does too; the deploy task failed.
        assert result.states == {"deploy_v1": "success", "deploy_v2": "failed", "rollback": "success"}, result
        assert "DeploymentRolledBack" in result.output and "SageMaker rolled the update back" in result.output
        # Nothing to undo: SageMaker already serves v1 again, the rollback changes nothing.
        assert live(sm)["EndpointConfigName"] == v1_config


def test_serving_names_the_endpoint_and_the_version_it_serves(sm, versions):
    from airflow_mlops_provider.deploy.sagemaker import serving

    deploy(versions[0])
    v2 = deploy(versions[1])
    rows = serving(MODEL, aws_conn_id="aws_sm")
    assert [(r["resource"], r["version"], r["role"], r["traffic_percent"]) for r in rows] == [
        (ENDPOINT, str(versions[1]), "live", 100.0)]
    assert rows[0]["endpoint_config_name"] == v2["endpoint_config_name"] and rows[0]["status"] == "InService"
    assert serving("another-model", aws_conn_id="aws_sm") == []
    with pytest.raises(Exception, match="aws_nowhere"):  # no such connection: the view shows it unavailable
        serving(MODEL, aws_conn_id="aws_nowhere")
