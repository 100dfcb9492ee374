"""Captured online traffic to a day's partition: SageMaker Data Capture files in S3 (moto server, a
real ``aws`` Airflow connection) and KServe logger CloudEvents in a sink's folder, read with the
signature of real registered versions in the embedded MLflow store."""

from __future__ import annotations

import json
from unittest.mock import MagicMock

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops_provider.core import ledger
from airflow_mlops_provider.core.capture import CaptureError
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from airflow_mlops_provider.core.tasks import TASK_TYPE_TAG
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.operators.capture import CapturedTrafficToPartitionOperator
from tests.fakes.mlflow_models import register_versions

pytestmark = pytest.mark.integration

MODEL = "fraud"


@pytest.fixture
def versions(mlops_home, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", f"{tmp_path}, s3://lake")
    out = register_versions(MODEL, tmp_path, count=2, champion=2)
    for v in out:
        MlflowHook().client.set_model_version_tag(MODEL, v["version"], TASK_TYPE_TAG, "binary")
    return [v["version"] for v in out]


def sm_line(event_id: str, when: str, rows: list[list[float]], probas: list[list[float]]) -> str:
    body = "\n".join(",".join(str(v) for v in r) for r in rows)
    return json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": body, "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": json.dumps({"predictions": probas}), "encoding": "JSON"}},
        "eventMetadata": {"eventId": event_id, "inferenceId": f"inf-{event_id}", "inferenceTime": when},
        "eventVersion": "0"})


def run(**kwargs) -> dict:
    op = CapturedTrafficToPartitionOperator(task_id="capture", model_name=MODEL, **kwargs)
    return op.execute({"ti": MagicMock()})


def test_sagemaker_data_capture_in_s3_becomes_the_days_partition(versions, s3_bucket, tmp_path):
    prefix = "capture/fraud/v2/fraud-prod/AllTraffic"
    s3_bucket.put_object(Bucket="lake", Key=f"{prefix}/2026/11/21/10/a.jsonl", Body="\n".join([
        sm_line("e1", "2026-11-21T10:00:00Z", [[1.0, 2.0]], [[0.3, 0.7]]),
        sm_line("e2", "2026-11-21T10:05:00Z", [[0.5, 1.0], [2.0, 0.0]], [[0.9, 0.1], [0.4, 0.6]])]).encode())
    s3_bucket.put_object(Bucket="lake", Key=f"{prefix}/2026/11/21/23/b.jsonl",
                         Body=sm_line("e3", "2026-11-21T23:59:00Z", [[3.0, 1.0]], [[0.2, 0.8]]).encode())
    s3_bucket.put_object(Bucket="lake", Key=f"{prefix}/2026/11/22/00/c.jsonl",  # the next day: not read
                         Body=sm_line("e4", "2026-11-22T00:01:00Z", [[3.0, 1.0]], [[0.2, 0.8]]).encode())

    out = "s3://lake/online/fraud/date=2026-11-21.parquet"
    kwargs = {"capture_format": "sagemaker", "capture_path": "s3://lake/capture/fraud", "output_path": out,
              "day": "2026-11-21", "conn_id": "aws_lake"}
    result = run(**kwargs)

    assert result["rows"] == 4 and result["calls"] == 3 and result["files"] == 2
    assert result["model_version"] == "2" and result["versions"] == {"2": 4}
    local = tmp_path / "online.parquet"
    local.write_bytes(s3_bucket.get_object(Bucket="lake", Key="online/fraud/date=2026-11-21.parquet")["Body"].read())
    frame = pd.read_parquet(local)
    assert list(frame.columns) == ["amount", "age", "score", "model_version", "request_id", "captured_at"]
    assert frame["request_id"].tolist() == ["inf-e1", "inf-e2#0", "inf-e2#1", "inf-e3"]
    assert frame["score"].tolist() == [0.7, 0.1, 0.6, 0.8] and frame["amount"].tolist() == [1.0, 0.5, 2.0, 3.0]
    # A rerun of the day writes the same partition again.
    assert run(**kwargs)["rows"] == 4
    # A record the format does not allow fails naming the object and the line; the partition stays.
    s3_bucket.put_object(Bucket="lake", Key=f"{prefix}/2026/11/21/11/bad.jsonl",
                         Body=(sm_line("e5", "2026-11-21T11:00:00Z", [[1.0]], [[0.5, 0.5]])).encode())
    with pytest.raises(CaptureError, match=r"s3://lake/capture/fraud/v2/.*/11/bad\.jsonl:1: a CSV row has 1 values"):
        run(**kwargs)
    assert s3_bucket.get_object(Bucket="lake", Key="online/fraud/date=2026-11-21.parquet")["ContentLength"] > 0


def test_kserve_logger_events_take_the_version_the_ledger_says_was_live(versions, tmp_path):
    ledger.append(home_settings().ledger_path, {"event": "promoted", "model": MODEL, "challenger_version": "1",
                                                "deploy_target": "kserve", "recorded_at": "2026-11-20T00:00:00+00:00"})
    ledger.append(home_settings().ledger_path, {"event": "promoted", "model": MODEL, "challenger_version": "2",
                                                "deploy_target": "kserve", "recorded_at": "2026-11-21T12:00:00+00:00"})
    sink = tmp_path / "sink" / "date=2026-11-21"
    sink.mkdir(parents=True)

    def ev(kind, i, when, data):
        return json.dumps({"specversion": "1.0", "id": i, "type": f"org.kubeflow.serving.inference.{kind}",
                           "source": "http://fraud-predictor.default", "time": when, "data": data})

    (sink / "events.jsonl").write_text("\n".join([
        ev("request", "r1", "2026-11-21T08:00:00Z", {"dataframe_split": {"columns": ["amount", "age"],
                                                                          "data": [[1.0, 0.0]]}}),
        ev("response", "r1", "2026-11-21T08:00:00Z", {"predictions": [[0.25, 0.75]]}),
        ev("request", "r2", "2026-11-21T13:00:00Z", {"instances": [{"amount": 2.0, "age": 1.0}]}),
        ev("response", "r2", "2026-11-21T13:00:00Z", {"predictions": [[0.6, 0.4]]}),
        ev("request", "r3", "2026-11-21T13:00:01Z", {"instances": [{"amount": 2.0, "age": 1.0}]})]))
    out = tmp_path / "online" / "date=2026-11-21.parquet"
    result = run(capture_format="cloudevents", capture_path=str(tmp_path / "sink"), output_path=str(out),
                 day="2026-11-21", deploy_target="kserve")
    assert result["versions"] == {"1": 1, "2": 1} and result["unanswered"] == 1
    frame = pd.read_parquet(out).set_index("request_id")
    assert frame.loc["r1", "model_version"] == "1" and frame.loc["r2", "model_version"] == "2"
    assert [p.name for p in out.parent.iterdir()] == ["date=2026-11-21.parquet"]  # no temp file left

    # Before the first promotion nothing names the version that answered: refused, not guessed.
    early = tmp_path / "sink" / "date=2026-11-19"
    early.mkdir()
    (early / "events.jsonl").write_text("\n".join([
        ev("request", "r0", "2026-11-19T08:00:00Z", {"instances": [{"amount": 1.0, "age": 2.0}]}),
        ev("response", "r0", "2026-11-19T08:00:00Z", {"predictions": [[0.5, 0.5]]})]))
    with pytest.raises(CaptureError, match="1 captured calls of fraud on 2026-11-19: none names its model version"):
        run(capture_format="cloudevents", capture_path=str(tmp_path / "sink"),
            output_path=str(tmp_path / "online" / "date=2026-11-19.parquet"), day="2026-11-19", deploy_target="kserve")
    assert not (tmp_path / "online" / "date=2026-11-19.parquet").exists()

    with pytest.raises(AirflowSkipException, match="no answered call of fraud captured on 2026-11-22"):
        run(capture_format="cloudevents", capture_path=str(tmp_path / "sink"),
            output_path=str(tmp_path / "online" / "date=2026-11-22.parquet"), day="2026-11-22")
