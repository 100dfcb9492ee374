"""Captured online traffic read as scored rows: SageMaker Data Capture and KServe CloudEvents."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timezone

import numpy as np
import pytest

from airflow_mlops_provider.core.capture import (
    CaptureCounts,
    CaptureError,
    calls_frame,
    cloudevent_calls,
    sagemaker_calls,
    sagemaker_day_of,
    version_of_path,
)

FEATURES = ["amount", "age"]


def sm_record(event_id, when, input_data, output_data, *, in_type="text/csv", in_enc="CSV",
              out_type="application/json", out_enc="JSON", inference_id=None):
    meta = {"eventId": event_id, "inferenceTime": when}
    if inference_id:
        meta["inferenceId"] = inference_id
    return json.dumps({"captureData": {
        "endpointInput": {"observedContentType": in_type, "mode": "INPUT", "data": input_data, "encoding": in_enc},
        "endpointOutput": {"observedContentType": out_type, "mode": "OUTPUT", "data": output_data,
                           "encoding": out_enc}},
        "eventMetadata": meta, "eventVersion": "0"})


def event(kind, event_id, when, data, **ext):
    return json.dumps({"specversion": "1.0", "id": event_id, "source": "http://fraud.default/",
                       "type": f"org.kubeflow.serving.inference.{kind}", "time": when,
                       "datacontenttype": "application/json", "data": data, **ext})


def test_sagemaker_csv_json_and_base64_records_become_rows_with_request_ids():
    lines = [
        sm_record("e1", "2026-11-21T10:00:00Z", "1.5,2.0", json.dumps({"predictions": [[0.2, 0.8]]}),
                  inference_id="tx-1"),
        sm_record("e2", "2026-11-21T10:00:01Z", json.dumps({"dataframe_split": {"columns": FEATURES,
                                                                                 "data": [[0.1, 3.0], [2.0, 1.0]]}}),
                  json.dumps({"predictions": [[0.9, 0.1], [0.3, 0.7]]}), in_type="application/json", in_enc="JSON"),
        sm_record("e3", "2026-11-21T10:00:02Z", base64.b64encode(b"0.5,1.0").decode(), "0.25",
                  in_enc="BASE64", out_type="text/csv", out_enc="CSV"),
    ]
    counts = CaptureCounts()
    calls = list(sagemaker_calls(lines, FEATURES, name="s3://cap/f.jsonl", version="3", counts=counts))
    frame = calls_frame(calls, task_type="binary", classes_of=lambda v: [0, 1], version_at=lambda at: None,
                        counts=counts)
    assert list(frame["request_id"]) == ["tx-1", "e2#0", "e2#1", "e3"]
    assert frame["amount"].tolist() == [1.5, 0.1, 2.0, 0.5] and frame["age"].tolist() == [2.0, 3.0, 1.0, 1.0]
    assert np.allclose(frame["score"], [0.8, 0.1, 0.7, 0.25])
    assert set(frame["model_version"]) == {"3"}
    assert counts.to_dict() == {"files": 0, "records": 3, "calls": 3, "rows": 4, "unanswered": 0,
                                "other_days": 0, "checks": 0, "versions": {"3": 4}}
    # The provider's own release checks (their inference id says so) are not traffic.
    check = sm_record("e9", "2026-11-21T10:00:03Z", "0.5,1.0", "0.3", out_type="text/csv", out_enc="CSV",
                      inference_id="mlops-check-0a1b")
    counts = CaptureCounts()
    assert [c.request_id for c in sagemaker_calls([lines[0], check], FEATURES, name="f", version="3",
                                                  counts=counts)] == ["tx-1"]
    assert counts.checks == 1 and counts.records == 2


def test_kserve_v1_and_v2_events_pair_by_id_and_take_the_version_from_the_event_or_the_history():
    v2_request = {"inputs": [{"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
                  {"name": "age", "shape": [2], "datatype": "FP64", "data": [0.0, 1.0]}]}
    v2_response = {"model_name": "fraud", "model_version": "4",
                   "outputs": [{"name": "predict", "shape": [2, 2], "datatype": "FP64", "data": [0.6, 0.4, 0.1, 0.9]}]}
    lines = [
        event("request", "a", "2026-11-21T09:00:00Z", {"instances": [{"amount": 3.0, "age": 2.0}]}),
        event("request", "b", "2026-11-21T09:00:05Z", v2_request),
        event("response", "a", "2026-11-21T09:00:00Z", {"predictions": [[0.7, 0.3]]}),
        event("response", "b", "2026-11-21T09:00:05Z", v2_response),
        event("request", "lost", "2026-11-21T09:00:09Z", {"instances": [[1.0, 1.0]]}),
        event("request", "c", "2026-11-22T00:00:01Z", {"instances": [[1.0, 1.0]]}, modelversion="4"),
        event("response", "c", "2026-11-22T00:00:01Z", {"predictions": [[0.5, 0.5]]}, modelversion="4"),
    ]
    counts = CaptureCounts()
    asked = []

    def version_at(at):
        asked.append(at)
        return "3"

    calls = list(cloudevent_calls(lines, FEATURES, name="sink/date=2026-11-21/x.jsonl", counts=counts))
    frame = calls_frame(calls, task_type="binary", classes_of=lambda v: [0, 1], version_at=version_at,
                        day=date(2026, 11, 21), counts=counts)
    assert counts.unanswered == 1 and counts.other_days == 1  # "lost" has no response; "c" is the next day
    assert asked == [datetime(2026, 11, 21, 9, tzinfo=timezone.utc)]  # only "a" needed the history
    rows = frame.set_index("request_id")
    assert rows.loc["a", "model_version"] == "3" and np.isclose(rows.loc["a", "score"], 0.3)
    assert rows.loc["b#0", "model_version"] == "4" and np.isclose(rows.loc["b#1", "score"], 0.9)
    assert rows.loc["b#1", "amount"] == 2.0 and counts.versions == {"3": 1, "4": 2}


@pytest.mark.parametrize(("line", "why"), [
    ("{not json", "not JSON"),
    (sm_record("e", "2026-11-21T10:00:00Z", "1.0", "{}"), "a CSV row has 1 values, the model's signature has 2"),
    (sm_record("e", "2026-11-21T10:00:00Z", "1.0,2.0", json.dumps({"predictions": [0.1, 0.2]})),
     "the response has 2 predictions for 1 request rows"),
    (sm_record("e", "yesterday", "1.0,2.0", "0.1", out_type="text/csv", out_enc="CSV"),
     "time 'yesterday' is not ISO-8601"),
    (sm_record("e", "2026-11-21T10:00:00Z", "1.0,2.0", "0.1", out_enc="GZIP"), "unknown encoding 'GZIP'"),
    (json.dumps({"hello": 1}), "not a SageMaker Data Capture record"),
    (sm_record("e", "2026-11-21T10:00:00Z", json.dumps({"instances": [[1.0, 2.0, 3.0]]}), "0.1",
               in_type="application/json", in_enc="JSON", out_type="text/csv", out_enc="CSV"),
     "the payload cannot be read: .*columns"),
    (sm_record("e", "2026-11-21T10:00:00Z", "1.0,2.0", json.dumps({"predictions": [["high"]]})),
     "the payload cannot be read: could not convert string to float"),
])
def test_a_bad_sagemaker_record_names_the_file_the_line_and_why(line, why):
    lines = [sm_record("ok", "2026-11-21T10:00:00Z", "1.0,2.0", "0.4", out_type="text/csv", out_enc="CSV"), line]
    with pytest.raises(CaptureError, match=rf"^s3://cap/2026/11/21/10/f\.jsonl:2: .*{why}"):
        list(sagemaker_calls(lines, FEATURES, name="s3://cap/2026/11/21/10/f.jsonl", version="1"))


def test_a_request_missing_a_signature_column_and_a_call_without_any_version_are_refused():
    lines = [event("request", "a", "2026-11-21T09:00:00Z", {"dataframe_records": [{"amount": 1.0}]}),
             event("response", "a", "2026-11-21T09:00:00Z", {"predictions": [0.5]})]
    with pytest.raises(CaptureError, match=r"x\.jsonl:1: the request lacks the model's input columns \['age'\]"):
        list(cloudevent_calls(lines, FEATURES, name="x.jsonl"))
    lines[0] = event("request", "a", "2026-11-21T09:00:00Z", {"dataframe_records": [{"amount": 1.0, "age": 2}]})
    calls = list(cloudevent_calls(lines, FEATURES, name="x.jsonl"))
    with pytest.raises(CaptureError, match="request 'a' at 2026-11-21T09:00:00\\+00:00: no model version"):
        calls_frame(calls, task_type="binary", classes_of=lambda v: [0, 1], version_at=lambda at: None)


def test_paths_give_the_day_and_the_version():
    assert sagemaker_day_of("v3/fraud-prod/AllTraffic/2026/11/21/09/a-b.jsonl") == date(2026, 11, 21)
    assert sagemaker_day_of("fraud-prod/AllTraffic/notes.jsonl") is None
    assert version_of_path("fraud/v12/fraud-prod/AllTraffic/2026/11/21/09/a.jsonl") == "12"
    assert version_of_path("fraud-prod/AllTraffic/2026/11/21/09/a.jsonl") is None
