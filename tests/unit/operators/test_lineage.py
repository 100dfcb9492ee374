"""OpenLineage datasets of the operators: names, namespaces, facets, and that the hops connect.

Each operator is given the state its ``execute`` records, then asked for
``get_openlineage_facets_on_complete``; no MLflow, no DAG run. The real run (DAGs with the file
transport) is checked with :mod:`tests.lineage`, whose reader and chain are tested here on events
written by OpenLineage's own FileTransport.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from openlineage.client.serde import Serde

from airflow_mlops_provider.core import lineage as naming
from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator
from airflow_mlops_provider.operators.deploy_kserve import KServeDeployInferenceServiceOperator
from airflow_mlops_provider.operators.deploy_local import LocalDeployModelVersionOperator
from airflow_mlops_provider.operators.deploy_sagemaker import SageMakerDeployModelVersionOperator
from airflow_mlops_provider.operators.drift import EvidentlyCheckDriftOperator
from airflow_mlops_provider.operators.dvc import DvcGetDataVersionOperator
from airflow_mlops_provider.operators.registry import (
    MlflowPromoteModelOperator,
    MlflowRegisterModelOperator,
    MlflowSetModelAliasOperator,
)
from airflow_mlops_provider.operators.training import MlflowTrainModelOperator
from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator
from tests.lineage import assert_chain, lineage_chain, read_events

TRACKING = "postgresql://mlflow:s3cret@db.internal:5432/mlflow?sslmode=require&password=s3cret"
NAMESPACE = "postgresql://db.internal:5432/mlflow"
MODEL_URI = "models:/m-0123456789abcdef"
COPY = "/home/mlops/data/versions/5d41402abc4b2a76b9719d911017c592/transactions.parquet"
DATA_VERSION = {"repo": "https://ci-bot:ghp_t0ken@github.com/acme/data.git", "path": "data/transactions.parquet",
                "rev": "main", "commit": "a" * 40, "md5": "5d41402abc4b2a76b9719d911017c592", "size": 1234,
                "id": "aaaaaaaaaaaa:5d41402abc4b2a76b9719d911017c592", "local_path": COPY}


def pairs(datasets) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def as_json(lineage) -> str:
    return json.dumps([json.loads(Serde.to_json(d)) for d in [*lineage.inputs, *lineage.outputs]])


def facets(dataset) -> dict:
    return json.loads(Serde.to_json(dataset))["facets"]


# -- the retraining hops ----------------------------------------------------------------------------
def trained(data_path: str = COPY, data_version: dict | None = DATA_VERSION):
    op = MlflowTrainModelOperator(task_id="train", train_callable=lambda X, y: None, data_path=data_path,
                                  target="is_fraud", experiment_name="fraud", data_version=data_version)
    op._lineage_state = {"tracking_uri": TRACKING, "model_uri": MODEL_URI, "run_id": "run1", "experiment_id": "7"}
    return op.get_openlineage_facets_on_complete(None)


def registered():
    op = MlflowRegisterModelOperator(task_id="register_challenger", name="fraud-detector", run_id="run1")
    op._lineage_state = {"tracking_uri": TRACKING, "registry_uri": TRACKING, "model_uri": MODEL_URI,
                         "version": "3", "source": MODEL_URI}
    return op.get_openlineage_facets_on_complete(None)


def test_training_reads_the_dvc_file_at_its_version_and_writes_the_logged_model():
    lineage = trained()
    [data] = lineage.inputs
    assert (data.namespace, data.name) == ("https://github.com/acme/data.git", "data/transactions.parquet")
    got = facets(data)
    assert got["version"]["datasetVersion"] == DATA_VERSION["md5"]
    assert {k: got["mlops_dvc"][k] for k in ("path", "rev", "commit", "md5", "id", "repo")} == {
        "path": "data/transactions.parquet", "rev": "main", "commit": "a" * 40, "md5": DATA_VERSION["md5"],
        "id": DATA_VERSION["id"], "repo": "https://github.com/acme/data.git"}
    # The local copy it actually read is an alias of the same dataset.
    assert got["symlinks"]["identifiers"] == [{"namespace": "file", "name": COPY, "type": "FILE"}]
    [model] = lineage.outputs
    assert (model.namespace, model.name) == (NAMESPACE, "logged_models/m-0123456789abcdef")
    assert facets(model)["datasetType"]["datasetType"] == "MODEL"
    assert facets(model)["mlops_model"]["run_id"] == "run1"


def test_training_on_another_file_reports_that_file_with_the_version_it_came_from(tmp_path):
    subset = tmp_path / "validated.parquet"
    [data] = trained(data_path=str(subset)).inputs
    assert (data.namespace, data.name) == ("file", str(subset))
    assert facets(data)["mlops_dvc"]["md5"] == DATA_VERSION["md5"]
    [plain] = trained(data_path="s3://lake/train/2026-11-01.parquet", data_version=None).inputs
    assert (plain.namespace, plain.name) == ("s3://lake", "train/2026-11-01.parquet") and not plain.facets


def test_no_credentials_reach_the_facets():
    for lineage in (trained(), registered()):
        text = as_json(lineage)
        assert "s3cret" not in text and "ghp_t0ken" not in text and "ci-bot" not in text
        assert "sslmode" not in text


def test_registration_reads_what_training_wrote_and_writes_the_model_version():
    lineage = registered()
    assert pairs(lineage.inputs) == pairs(trained().outputs)
    [version] = lineage.outputs
    assert (version.namespace, version.name) == (NAMESPACE, "models/fraud-detector/versions/3")
    assert facets(version)["version"]["datasetVersion"] == "3"
    assert facets(version)["mlops_model"]["alias"] == "challenger"


def test_alias_and_promotion_name_the_version_under_the_alias():
    alias = MlflowSetModelAliasOperator(task_id="alias", name="fraud-detector", alias="shadow", version=3)
    alias._lineage_state = {"registry_uri": TRACKING, "version": "3"}
    lineage = alias.get_openlineage_facets_on_complete(None)
    assert pairs(lineage.inputs) == pairs(registered().outputs)
    assert pairs(lineage.outputs) == [(NAMESPACE, "models/fraud-detector/aliases/shadow")]

    promote = MlflowPromoteModelOperator(task_id="promote", name="fraud-detector", decision={})
    assert promote.get_openlineage_facets_on_complete(None).outputs == []  # skipped: nothing promoted
    promote._lineage_state = {"registry_uri": TRACKING, "version": "3", "previous": "2"}
    lineage = promote.get_openlineage_facets_on_complete(None)
    assert pairs(lineage.inputs) == [(NAMESPACE, "models/fraud-detector/versions/3"),
                                     (NAMESPACE, "models/fraud-detector/versions/2")]
    champion, previous = lineage.outputs
    assert champion.name == "models/fraud-detector/aliases/champion"
    assert facets(champion)["version"]["datasetVersion"] == "3"
    assert previous.name == "models/fraud-detector/aliases/previous"
    assert facets(previous)["version"]["datasetVersion"] == "2"


def test_dvc_step_reads_the_tracked_file_and_writes_its_local_copy():
    op = DvcGetDataVersionOperator(task_id="resolve_data_version", path="data/transactions.parquet")
    assert op.get_openlineage_facets_on_complete(None).inputs == []
    op._lineage_state = dict(DATA_VERSION)
    lineage = op.get_openlineage_facets_on_complete(None)
    assert pairs(lineage.inputs) == pairs(trained().inputs)
    [copy] = lineage.outputs
    assert (copy.namespace, copy.name) == ("file", COPY)
    assert facets(copy)["version"]["datasetVersion"] == DATA_VERSION["md5"]


def test_a_local_dvc_repository_is_a_local_file(tmp_path):
    version = {**DATA_VERSION, "repo": str(tmp_path / "data-repo")}
    dataset = naming.dvc_dataset(version)
    assert (dataset.namespace, dataset.name) == ("file", str(tmp_path / "data-repo" / "data/transactions.parquet"))
    scp = naming.dvc_dataset({**DATA_VERSION, "repo": "git@github.com:acme/data.git"})
    assert (scp.namespace, scp.name) == ("ssh://github.com/acme/data.git", "data/transactions.parquet")


# -- batch scoring ------------------------------------------------------------------------------------
def test_scoring_reads_the_registered_version_and_the_partition_and_writes_the_scores(tmp_path):
    partition, scored = tmp_path / "incoming" / "2026-11-20.parquet", tmp_path / "scores" / "date=2026-11-20.parquet"
    op = MlflowBatchScoreOperator(task_id="score", model_name="fraud-detector", model_version="3",
                                  input_path=str(partition), output_path=str(scored))
    assert pairs(op.get_openlineage_facets_on_complete(None).inputs) == [("file", str(partition))]
    op._lineage_state = {"registry_uri": TRACKING, "version": "3", "run_id": "run1", "shadow_version": "4"}
    lineage = op.get_openlineage_facets_on_complete(None)
    model, shadow, data = lineage.inputs
    assert (model.namespace, model.name) == pairs(registered().outputs)[0]
    assert shadow.name == "models/fraud-detector/versions/4"
    assert (data.namespace, data.name) == ("file", str(partition))
    assert pairs(lineage.outputs) == [("file", str(scored))]


def test_s3_partitions_follow_the_openlineage_naming():
    op = MlflowBatchScoreOperator(task_id="score", model_name="m", input_path="s3://lake/in/day=1.parquet",
                                  output_path="s3://lake/out/day=1.parquet")
    op._lineage_state = {"registry_uri": "http://mlflow:5000", "version": "1", "run_id": "r", "shadow_version": None}
    lineage = op.get_openlineage_facets_on_complete(None)
    assert pairs(lineage.inputs) == [("http://mlflow:5000", "models/m/versions/1"), ("s3://lake", "in/day=1.parquet")]
    assert pairs(lineage.outputs) == [("s3://lake", "out/day=1.parquet")]


def test_storage_uris_translate_back_to_the_same_datasets_in_the_openlineage_provider():
    """What a TaskFlow step hands the hook lineage collector comes out of the OpenLineage provider
    under the name the operators use (so commit's inputs are score's outputs)."""
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset
    from airflow.sdk import Asset

    for path in ("/tmp/mlops/outputs/staging/run/shard-0.parquet", "s3://lake/out/day=1.parquet"):
        dataset = naming.storage_dataset(path)
        translated = translate_airflow_asset(Asset(uri=naming.storage_uri(dataset)), None)
        assert (translated.namespace, translated.name) == dataset.key


def test_taskflow_steps_report_files_to_the_hook_lineage_collector(monkeypatch):
    from airflow.providers.common.compat.lineage import hook as compat
    from airflow.sdk.lineage import HookLineageCollector

    from airflow_mlops_provider.hooks.lineage import report_storage_lineage

    collector = HookLineageCollector()
    monkeypatch.setattr(compat, "get_hook_lineage_collector", lambda: collector)
    report_storage_lineage(object(), inputs=[naming.storage_dataset("/s/shard-0.parquet"), None],
                           outputs=[naming.storage_dataset("/o/date=1.parquet")])
    got = collector.collected_assets
    assert [i.asset.uri for i in got.inputs] == ["file:///s/shard-0.parquet"]
    assert [o.asset.uri for o in got.outputs] == ["file:///o/date=1.parquet"]

    def broken():
        raise RuntimeError("collector down")

    monkeypatch.setattr(compat, "get_hook_lineage_collector", broken)
    report_storage_lineage(object(), outputs=[naming.storage_dataset("/o/x.parquet")])  # never fails the task


def test_drift_reads_version_partition_and_scores_and_writes_the_report(tmp_path):
    op = EvidentlyCheckDriftOperator(task_id="check_drift", model_name="fraud-detector", model_version="3",
                                     data_path=str(tmp_path / "in.parquet"), predictions_path=str(tmp_path / "s.parquet"))
    assert op.get_openlineage_facets_on_complete(None).inputs == []
    op._lineage_state = {"registry_uri": TRACKING, "report": str(tmp_path / "drift.html")}
    lineage = op.get_openlineage_facets_on_complete(None)
    assert pairs(lineage.inputs) == [(NAMESPACE, "models/fraud-detector/versions/3"), ("file", str(tmp_path / "in.parquet")),
                                     ("file", str(tmp_path / "s.parquet"))]
    assert pairs(lineage.outputs) == [("file", str(tmp_path / "drift.html"))]


def test_validation_reads_the_file_and_writes_the_split(tmp_path):
    data = tmp_path / "t.parquet"
    op = GreatExpectationsValidateDataOperator(task_id="validate", path=str(data), suite={})
    assert pairs(op.get_openlineage_facets_on_complete(None).inputs) == [("file", str(data))]
    op._lineage_state = {"path": str(data), "quarantine": {"path": (tmp_path / "q.parquet").as_uri(),
                                                           "valid_path": (tmp_path / "v.parquet").as_uri()}}
    lineage = op.get_openlineage_facets_on_complete(None)
    assert pairs(lineage.outputs) == [("file", str(tmp_path / "q.parquet")), ("file", str(tmp_path / "v.parquet"))]


# -- deploy targets ----------------------------------------------------------------------------------
@pytest.fixture
def mlflow_connection(monkeypatch):
    conn = {"conn_type": "mlflow", "host": "https://mlflow.acme.io", "login": "bot", "password": "s3cret"}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(conn))


def deployed(op, result: dict):
    op._finished(result)  # what wait() / execute_complete() end with
    return op.get_openlineage_facets_on_complete(None)


@pytest.mark.parametrize(("op", "result", "endpoint"), [
    (SageMakerDeployModelVersionOperator(
        task_id="deploy", endpoint_name="fraud", model_name="fraud-detector", model_version="@challenger",
        image_uri="img", execution_role_arn="arn", s3_bucket="b"),
     {"endpoint_name": "fraud", "endpoint_config_name": "fraud-fraud-detector-v3", "model_name": "fraud-fraud-detector-v3",
      "model_version": "3", "region": "eu-west-1", "action": "created"},
     ("sagemaker://eu-west-1", "fraud")),
    (KServeDeployInferenceServiceOperator(task_id="deploy", name="fraud", namespace="models",
                                          model_name="fraud-detector", model_version="@challenger"),
     {"name": "fraud", "namespace": "models", "model_name": "fraud-detector", "model_version": "3",
      "url": "http://fraud.models.example.com", "ready": True},
     ("kserve://models", "fraud")),
    (LocalDeployModelVersionOperator(task_id="deploy", model_name="fraud-detector", model_version="@challenger"),
     {"model_name": "fraud-detector", "model_version": "3", "url": "http://127.0.0.1:5123", "role": "candidate",
      "ready": True},
     ("http://127.0.0.1:5123", "/invocations")),
], ids=["sagemaker", "kserve", "local"])
def test_deploy_reads_the_model_version_and_writes_the_endpoint(mlflow_connection, op, result, endpoint):
    assert op.get_openlineage_facets_on_complete(None).outputs == []  # not deployed yet
    lineage = deployed(op, result)
    assert pairs(lineage.inputs) == [("https://mlflow.acme.io", "models/fraud-detector/versions/3")]
    [target] = lineage.outputs
    assert (target.namespace, target.name) == endpoint
    assert facets(target)["datasetType"] == {**facets(target)["datasetType"], "datasetType": "MODEL",
                                             "subType": "ENDPOINT"}
    assert "s3cret" not in as_json(lineage)


# -- tests/lineage.py on events written by OpenLineage's FileTransport -------------------------------------
def run_event(job: str, lineage, operator: str | None = None):
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState

    facets_ = {}
    if operator:
        from openlineage.client.facet_v2 import RunFacet

        facets_["airflow"] = RunFacet().with_additional_properties(task={"operator_class": operator})
    return RunEvent(
        eventType=RunState.COMPLETE, eventTime=datetime.now(timezone.utc).isoformat(),
        run=Run(runId=str(uuid.uuid4()), facets=facets_), job=Job(namespace="mlops", name=job),
        inputs=[InputDataset(namespace=d.namespace, name=d.name, facets=d.facets) for d in lineage.inputs],
        outputs=[OutputDataset(namespace=d.namespace, name=d.name, facets=d.facets) for d in lineage.outputs])


def pipeline_events(tmp_path):
    from airflow_mlops_provider.hooks.lineage import operator_lineage

    staging = tmp_path / "staging" / "shard-0.parquet"
    partition = tmp_path / "scores" / "date=2026-11-20.parquet"
    score = MlflowBatchScoreOperator(task_id="score", model_name="fraud-detector", model_version="3",
                                     input_path=str(tmp_path / "incoming.parquet"), output_path=str(staging))
    score._lineage_state = {"registry_uri": TRACKING, "version": "3", "run_id": "run1", "shadow_version": None}
    commit = operator_lineage([naming.storage_dataset(str(staging))], [naming.storage_dataset(str(partition))])
    drift = EvidentlyCheckDriftOperator(task_id="check_drift", model_name="fraud-detector", model_version="3",
                                        data_path=str(tmp_path / "incoming.parquet"), predictions_path=str(partition))
    drift._lineage_state = {"registry_uri": TRACKING, "report": str(tmp_path / "drift.html")}
    return [run_event("mlops_retrain.train", trained(), "MlflowTrainModelOperator"),
            run_event("mlops_retrain.register_challenger", registered(), "MlflowRegisterModelOperator"),
            run_event("mlops_batch_inference.score", score.get_openlineage_facets_on_complete(None),
                      "MlflowBatchScoreOperator"),
            run_event("mlops_batch_inference.commit", commit, "_PythonDecoratedOperator"),
            run_event("mlops_batch_inference.check_drift", drift.get_openlineage_facets_on_complete(None),
                      "EvidentlyCheckDriftOperator")], partition


@pytest.mark.parametrize("append", [True, False], ids=["one-file", "file-per-event"])
def test_checker_follows_the_chain_through_the_file_transport(tmp_path, append):
    from openlineage.client.transport.file import FileConfig, FileTransport

    events, partition = pipeline_events(tmp_path)
    log_file = tmp_path / "ol" / "events.jsonl"
    log_file.parent.mkdir()
    transport = FileTransport(FileConfig(log_file_path=str(log_file), append=append))
    for event in events:
        transport.emit(event)
    read = read_events(log_file)
    assert len(read) == len(events)
    chain = assert_chain(read, "fraud-detector")
    [training] = chain["training"]
    assert training["data_version"]["md5"] == DATA_VERSION["md5"]
    assert [r["version"]["name"] for r in chain["registrations"]] == ["models/fraud-detector/versions/3"]
    [scoring] = chain["scoring"]  # the drift check reads the version too, but scores nothing
    assert scoring["model_version"]["name"] == "models/fraud-detector/versions/3"
    assert [d["name"] for d in chain["scored_partitions"]] == [str(partition)]


def test_checker_fails_naming_what_is_missing(tmp_path):
    events, _ = pipeline_events(tmp_path)
    as_dicts = [json.loads(Serde.to_json(e)) for e in events]
    without_registration = [e for e in as_dicts if not e["job"]["name"].endswith("register_challenger")]
    with pytest.raises(AssertionError, match="no task registered a trained model"):
        assert_chain(without_registration, "fraud-detector")
    assert lineage_chain(as_dicts, "another-model")["registrations"] == []
    with pytest.raises(AssertionError, match="no deploy step"):
        assert_chain(as_dicts, "fraud-detector", deployment=True)
