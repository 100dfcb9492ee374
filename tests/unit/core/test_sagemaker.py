"""SageMaker builders: deployment configs, endpoint specs, names, payloads, backoff."""

from __future__ import annotations

import re

import pytest

from airflow_mlops_provider.core.sagemaker import (
    NAME_MAX,
    DeploymentConfig,
    EndpointSpec,
    SageMakerSpecError,
    TrafficShift,
    call_with_backoff,
    console_url,
    predictions_from_body,
    resource_name,
    s3_model_key,
    same_variants,
    scoring_request,
    version_resource_name,
)
from airflow_mlops_provider.exceptions import SageMakerError

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlflow-pyfunc:3.17"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-exec"


def spec(**kwargs) -> EndpointSpec:
    return EndpointSpec(**{"endpoint_name": "fraud-prod", "image_uri": IMAGE, "instance_type": "ml.m5.large",
                           "initial_instance_count": 2, "execution_role_arn": ROLE, **kwargs})


def field_of(err: pytest.ExceptionInfo) -> str:
    assert isinstance(err.value, ValueError) and isinstance(err.value, SageMakerError)
    assert err.value.context["field"] in str(err.value)
    return err.value.context["field"]


# -- traffic shifting and deployment config ---------------------------------------------------
def test_traffic_shift_builders():
    assert TrafficShift.canary(10, 300).to_api() == {
        "Type": "CANARY", "WaitIntervalInSeconds": 300, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}
    assert TrafficShift.linear(20, 120).to_api() == {
        "Type": "LINEAR", "WaitIntervalInSeconds": 120, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20}}
    assert TrafficShift.all_at_once().to_api() == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    assert TrafficShift.from_dict({"type": "canary", "percent": "5", "wait_seconds": 60}) == TrafficShift.canary(5, 60)


@pytest.mark.parametrize(("data", "field"), [
    ({"type": "blue"}, "traffic_shift.type"),
    ({"type": "canary", "percent": 0, "wait_seconds": 60}, "traffic_shift.percent"),
    ({"type": "canary", "percent": 60, "wait_seconds": 60}, "traffic_shift.percent"),
    ({"type": "canary", "wait_seconds": 60}, "traffic_shift.percent"),
    ({"type": "linear", "percent": 5, "wait_seconds": 60}, "traffic_shift.percent"),
    ({"type": "linear", "percent": 12.5, "wait_seconds": 60}, "traffic_shift.percent"),
    ({"type": "canary", "percent": 10, "wait_seconds": 3601}, "traffic_shift.wait_seconds"),
    ({"type": "all_at_once", "percent": 10}, "traffic_shift.percent"),
    ({"type": "canary", "percent": 10, "bake": 1}, "traffic_shift.bake"),
])
def test_traffic_shift_errors_name_the_field(data, field):
    with pytest.raises(SageMakerSpecError) as err:
        TrafficShift.from_dict(data)
    assert field_of(err) == field


def test_deployment_config_to_api():
    config = DeploymentConfig.from_dict({
        "traffic_shift": {"type": "linear", "percent": 25, "wait_seconds": 600},
        "termination_wait_seconds": 120, "max_execution_timeout": 3600,
        "auto_rollback_alarms": ["fraud-5xx", "fraud-latency"]})
    assert config.to_api() == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "LINEAR", "WaitIntervalInSeconds": 600,
                                            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}},
            "TerminationWaitInSeconds": 120, "MaximumExecutionTimeoutInSeconds": 3600},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "fraud-5xx"}, {"AlarmName": "fraud-latency"}]}}
    # No alarms, no timeout: those keys are left out rather than sent empty.
    assert DeploymentConfig(TrafficShift.all_at_once()).to_api() == {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
        "TerminationWaitInSeconds": 0}}


@pytest.mark.parametrize(("data", "field"), [
    ({}, "traffic_shift"),
    ({"traffic_shift": {"type": "canary", "percent": 10}, "termination_wait_seconds": -1},
     "termination_wait_seconds"),
    ({"traffic_shift": {"type": "canary", "percent": 10}, "max_execution_timeout": 60}, "max_execution_timeout"),
    ({"traffic_shift": {"type": "canary", "percent": 10}, "auto_rollback_alarms": "one-alarm"},
     "auto_rollback_alarms"),
    ({"traffic_shift": {"type": "canary", "percent": 10}, "auto_rollback_alarms": ["ok", ""]},
     "auto_rollback_alarms[1]"),
    ({"traffic_shift": {"type": "canary", "percent": 10}, "rollback": True}, "deployment_config.rollback"),
])
def test_deployment_config_errors_name_the_field(data, field):
    with pytest.raises(SageMakerSpecError) as err:
        DeploymentConfig.from_dict(data)
    assert field_of(err) == field


# -- endpoint spec ----------------------------------------------------------------------------
def test_endpoint_spec_requests():
    s = spec()
    assert s.model_request("m-v1", "s3://b/k/model.tar.gz", {"MLFLOW_X": "1"}) == {
        "ModelName": "m-v1", "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "s3://b/k/model.tar.gz", "Mode": "SingleModel",
                             "Environment": {"MLFLOW_X": "1"}}}
    config = s.endpoint_config_request("c-v1", "m-v1")
    assert config == {"EndpointConfigName": "c-v1", "ProductionVariants": [{
        "VariantName": "AllTraffic", "ModelName": "m-v1", "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 2, "InitialVariantWeight": 1.0}]}
    assert same_variants({**config, "EndpointConfigArn": "arn"}, config)
    assert not same_variants(config, spec(instance_type="ml.c5.xlarge").endpoint_config_request("c-v1", "m-v1"))
    # Digest-pinned images and China regions are ECR URIs too.
    spec(image_uri="123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/model@sha256:" + "a" * 64)
    spec(instance_type="ml.g5.12xlarge")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"instance_type": "ml.z9.large"}, "instance_type"),
    ({"instance_type": "m5.large"}, "instance_type"),
    ({"instance_type": "ml.m5.huge"}, "instance_type"),
    ({"instance_type": ""}, "instance_type"),
    ({"image_uri": ""}, "image_uri"),
    ({"image_uri": None}, "image_uri"),
    ({"image_uri": "python:3.11"}, "image_uri"),
    ({"image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/Upper:1"}, "image_uri"),
    ({"endpoint_name": "fraud_prod"}, "endpoint_name"),
    ({"endpoint_name": "x" * 64}, "endpoint_name"),
    ({"initial_instance_count": 0}, "initial_instance_count"),
    ({"initial_instance_count": True}, "initial_instance_count"),
    ({"execution_role_arn": ""}, "execution_role_arn"),
    ({"execution_role_arn": "arn:aws:iam::123:role/x"}, "execution_role_arn"),
])
def test_endpoint_spec_errors_name_the_field(kwargs, field):
    with pytest.raises(SageMakerSpecError) as err:
        spec(**kwargs)
    assert field_of(err) == field


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(SageMakerSpecError, match=r"unknown instance family 'z9'; known: .*m5"):
        spec(instance_type="ml.z9.large")


# -- names ------------------------------------------------------------------------------------
VALID = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def test_version_names_are_deterministic_and_valid():
    assert version_resource_name("fraud-prod", "fraud", 3) == "fraud-prod-fraud-v3"
    assert version_resource_name("fraud-prod", "Fraud_Model.v2 ", "12") == "fraud-prod-Fraud-Model-v2-v12"
    long = version_resource_name("e" * 40, "m" * 40, 7)
    assert len(long) <= NAME_MAX and VALID.match(long) and long.endswith("-v7")
    assert long == version_resource_name("e" * 40, "m" * 40, 7)
    assert long != version_resource_name("e" * 40, "m" * 41, 7)  # the hash keeps truncated names apart
    assert version_resource_name("e" * 40, "m" * 40, 8) != long
    with pytest.raises(SageMakerSpecError) as err:
        resource_name("__", field_name="resource name")
    assert field_of(err) == "resource name"


def test_keys_links_and_payloads():
    assert s3_model_key("/mlops/sagemaker/", "ep", "m", 4) == "mlops/sagemaker/ep/m/v4/model.tar.gz"
    assert s3_model_key("", "ep", "m", 4) == "ep/m/v4/model.tar.gz"
    assert console_url("eu-west-1", "ep") == ("https://eu-west-1.console.aws.amazon.com/sagemaker/home"
                                              "?region=eu-west-1#/endpoints/ep")
    assert scoring_request([[1, 2], [3, 4]], ["a", "b"]) == {
        "dataframe_split": {"data": [[1, 2], [3, 4]], "columns": ["a", "b"]}}
    for rows, columns, field in (([], None, "rows"), ([[1], [1, 2]], None, "rows"), ([[1, 2]], ["a"], "columns")):
        with pytest.raises(SageMakerSpecError) as err:
            scoring_request(rows, columns)
        assert field_of(err) == field
    assert predictions_from_body({"predictions": [1, 0]}) == [1, 0]
    assert predictions_from_body([0.2]) == [0.2]
    with pytest.raises(ValueError, match="expected"):
        predictions_from_body({"outputs": []})


# -- backoff ----------------------------------------------------------------------------------
class Throttled(Exception):
    pass


def test_backoff_retries_throttling_then_names_the_call():
    sleeps: list[float] = []
    answers = iter([Throttled(), Throttled(), "ok"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert call_with_backoff(call, call="CreateModel", is_throttled=lambda e: isinstance(e, Throttled),
                             base_delay=1, sleep=sleeps.append) == "ok"
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1 and 1 <= sleeps[1] <= 2

    sleeps.clear()
    with pytest.raises(SageMakerError, match="SageMaker UpdateEndpoint was throttled 4 times") as err:
        call_with_backoff(lambda: (_ for _ in ()).throw(Throttled()), call="UpdateEndpoint", attempts=4,
                          is_throttled=lambda e: isinstance(e, Throttled), base_delay=8, max_delay=10,
                          sleep=sleeps.append, context={"endpoint": "ep"})
    assert err.value.context == {"call": "UpdateEndpoint", "attempts": 4, "reason": "throttled", "endpoint": "ep"}
    assert len(sleeps) == 3 and max(sleeps) <= 10  # bounded

    with pytest.raises(KeyError):  # anything else is not retried
        call_with_backoff(lambda: {}["x"], call="X", is_throttled=lambda e: False, sleep=sleeps.append)
