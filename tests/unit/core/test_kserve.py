"""KServe manifests against the real CRD schema, argument validation, status parsing, smoke checks."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from airflow_mlops_provider.core.kserve import (
    InferenceServiceSpec,
    InferenceServiceSpecError,
    inference_request,
    is_serving,
    load_schema,
    parse_status,
    predictions_from_response,
    traffic_matches,
    validate_manifest,
)

SCHEMA_PATH = (Path(__file__).parents[3] / "../shared/kserve/inferenceservice-v1beta1.openapi.json").resolve()


@pytest.fixture(scope="module")
def schema() -> dict:
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"KServe CRD schema not found at {SCHEMA_PATH} (the shared/ folder beside the repo "
                    f"is absent); manifests cannot be checked against it")
    return load_schema(SCHEMA_PATH)


def spec(**overrides) -> InferenceServiceSpec:
    args = {"name": "churn", "namespace": "models", "storage_uri": "s3://models/churn/7"}
    return InferenceServiceSpec(**{**args, **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"canary_traffic_percent": 10, "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                                     "limits": {"cpu": "2", "memory": "2048Mi"}},
         "runtime": "kserve-mlserver", "service_account": "sa-models", "labels": {"team": "ml"},
         "annotations": {"a.b/c": "d"}, "min_replicas": 0, "max_replicas": 5},
        {"canary_traffic_percent": 0, "protocol_version": "v1", "resources": {"limits": {"cpu": 1, "memory": "1e9"}}},
        {"canary_traffic_percent": 100, "min_replicas": None, "name": "a" * 63, "storage_uri": "gs://b/m"},
        {"name": "m1", "storage_uri": "pvc://models/churn", "min_replicas": 3, "max_replicas": 3,
         "resources": {"requests": {"cpu": ".5", "memory": "512k"}}},
    ],
    ids=["minimal", "full", "canary-0-v1-int-cpu", "edge-name-63", "pvc"],
)
def test_manifests_validate_against_the_crd_schema(schema, overrides):
    s = spec(**overrides)
    manifest = s.to_manifest()
    validate_manifest(manifest, schema)
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
    predictor = manifest["spec"]["predictor"]
    assert predictor["model"]["modelFormat"] == {"name": "mlflow"}
    assert predictor["model"]["storageUri"] == s.storage_uri
    assert predictor["model"]["protocolVersion"] == s.protocol_version
    assert predictor.get("canaryTrafficPercent") == s.canary_traffic_percent
    assert manifest["metadata"]["name"] == s.name and manifest["metadata"]["namespace"] == "models"


def test_full_manifest_shape():
    manifest = spec(canary_traffic_percent=25, resources={"requests": {"cpu": "1", "memory": "1Gi"}},
                    max_replicas=4, service_account="sa").to_manifest()
    assert manifest["spec"] == {"predictor": {
        "model": {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2", "storageUri": "s3://models/churn/7",
                  "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
        "minReplicas": 1, "maxReplicas": 4, "serviceAccountName": "sa", "canaryTrafficPercent": 25}}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "Churn"}, "name"),
        ({"name": "1churn"}, "name"),
        ({"name": "churn-"}, "name"),
        ({"name": "a" * 64}, "name"),
        ({"name": "churn_model"}, "name"),
        ({"namespace": "Models"}, "namespace"),
        ({"storage_uri": "models/churn"}, "storage_uri"),
        ({"protocol_version": "v3"}, "protocol_version"),
        ({"resources": {"requests": {"cpu": "half"}}}, "resources.requests.cpu"),
        ({"resources": {"limits": {"memory": "1GB"}}}, "resources.limits.memory"),
        ({"resources": {"limits": {"memory": "-1Gi"}}}, "resources.limits.memory"),
        ({"resources": {"limits": {"cpu": 1.5}}}, "resources.limits.cpu"),
        ({"resources": {"request": {"cpu": "1"}}}, "resources.request"),
        ({"canary_traffic_percent": 101}, "canary_traffic_percent"),
        ({"canary_traffic_percent": -1}, "canary_traffic_percent"),
        ({"canary_traffic_percent": 12.5}, "canary_traffic_percent"),
        ({"canary_traffic_percent": True}, "canary_traffic_percent"),
        ({"min_replicas": -1}, "min_replicas"),
        ({"max_replicas": 0}, "max_replicas"),
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas"),
        ({"labels": {"team": 1}}, "labels"),
        ({"runtime": "Bad Runtime"}, "runtime"),
        ({"logger_url": "sink:8080"}, "logger_url"),
        ({"logger_url": "http://sink", "logger_mode": "everything"}, "logger_mode"),
    ],
)
def test_bad_arguments_name_the_field(overrides, field):
    with pytest.raises(InferenceServiceSpecError) as info:
        spec(**overrides)
    assert info.value.context["field"] == field
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)


def test_schema_violation_names_the_path(schema):
    manifest = spec().to_manifest()
    broken = copy.deepcopy(manifest)
    broken["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    broken["spec"]["predictor"]["model"]["resources"] = {"requests": {"cpu": "lots"}}
    with pytest.raises(InferenceServiceSpecError, match="models/churn does not match the CRD schema") as info:
        validate_manifest(broken, schema)
    text = str(info.value)
    assert "spec.predictor.canaryTrafficPercent" in text and "spec.predictor.model.resources.requests.cpu" in text
    missing = copy.deepcopy(manifest)
    del missing["spec"]["predictor"]
    with pytest.raises(InferenceServiceSpecError, match="'predictor' is a required property"):
        validate_manifest(missing, schema)


def _obj(ready: str, traffic: list[dict], **status_extra) -> dict:
    return {
        "metadata": {"name": "churn", "namespace": "models", "generation": 2},
        "spec": {"predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": "s3://m/2"}}},
        "status": {
            "url": "http://churn.models.example.com",
            "observedGeneration": 2,
            "conditions": [{"type": "PredictorReady", "status": ready}, {"type": "Ready", "status": ready,
                                                                          "reason": None if ready == "True" else "X"}],
            "components": {"predictor": {
                "latestCreatedRevision": "churn-predictor-00002", "latestReadyRevision": "churn-predictor-00002",
                "latestRolledoutRevision": "churn-predictor-00001",
                "previousRolledoutRevision": None, "traffic": traffic}},
            **status_extra,
        },
    }


CANARY = [{"revisionName": "churn-predictor-00002", "percent": 10, "latestRevision": True, "tag": "latest"},
          {"revisionName": "churn-predictor-00001", "percent": 90, "latestRevision": False, "tag": "prev"}]


def test_parse_status_reads_kserve_fields():
    st = parse_status(_obj("True", CANARY))
    assert st["ready"] is True and st["failed"] is False
    assert st["url"] == "http://churn.models.example.com"
    assert st["traffic"]["latest"] == 10 and st["traffic"]["previous"] == 90
    assert [r["revision"] for r in st["traffic"]["revisions"]] == ["churn-predictor-00002", "churn-predictor-00001"]
    assert st["latest_ready_revision"] == st["latest_created_revision"] == "churn-predictor-00002"
    assert st["latest_rolledout_revision"] == "churn-predictor-00001"
    assert st["storage_uri"] == "s3://m/2" and st["canary_traffic_percent"] == 10
    assert is_serving(st, 10) and not is_serving(st, 100) and not is_serving(st, 20)


def test_parse_status_without_status_is_not_ready():
    st = parse_status({"metadata": {"name": "x", "namespace": "y"}, "spec": {}})
    assert st["ready"] is False and st["traffic"] == {"latest": 0, "previous": 0, "revisions": []}
    assert not is_serving(st, None)


def test_status_of_an_older_generation_never_counts():
    obj = _obj("True", CANARY)
    obj["metadata"]["generation"] = 3  # patched; the controller has not caught up yet
    assert not is_serving(parse_status(obj), 10)
    obj["status"]["observedGeneration"] = 3
    assert is_serving(parse_status(obj), 10)


def test_raw_deployment_mode_reports_no_split():
    obj = _obj("True", [])
    del obj["status"]["components"]["predictor"]["latestCreatedRevision"]
    del obj["status"]["components"]["predictor"]["latestReadyRevision"]
    assert is_serving(parse_status(obj), 10)


def test_rollback_split_counts_whatever_the_latest_revision_does():
    rolled_back = [{"revisionName": "churn-predictor-00002", "percent": 0, "latestRevision": True},
                   {"revisionName": "churn-predictor-00001", "percent": 100, "latestRevision": False}]
    failing = parse_status(_obj("False", rolled_back, modelStatus={"transitionStatus": "BlockedByFailedLoad"}))
    assert is_serving(failing, 0) and not is_serving(failing, 10)
    assert not is_serving(parse_status(_obj("True", CANARY)), 0)


def test_first_rollout_ignores_the_canary_percent():
    only = [{"revisionName": "churn-predictor-00001", "percent": 100, "latestRevision": True}]
    st = parse_status(_obj("True", only))
    assert traffic_matches(st, 10) and traffic_matches(st, None)


def test_terminal_failure_is_reported():
    st = parse_status(_obj("False", CANARY, modelStatus={
        "transitionStatus": "BlockedByFailedLoad", "states": {"activeModelState": "FailedToLoad"},
        "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "no MLmodel file"}}))
    assert st["failed"] and st["failure_reason"] == "ModelLoadFailed" and st["failure_message"] == "no MLmodel file"
    assert not is_serving(st, 10)


def test_v2_and_v1_requests_and_response_shapes():
    path, body = inference_request([[1.0, 2.0], [3.0, 4.0]], None, "v2", "churn")
    assert path == "/v2/models/churn/infer"
    assert body["inputs"][0]["shape"] == [2, 2] and body["inputs"][0]["datatype"] == "FP64"
    path, body = inference_request([[1, 2]], ["a", "b"], "v2", "churn")
    assert [i["name"] for i in body["inputs"]] == ["a", "b"] and body["inputs"][0]["datatype"] == "INT64"
    path, body = inference_request([[1, 2]], ["a", "b"], "v1", "churn")
    assert path == "/v1/models/churn:predict" and body == {"instances": [{"a": 1, "b": 2}]}
    assert predictions_from_response({"outputs": [{"shape": [2], "data": [0.1, 0.2]}]}, "v2") == [0.1, 0.2]
    assert predictions_from_response({"outputs": [{"shape": [2, 2], "data": [1, 2, 3, 4]}]}, "v2") == [[1, 2], [3, 4]]
    assert predictions_from_response({"predictions": [1]}, "v1") == [1]
    for bad in ({}, {"outputs": []}, {"outputs": [{"shape": [3], "data": [1, 2]}]}, {"outputs": [{"data": [1]}]}):
        with pytest.raises(ValueError):
            predictions_from_response(bad, "v2")
