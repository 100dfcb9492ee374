"""Captured online traffic as scored rows: SageMaker Data Capture files and KServe inference-logger
CloudEvents in, the rows of a day's partition out (the same columns a batch-scored partition has).

Two documented capture formats are read:

* **SageMaker Data Capture** (``format="sagemaker"``): JSON Lines, one record per invocation::

      {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                         "data": "1.0,2.0", "encoding": "CSV"},
                       "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                          "data": "{\\"predictions\\": [[0.9, 0.1]]}", "encoding": "JSON"}},
       "eventMetadata": {"eventId": "…", "inferenceId": "…", "inferenceTime": "2026-11-21T10:00:00Z"},
       "eventVersion": "0"}

  under ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/``. ``encoding`` is ``CSV``,
  ``JSON`` or ``BASE64`` (the bytes, then read by ``observedContentType``).
* **CloudEvents** (``format="cloudevents"``): JSON Lines of events in the CloudEvents 1.0 JSON
  format, as KServe's inference logger sends them (``type``
  ``org.kubeflow.serving.inference.request`` / ``…response``; a request and its response share
  ``id``) and as a sink that writes events in structured mode stores them. ``data`` holds the
  payload (``data_base64`` when it is not JSON). The extension attribute ``modelversion``, when
  present, names the version that answered.

Payloads are the MLflow scoring server's (``dataframe_split``, ``dataframe_records``,
``instances``, ``inputs``; CSV without a header in signature order) and KServe's V2 protocol
(``inputs`` / ``outputs`` tensors, one per column). Responses are ``{"predictions": …}``, V2
``outputs``, or CSV.

A request of several rows gives one row each; every row carries ``request_id`` (the inference id,
``#<i>`` appended when the request held more than one row), ``captured_at`` and
``model_version``, so late labels keyed by request id join to online predictions as labels keyed
by the id columns join to batch scores. A request without its response (the logger lost it, or the
model failed) is counted, not guessed.

Pure: json, base64, csv, numpy and pandas only (no Airflow, no MLflow).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from airflow_mlops_provider.exceptions import DataFileError

FORMATS = ("sagemaker", "cloudevents")
REQUEST_ID = "request_id"
CAPTURED_AT = "captured_at"
MODEL_VERSION = "model_version"
KSERVE_REQUEST = "org.kubeflow.serving.inference.request"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"
_VERSION_SEGMENT = re.compile(r"^v(\d+)$")
#: The inference id of the provider's own release checks against a SageMaker endpoint (smoke test,
#: bake, load test, quality canary): Data Capture records them, the online partition leaves them out.
CHECK_INFERENCE_PREFIX = "mlops-check-"


class CaptureError(DataFileError):
    """A capture file cannot be read as its format says: names the file, the line and why."""


@dataclass
class Call:
    """One answered request: its rows, the model's raw answer for them, when, and which version."""

    request_id: str
    at: datetime
    inputs: Any  # DataFrame, one row per scored row
    outputs: Any  # ndarray, one entry (or row) per input row
    version: str | None = None


@dataclass
class CaptureCounts:
    files: int = 0
    records: int = 0
    calls: int = 0
    rows: int = 0
    unanswered: int = 0
    other_days: int = 0
    checks: int = 0
    versions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "records": self.records, "calls": self.calls, "rows": self.rows,
                "unanswered": self.unanswered, "other_days": self.other_days, "checks": self.checks,
                "versions": dict(self.versions)}


def _fail(where: str, why: str) -> CaptureError:
    return CaptureError(f"{where}: {why}", path=where.rsplit(":", 1)[0])


def parse_time(value: Any, where: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise _fail(where, f"no time (got {value!r})")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(where, f"time {value!r} is not ISO-8601") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


# -- payloads ------------------------------------------------------------------------------------
def _csv_rows(text: str, features: Sequence[str], where: str) -> Any:
    import pandas as pd

    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if rows and [c.strip() for c in rows[0]] == list(features):
        rows = rows[1:]  # a header in signature order
    if any(len(r) != len(features) for r in rows):
        bad = next(r for r in rows if len(r) != len(features))
        raise _fail(where, f"a CSV row has {len(bad)} values, the model's signature has {len(features)} "
                           f"columns {list(features)}")
    frame = pd.DataFrame(rows, columns=list(features))
    for column in frame.columns:  # CSV is text: numbers back to numbers, the rest stays text
        try:
            frame[column] = pd.to_numeric(frame[column])
        except (ValueError, TypeError):
            pass
    return frame


def _v2_tensors(tensors: Any, where: str) -> dict[str, Any]:
    import numpy as np

    if not isinstance(tensors, list):
        raise _fail(where, "V2 'inputs'/'outputs' must be a list of tensors")
    out = {}
    for t in tensors:
        if not isinstance(t, dict) or "name" not in t or "data" not in t:
            raise _fail(where, f"a V2 tensor needs 'name' and 'data' (got keys {sorted(t) if isinstance(t, dict) else t!r})")
        data = np.asarray(t["data"], dtype=object if t.get("datatype") == "BYTES" else None)
        shape = t.get("shape")
        if shape and int(np.prod(shape)) == data.size:
            data = data.reshape(shape)
        out[t["name"]] = data
    return out


def request_frame(payload: Any, features: Sequence[str], where: str) -> Any:
    """The rows of one request body (parsed JSON) as a DataFrame with the signature's columns."""
    import pandas as pd

    if not isinstance(payload, dict):
        raise _fail(where, f"a request body must be a JSON object, got {type(payload).__name__}")
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        frame = pd.DataFrame(split.get("data") or [], columns=split.get("columns") or list(features))
    elif "dataframe_records" in payload:
        frame = pd.DataFrame(payload["dataframe_records"])
    elif "instances" in payload:
        rows = payload["instances"]
        frame = pd.DataFrame(rows) if rows and isinstance(rows[0], dict) else pd.DataFrame(rows, columns=list(features))
    elif "inputs" in payload and isinstance(payload["inputs"], list) and payload["inputs"] \
            and isinstance(payload["inputs"][0], dict) and "datatype" in payload["inputs"][0]:
        tensors = _v2_tensors(payload["inputs"], where)  # KServe V2: one tensor per column
        frame = pd.DataFrame({name: (v.reshape(-1) if v.ndim > 1 and v.shape[-1] == 1 else v)
                              for name, v in tensors.items()})
    elif "inputs" in payload:
        rows = payload["inputs"]
        frame = pd.DataFrame(rows) if isinstance(rows, dict) or (rows and isinstance(rows[0], dict)) \
            else pd.DataFrame(rows, columns=list(features))
    else:
        raise _fail(where, f"unknown request body (keys {sorted(payload)}); expected dataframe_split, "
                           "dataframe_records, instances or inputs")
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise _fail(where, f"the request lacks the model's input columns {missing}")
    return frame[list(features)]


def response_values(payload: Any, where: str) -> Any:
    """The model's raw answer in one response body: an array with one entry (or row) per input row."""
    import numpy as np
    import pandas as pd

    if isinstance(payload, dict) and "predictions" in payload:
        preds = payload["predictions"]
        if preds and isinstance(preds[0], dict):
            return pd.DataFrame(preds).to_numpy(dtype=float)
        return np.asarray(preds, dtype=float)
    if isinstance(payload, dict) and "outputs" in payload:
        tensors = _v2_tensors(payload["outputs"], where)
        if len(tensors) == 1:
            return np.asarray(next(iter(tensors.values())), dtype=float)
        return np.column_stack([np.asarray(v, dtype=float).reshape(len(v), -1) for v in tensors.values()])
    if isinstance(payload, list):
        return np.asarray(payload, dtype=float)
    raise _fail(where, f"unknown response body ({type(payload).__name__}"
                       f"{' with keys ' + str(sorted(payload)) if isinstance(payload, dict) else ''}); expected "
                       "predictions or outputs")


def _decode(part: Mapping[str, Any], where: str) -> tuple[str, str]:
    """``(content type, text)`` of a SageMaker capture part."""
    kind = str(part.get("observedContentType") or "").split(";")[0].strip().lower()
    encoding = str(part.get("encoding") or "").upper()
    data = part.get("data")
    if not isinstance(data, str):
        raise _fail(where, "captured 'data' is missing")
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data).decode("utf-8")
        except ValueError as err:
            raise _fail(where, f"BASE64 data does not decode: {err}") from None
    elif encoding not in ("CSV", "JSON"):
        raise _fail(where, f"unknown encoding {part.get('encoding')!r} (CSV, JSON or BASE64)")
    if not kind:
        kind = "text/csv" if encoding == "CSV" else "application/json"
    return kind, data


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        raise _fail(where, f"not JSON: {err}") from None


def _body_frame(kind: str, text: str, features: Sequence[str], where: str) -> Any:
    if "csv" in kind:
        return _csv_rows(text, features, where)
    return request_frame(_json(text, where), features, where)


def _body_values(kind: str, text: str, where: str) -> Any:
    import numpy as np

    if "csv" in kind:
        rows = [r for r in csv.reader(io.StringIO(text)) if r]
        flat = [v for r in rows for v in r] if all(len(r) == 1 for r in rows) and len(rows) > 1 else None
        values = np.asarray(flat if flat is not None else (rows[0] if len(rows) == 1 else rows), dtype=float)
        return values
    return response_values(_json(text, where), where)


def _matched(inputs: Any, outputs: Any, where: str) -> Any:
    """``outputs`` as one entry per request row (a lone scalar answer is one), checked against ``inputs``."""
    if outputs.ndim == 0:
        outputs = outputs.reshape(1)
    if len(outputs) != len(inputs):
        raise _fail(where, f"the response has {len(outputs)} predictions for {len(inputs)} request rows")
    return outputs


@contextlib.contextmanager
def _naming(where: str) -> Iterator[None]:
    """A payload pandas or numpy cannot read (ragged rows, text where numbers belong) fails naming
    the file and the line, like every other capture error."""
    try:
        yield
    except CaptureError:
        raise
    except (ValueError, TypeError) as err:
        raise _fail(where, f"the payload cannot be read: {err}") from None


def _records(lines: Iterable[str], name: str, counts: CaptureCounts) -> Iterable[tuple[str, Any]]:
    """``(where, parsed JSON)`` of each non-blank line; ``where`` is ``<name>:<line>`` for errors."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{n}"
        counts.records += 1
        yield where, _json(line, where)


# -- formats -------------------------------------------------------------------------------------
def sagemaker_calls(lines: Iterable[str], features: Sequence[str], *, name: str,
                    version: str | None = None, counts: CaptureCounts | None = None) -> Iterable[Call]:
    """The answered calls of one SageMaker Data Capture file (``name`` for errors)."""
    counts = counts if counts is not None else CaptureCounts()
    for where, record in _records(lines, name, counts):
        data = record.get("captureData") if isinstance(record, dict) else None
        meta = record.get("eventMetadata") if isinstance(record, dict) else None
        if not isinstance(data, dict) or not isinstance(meta, dict):
            raise _fail(where, "not a SageMaker Data Capture record (no captureData / eventMetadata)")
        if str(meta.get("inferenceId") or "").startswith(CHECK_INFERENCE_PREFIX):
            counts.checks += 1  # the provider's own release check, not traffic
            continue
        if "endpointOutput" not in data:
            counts.unanswered += 1
            continue
        if "endpointInput" not in data:
            raise _fail(where, "captureData has no endpointInput (capture both Input and Output)")
        with _naming(where):
            inputs = _body_frame(*_decode(data["endpointInput"], where), features, where)
            outputs = _matched(inputs, _body_values(*_decode(data["endpointOutput"], where), where), where)
        request_id = str(meta.get("inferenceId") or meta.get("eventId") or "")
        if not request_id:
            raise _fail(where, "eventMetadata has neither inferenceId nor eventId")
        yield Call(request_id, parse_time(meta.get("inferenceTime"), where), inputs, outputs, version)


def cloudevent_calls(lines: Iterable[str], features: Sequence[str], *, name: str,
                     counts: CaptureCounts | None = None) -> Iterable[Call]:
    """The answered calls of one file of CloudEvents (request and response events paired by ``id``)."""
    counts = counts if counts is not None else CaptureCounts()
    requests: dict[str, tuple[str, dict[str, Any]]] = {}
    responses: dict[str, tuple[str, dict[str, Any]]] = {}
    for where, event in _records(lines, name, counts):
        if not isinstance(event, dict) or "id" not in event or "type" not in event:
            raise _fail(where, "not a CloudEvent in JSON format (needs id and type)")
        kind = str(event["type"])
        if kind.endswith(".request"):
            requests[str(event["id"])] = (where, event)
        elif kind.endswith(".response"):
            responses[str(event["id"])] = (where, event)
        else:
            raise _fail(where, f"event type {kind!r} is neither an inference request nor a response")
    counts.unanswered += len(set(requests) - set(responses))
    for event_id, (where, request) in requests.items():
        if event_id not in responses:
            continue
        answer_where, response = responses[event_id]
        with _naming(where):
            if "csv" in str(request.get("datacontenttype") or ""):
                inputs = _csv_rows(_event_text(request, where), features, where)
            else:
                inputs = request_frame(_event_data(request, where), features, where)
        with _naming(answer_where):
            if "csv" in str(response.get("datacontenttype") or ""):
                answer = None
                outputs = _body_values("text/csv", _event_text(response, answer_where), answer_where)
            else:
                answer = _event_data(response, answer_where)
                outputs = response_values(answer, answer_where)
            outputs = _matched(inputs, outputs, answer_where)
        version = response.get("modelversion") or request.get("modelversion") or \
            (answer.get("model_version") if isinstance(answer, dict) else None)
        at = parse_time(request.get("time") or response.get("time"), where)
        yield Call(event_id, at, inputs, outputs, str(version) if version not in (None, "") else None)


def _event_text(event: Mapping[str, Any], where: str) -> str:
    if "data_base64" in event:
        try:
            return base64.b64decode(event["data_base64"]).decode("utf-8")
        except ValueError as err:
            raise _fail(where, f"data_base64 does not decode: {err}") from None
    data = event.get("data")
    if not isinstance(data, str):
        raise _fail(where, "a text/csv event needs its data as a string")
    return data


def _event_data(event: Mapping[str, Any], where: str) -> Any:
    if "data_base64" in event:
        try:
            return _json(base64.b64decode(event["data_base64"]).decode("utf-8"), where)
        except ValueError as err:
            raise _fail(where, f"data_base64 does not decode: {err}") from None
    data = event.get("data")
    return _json(data, where) if isinstance(data, str) else data


# -- files of a day ------------------------------------------------------------------------------
def sagemaker_day_of(relative: str) -> date | None:
    """The day in a Data Capture object's path below the destination (``…/yyyy/mm/dd/hh/<file>``)."""
    parts = relative.strip("/").split("/")
    for i in range(len(parts) - 4, -1, -1):
        y, m, d = parts[i:i + 3]
        if len(y) == 4 and y.isdigit() and m.isdigit() and d.isdigit():
            try:
                return date(int(y), int(m), int(d))
            except ValueError:
                return None
    return None


def version_of_path(relative: str) -> str | None:
    """``v<N>`` as a folder of the path (the provider's SageMaker capture prefix per version)."""
    for part in relative.strip("/").split("/"):
        hit = _VERSION_SEGMENT.match(part)
        if hit:
            return hit.group(1)
    return None


# -- rows ----------------------------------------------------------------------------------------
def calls_frame(calls: Sequence[Call], *, task_type: Any, classes_of: Callable[[str], Sequence[Any] | None],
                version_at: Callable[[datetime], str | None], day: date | None = None,
                counts: CaptureCounts | None = None) -> Any:
    """One DataFrame of the calls' rows: the inputs, the task type's output columns (as batch
    scoring writes them), ``model_version``, ``request_id`` and ``captured_at``.

    A call without a version of its own gets ``version_at(call.at)`` (what was live then); a call
    still without one is an error naming it. ``day``: calls at another UTC day are left out (and
    counted), the day's file may hold the first minutes of the next.
    """
    import numpy as np
    import pandas as pd

    from airflow_mlops_provider.core.task_types import get_task_type

    counts = counts if counts is not None else CaptureCounts()
    task = get_task_type(task_type)
    by_version: dict[tuple[str, tuple[int, ...]], list[Call]] = {}
    for call in calls:
        if day is not None and call.at.astimezone(timezone.utc).date() != day:
            counts.other_days += 1
            continue
        version = call.version or version_at(call.at)
        if not version:
            raise CaptureError(f"request {call.request_id!r} at {call.at.isoformat()}: no model version in the "
                               "capture, and no version was live at that time in the audit ledger",
                               request_id=call.request_id)
        # Calls answered in the same shape are converted together (a CSV answer is one value per
        # row, a JSON one may be a row of class probabilities).
        by_version.setdefault((str(version), np.asarray(call.outputs).shape[1:]), []).append(call)
    parts = []
    for (version, _shape), group in sorted(by_version.items()):
        inputs = pd.concat([c.inputs for c in group], ignore_index=True)
        raw = np.concatenate([np.asarray(c.outputs) for c in group], axis=0)
        outputs = task.output_columns(raw, classes_of(version))
        ids: list[str] = []
        times: list[str] = []
        for c in group:
            n = len(c.inputs)
            ids.extend([c.request_id] if n == 1 else [f"{c.request_id}#{i}" for i in range(n)])
            times.extend([c.at.astimezone(timezone.utc).isoformat()] * n)
        frame = inputs.assign(**{k: np.asarray(v) for k, v in outputs.items()})
        frame[MODEL_VERSION] = version
        frame[REQUEST_ID] = ids
        frame[CAPTURED_AT] = pd.to_datetime(times, utc=True)
        parts.append(frame)
        counts.calls += len(group)
        counts.rows += len(frame)
        counts.versions[version] = counts.versions.get(version, 0) + len(frame)
    if not parts:
        return None
    return pd.concat(parts, ignore_index=True).sort_values([CAPTURED_AT, REQUEST_ID], kind="stable",
                                                           ignore_index=True)


__all__ = ["CAPTURED_AT", "CHECK_INFERENCE_PREFIX", "FORMATS", "MODEL_VERSION", "REQUEST_ID", "Call", "CaptureCounts", "CaptureError",
           "calls_frame", "cloudevent_calls", "request_frame", "response_values", "sagemaker_calls",
           "sagemaker_day_of", "version_of_path"]
