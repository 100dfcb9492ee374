"""KServe InferenceService manifests, schema checks, status reading and a smoke test (no Airflow).

The kserve SDK cannot be installed beside Airflow 3.1+, so manifests are plain dicts built from
a typed :class:`InferenceServiceSpec` and checked with ``jsonschema`` against the CRD's
``openAPIV3Schema`` — the same schema a Kubernetes API server enforces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops_provider.core.verify import post_for_predictions
from airflow_mlops_provider.exceptions import KServeError

GROUP, VERSION, PLURAL, KIND = "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"
API_VERSION = f"{GROUP}/{VERSION}"
# Where the deploy operator remembers what it replaced, so a rollback can restore it.
PREVIOUS_STORAGE_URI_ANNOTATION = "mlops.airflow.apache.org/previous-storage-uri"
MODEL_ANNOTATION = "mlops.airflow.apache.org/model"

# KServe's webhook requires a DNS-1035 label for the service name (it becomes a hostname);
# namespaces are DNS-1123 labels.
_ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kubernetes resource.Quantity, as the CRD schema spells it.
_QUANTITY = re.compile(r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?"
                       r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
_PROTOCOLS = ("v1", "v2", "grpc-v2")
# modelStatus.transitionStatus values after which KServe will not become Ready by itself.
_TERMINAL_TRANSITIONS = {"BlockedByFailedLoad", "InvalidSpec"}


class InferenceServiceSpecError(KServeError, ValueError):
    """An InferenceService argument is invalid; ``context['field']`` names it."""


def _bad(field_name: str, value: Any, why: str) -> InferenceServiceSpecError:
    return InferenceServiceSpecError(f"InferenceService {field_name} {value!r} is invalid: {why}",
                                     field=field_name, value=repr(value), reason="invalid")


@dataclass
class InferenceServiceSpec:
    """The parts of a KServe ``v1beta1`` InferenceService this provider manages.

    ``resources`` is ``{"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {...}}``.
    ``canary_traffic_percent`` None means "all traffic to the latest ready revision".
    """

    name: str
    storage_uri: str
    namespace: str = "default"
    model_format: str = "mlflow"
    protocol_version: str = "v2"
    runtime: str | None = None
    service_account: str | None = None
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    min_replicas: int | None = 1
    max_replicas: int | None = None
    canary_traffic_percent: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    #: KServe's inference logger: every request and response as a CloudEvent to this sink (None: off).
    logger_url: str | None = None
    logger_mode: str = "all"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InferenceServiceSpecError` naming the first bad field."""
        if not isinstance(self.name, str) or not (len(self.name) <= 63 and _ISVC_NAME.match(self.name)):
            raise _bad("name", self.name, "must be at most 63 characters of lowercase letters, digits and "
                       "'-', start with a letter and end with a letter or digit")
        if not isinstance(self.namespace, str) or not (len(self.namespace) <= 63
                                                       and _DNS1123_LABEL.match(self.namespace)):
            raise _bad("namespace", self.namespace, "must be a DNS-1123 label (at most 63 characters of "
                       "lowercase letters, digits and '-')")
        if not isinstance(self.storage_uri, str) or "://" not in self.storage_uri:
            raise _bad("storage_uri", self.storage_uri, "must be a URI such as s3://bucket/model or "
                       "gs://bucket/model")
        if not self.model_format or not isinstance(self.model_format, str):
            raise _bad("model_format", self.model_format, "must be a non-empty string")
        if self.protocol_version not in _PROTOCOLS:
            raise _bad("protocol_version", self.protocol_version, f"must be one of {list(_PROTOCOLS)}")
        for key in ("runtime", "service_account"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, str) and _DNS1123_LABEL.match(value)):
                raise _bad(key, value, "must be a DNS-1123 name or None")
        if not isinstance(self.resources, dict):
            raise _bad("resources", self.resources, "must be {'requests': {...}, 'limits': {...}}")
        for kind, amounts in self.resources.items():
            if kind not in ("requests", "limits") or not isinstance(amounts, dict):
                raise _bad(f"resources.{kind}", amounts, "only 'requests' and 'limits' mappings are allowed")
            for resource, amount in amounts.items():
                where = f"resources.{kind}.{resource}"
                if isinstance(amount, bool) or not isinstance(amount, (str, int)):
                    raise _bad(where, amount, "must be a Kubernetes quantity such as '500m' or '1Gi'")
                if not _QUANTITY.match(str(amount)) or str(amount).startswith("-"):
                    raise _bad(where, amount, "is not a Kubernetes quantity (e.g. '500m', '2', '1Gi', '512Mi')")
        for key in ("min_replicas", "max_replicas"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise _bad(key, value, "must be a non-negative integer or None")
        if self.max_replicas is not None and self.max_replicas < 1:
            raise _bad("max_replicas", self.max_replicas, "must be at least 1")
        if (self.min_replicas is not None and self.max_replicas is not None
                and self.min_replicas > self.max_replicas):
            raise _bad("max_replicas", self.max_replicas, f"is below min_replicas ({self.min_replicas})")
        pct = self.canary_traffic_percent
        if pct is not None and (isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100):
            raise _bad("canary_traffic_percent", pct, "must be an integer from 0 to 100 or None")
        if self.logger_url is not None and not (isinstance(self.logger_url, str)
                                                and re.match(r"^https?://[^\s/]+", self.logger_url)):
            raise _bad("logger_url", self.logger_url, "must be the http(s) URL of a CloudEvents sink or None")
        if self.logger_mode not in ("all", "request", "response"):
            raise _bad("logger_mode", self.logger_mode, "must be 'all', 'request' or 'response'")
        for key in ("labels", "annotations"):
            mapping = getattr(self, key)
            if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in mapping.items()):
                raise _bad(key, mapping, "must map strings to strings")

    def to_manifest(self) -> dict[str, Any]:
        """The ``serving.kserve.io/v1beta1`` InferenceService as a plain dict."""
        model: dict[str, Any] = {
            "modelFormat": {"name": self.model_format},
            "protocolVersion": self.protocol_version,
            "storageUri": self.storage_uri,
        }
        if self.runtime:
            model["runtime"] = self.runtime
        resources = {kind: {k: str(v) for k, v in amounts.items()} for kind, amounts in self.resources.items()
                     if amounts}
        if resources:
            model["resources"] = resources
        predictor: dict[str, Any] = {"model": model}
        if self.min_replicas is not None:
            predictor["minReplicas"] = self.min_replicas
        if self.max_replicas is not None:
            predictor["maxReplicas"] = self.max_replicas
        if self.service_account:
            predictor["serviceAccountName"] = self.service_account
        if self.canary_traffic_percent is not None:
            predictor["canaryTrafficPercent"] = self.canary_traffic_percent
        if self.logger_url:
            predictor["logger"] = {"mode": self.logger_mode, "url": self.logger_url}
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": {"predictor": predictor}}


# -- schema ------------------------------------------------------------------------------------
def load_schema(path: str | Path) -> dict[str, Any]:
    """Read the InferenceService ``openAPIV3Schema`` (JSON) from ``path``."""
    return json.loads(Path(path).read_text())


def validate_manifest(manifest: dict[str, Any], schema: dict[str, Any]) -> None:
    """Check ``manifest`` against the CRD schema; the error lists every violation with its path."""
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        meta = manifest.get("metadata") or {}
        lines = [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors[:10]]
        raise InferenceServiceSpecError(
            f"InferenceService {meta.get('namespace')}/{meta.get('name')} does not match the CRD schema: "
            + "; ".join(lines),
            name=meta.get("name"), namespace=meta.get("namespace"), reason="invalid",
            field=".".join(str(p) for p in errors[0].absolute_path), errors=lines)


# -- status ------------------------------------------------------------------------------------
def _traffic(entries: list[dict[str, Any]]) -> dict[str, Any]:
    revisions = [{"revision": t.get("revisionName"), "percent": int(t.get("percent") or 0),
                  "latest": bool(t.get("latestRevision")), "tag": t.get("tag")} for t in entries]
    latest = sum(r["percent"] for r in revisions if r["latest"])
    return {"latest": latest, "previous": sum(r["percent"] for r in revisions) - latest, "revisions": revisions}


def parse_status(obj: dict[str, Any]) -> dict[str, Any]:
    """Summarise an InferenceService's ``status`` as KServe reports it (JSON-safe)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    conditions = [{"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason"),
                   "message": c.get("message")} for c in status.get("conditions") or []]
    by_type = {c["type"]: c for c in conditions}
    ready = (by_type.get("Ready") or {}).get("status") == "True"
    model_status = status.get("modelStatus") or {}
    failure = model_status.get("lastFailureInfo") or {}
    transition = model_status.get("transitionStatus")
    failed = transition in _TERMINAL_TRANSITIONS or (model_status.get("states") or {}).get(
        "activeModelState") == "FailedToLoad"
    failure_message = None
    if failed:
        failure_message = (failure.get("message") or failure.get("reason") or transition
                           or "model failed to load")
    spec_predictor = ((obj.get("spec") or {}).get("predictor") or {})
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "generation": meta.get("generation"),
        "observed_generation": status.get("observedGeneration"),
        "ready": ready,
        "url": status.get("url") or predictor.get("url"),
        "storage_uri": (spec_predictor.get("model") or {}).get("storageUri"),
        "canary_traffic_percent": spec_predictor.get("canaryTrafficPercent"),
        "traffic": _traffic(predictor.get("traffic") or []),
        "latest_ready_revision": predictor.get("latestReadyRevision"),
        "latest_created_revision": predictor.get("latestCreatedRevision"),
        "latest_rolledout_revision": predictor.get("latestRolledoutRevision"),
        "previous_rolledout_revision": predictor.get("previousRolledoutRevision"),
        "conditions": conditions,
        "failed": failed,
        "failure_reason": failure.get("reason") or (transition if failed else None),
        "failure_message": failure_message,
    }


def traffic_matches(status: dict[str, Any], expected_canary_percent: int | None) -> bool:
    """Whether the traffic split KServe reports is the one we asked for.

    ``None`` or 100 means the latest revision takes everything. A canary only applies when an
    earlier revision exists: on a first rollout KServe sends 100% to the only revision.
    """
    traffic = status["traffic"]
    if not traffic["revisions"]:
        # RawDeployment mode has no revisions and reports no split (nor supports canaries).
        return True
    has_previous = any(not r["latest"] for r in traffic["revisions"])
    if expected_canary_percent is None or expected_canary_percent >= 100 or not has_previous:
        return traffic["latest"] == 100
    return traffic["latest"] == expected_canary_percent


def is_serving(status: dict[str, Any], expected_canary_percent: int | None) -> bool:
    """Ready, on the revision we created, with the traffic split we asked for.

    ``expected_canary_percent == 0`` (a rollback) only asks that the previous revision takes all
    traffic: the latest revision may be failing, which is why one rolls back.

    A status older than the spec (``observedGeneration`` < ``generation``) describes the previous
    spec, so it never counts, however Ready it says it is.
    """
    generation, observed = status.get("generation"), status.get("observed_generation")
    if generation is not None and (observed is None or observed < generation):
        return False
    if expected_canary_percent == 0:
        # A rollback: the previous revision serves everything, whatever state the latest one is in.
        traffic = status["traffic"]
        return bool(traffic["revisions"]) and traffic["latest"] == 0 and traffic["previous"] == 100
    return (status["ready"] and status["latest_ready_revision"] == status["latest_created_revision"]
            and traffic_matches(status, expected_canary_percent))


# -- smoke test --------------------------------------------------------------------------------
def inference_request(rows: list[list[Any]], columns: list[str] | None, protocol: str,
                      model_name: str) -> tuple[str, dict[str, Any]]:
    """(path, body) of a prediction request for ``rows``: V2 (Open Inference Protocol) or V1."""
    if protocol == "v1":
        instances = [dict(zip(columns, row, strict=True)) for row in rows] if columns else rows
        return f"/v1/models/{model_name}:predict", {"instances": instances}
    width = len(rows[0]) if rows else 0
    if columns:
        # MLflow's V2 runtime (MLServer) takes one named input per column.
        inputs = [{"name": col, "shape": [len(rows)], "datatype": _datatype([r[i] for r in rows]),
                   "data": [r[i] for r in rows]} for i, col in enumerate(columns)]
    else:
        inputs = [{"name": "input-0", "shape": [len(rows), width],
                   "datatype": _datatype([v for r in rows for v in r]), "data": [v for r in rows for v in r]}]
    return f"/v2/models/{model_name}/infer", {"inputs": inputs}


def _datatype(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def predictions_from_response(body: Any, protocol: str) -> list[Any]:
    """The per-row predictions of a V1/V2 response; ValueError when the shape is not as specified."""
    if not isinstance(body, dict):
        raise ValueError(f"response is not a JSON object: {str(body)[:200]}")
    if protocol == "v1":
        preds = body.get("predictions")
        if not isinstance(preds, list):
            raise ValueError("V1 response has no 'predictions' list")
        return preds
    outputs = body.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise ValueError("V2 response has no 'outputs' list")
    first = outputs[0]
    if not isinstance(first, dict) or not isinstance(first.get("data"), list) or not first.get("shape"):
        raise ValueError("V2 output lacks 'data' or 'shape'")
    shape = first["shape"]
    rows = shape[0]
    per_row = 1
    for dim in shape[1:]:
        per_row *= dim
    if rows * per_row != len(first["data"]):
        raise ValueError(f"V2 output shape {shape} does not match {len(first['data'])} values")
    data = first["data"]
    return data if per_row == 1 else [data[i * per_row:(i + 1) * per_row] for i in range(rows)]


def smoke_test(url: str, model_name: str, rows: list[list[Any]], *, columns: list[str] | None = None,
               protocol: str = "v2", timeout: float = 30.0, max_latency_ms: float | None = None,
               headers: dict[str, str] | None = None, max_predictions: int | None = 10) -> dict[str, Any]:
    """POST ``rows`` to a served model; check one prediction per row and the latency.

    Returns ``{"url", "rows", "latency_ms", "predictions"}`` (the first ``max_predictions``; None: all);
    raises :class:`KServeError` (reason ``smoke``) naming the URL otherwise.
    """
    if not rows:
        raise InferenceServiceSpecError("smoke test rows are empty", field="rows", reason="invalid")
    path, body = inference_request(rows, columns, protocol, model_name)
    endpoint = url.rstrip("/") + path
    predictions, latency_ms = post_for_predictions(
        endpoint, body, len(rows), parse=lambda answer: predictions_from_response(answer, protocol),
        failure=KServeError, timeout=timeout, headers=headers)
    if max_latency_ms is not None and latency_ms > max_latency_ms:
        raise KServeError(f"smoke test: {endpoint} took {latency_ms:.0f} ms, above the {max_latency_ms:.0f} ms "
                          f"limit", url=endpoint, reason="smoke", latency_ms=round(latency_ms, 1))
    return {"url": endpoint, "rows": len(rows), "latency_ms": round(latency_ms, 1), "predictions": predictions[:max_predictions]}



def bake(url: str, model_name: str, rows: list[list[Any]], *, columns: list[str] | None = None,
         protocol: str = "v2", requests: int = 5, max_error_rate: float = 0.0,
         max_latency_ms: float | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """Smoke test then bake a served model (see :func:`airflow_mlops_provider.core.verify.bake`)."""
    from airflow_mlops_provider.core.verify import bake as bake_requests

    def request() -> float:
        return smoke_test(url, model_name, rows, columns=columns, protocol=protocol, timeout=timeout)["latency_ms"]

    return {"url": url, **bake_requests(request, requests, max_error_rate=max_error_rate,
                                        max_latency_ms=max_latency_ms, failure=KServeError, target=url, url=url)}
