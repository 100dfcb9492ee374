"""The built-in targets' wait rules on recorded statuses: what the task loop and the trigger both
decide (classify), and the errors the task raises (naming the resource and the last status)."""

from __future__ import annotations

import os

import pytest

from airflow_mlops_provider.core.kserve import parse_status
from airflow_mlops_provider.deploy.kserve import InferenceServiceProbe
from airflow_mlops_provider.deploy.local import LocalServerProbe
from airflow_mlops_provider.deploy.sagemaker import EndpointProbe
from airflow_mlops_provider.exceptions import (
    DeploymentRolledBack,
    KServeError,
    LocalServingError,
    SageMakerError,
)
from tests.unit.core.test_kserve import CANARY, _obj


def test_kserve_done_only_with_the_asked_split_and_failed_on_a_terminal_failure():
    canary = parse_status(_obj("True", CANARY))
    assert InferenceServiceProbe("churn", "models", expected_canary_percent=10).classify(canary) == ("done", {})
    assert InferenceServiceProbe("churn", "models", expected_canary_percent=100).classify(canary) is None
    failing = parse_status(_obj("False", CANARY, modelStatus={
        "transitionStatus": "BlockedByFailedLoad", "lastFailureInfo": {"reason": "ModelLoadFailed",
                                                                        "message": "no MLmodel"}}))
    probe = InferenceServiceProbe("churn", "models", expected_canary_percent=10)
    kind, payload = probe.classify(failing)
    assert kind == "failed"
    err = probe.failure(failing, payload, {})
    # The previous revision still takes traffic: KServe kept serving it, the platform rolled back.
    assert isinstance(err, DeploymentRolledBack) and "ModelLoadFailed" in str(err)
    err = probe.timeout_error(parse_status(_obj("False", CANARY)), 3, {})
    assert isinstance(err, KServeError) and "InferenceService models/churn did not become Ready with 10%" in str(err)


def test_sagemaker_settles_then_checks_the_config_it_asked_for():
    probe = EndpointProbe("fraud", expected_config="fraud-m-v2")
    assert probe.classify({"EndpointStatus": "Updating", "EndpointConfigName": "fraud-m-v1"}) is None
    assert probe.classify({"EndpointStatus": "InService", "EndpointConfigName": "fraud-m-v2"}) == ("done", {})
    back = {"EndpointStatus": "InService", "EndpointConfigName": "fraud-m-v1"}
    kind, payload = probe.classify(back)
    assert kind == "failed"
    err = probe.failure(back, payload, {"model_version": "2", "region": "eu-west-1"})
    assert isinstance(err, DeploymentRolledBack) and "SageMaker rolled the update back" in str(err)
    failed = {"EndpointStatus": "Failed", "EndpointConfigName": "fraud-m-v2", "FailureReason": "image pull"}
    err = probe.failure(failed, probe.classify(failed)[1], {})
    assert isinstance(err, SageMakerError) and str(err) == (
        "SageMaker endpoint 'fraud' is Failed (wanted InService on 'fraud-m-v2'): image pull")
    assert probe.classify({}) == ("failed", {"settled": "not_in_service"})  # the endpoint does not exist
    assert "still Updating after 60s" in str(probe.timeout_error({"EndpointStatus": "Updating"}, 60, {}))


def test_local_done_when_it_answers_failed_when_its_process_is_gone(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("Traceback ...\nModuleNotFoundError: No module named 'sklearn'\n")
    server = {"version": "3", "port": 5001, "pid": os.getpid(), "log_path": str(log)}
    probe = LocalServerProbe("fraud", server)
    assert probe.classify({"server": server, "alive": True, "healthy": True}) == ("done", {})
    assert probe.classify({"server": server, "alive": True, "healthy": False}) is None
    gone = {"server": server, "alive": False, "healthy": False}
    err = probe.failure(gone, probe.classify(gone)[1], {})
    assert isinstance(err, LocalServingError) and "No module named 'sklearn'" in str(err)
    assert "exited before it answered /ping" in str(err)
    with pytest.raises(LocalServingError, match=r"v3 on http://127.0.0.1:5001 did not answer /ping within 2s"):
        raise probe.timeout_error({"alive": True}, 2, {})
