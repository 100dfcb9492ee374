"""SageMaker deployment building blocks: validated specs, deployment configs, names, backoff.

No Airflow and no boto3 here: these are plain values checked before any AWS call, so a bad
argument fails the task before a single resource exists. Every validation error names the
field it is about (``context['field']``).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_mlops_provider.core import verify
from airflow_mlops_provider.core.verify import predictions_from_body as predictions_from_body
from airflow_mlops_provider.exceptions import SageMakerError

T = TypeVar("T")

# SageMaker resource names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
NAME_MAX = 63
_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ECR_IMAGE_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?"
    r"/(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::(?P<tag>[\w][\w.-]{0,127})|@sha256:[0-9a-f]{64})?$")
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_INSTANCE_RE = re.compile(r"^ml\.(?P<family>[a-z0-9]+)\.(?P<size>medium|large|xlarge|\d{1,2}xlarge)$")
# Real-time inference instance families (the `ml.<family>.<size>` middle part).
INSTANCE_FAMILIES = frozenset({
    "t2", "t3", "m4", "m5", "m5d", "m6g", "m6gd", "m6i", "m6id", "m7i", "c4", "c5", "c5d", "c6g", "c6gd",
    "c6gn", "c6i", "c6id", "c7g", "c7i", "r5", "r5d", "r6g", "r6gd", "r6i", "r6id", "r7i", "p2", "p3",
    "p4d", "p4de", "p5", "g4dn", "g5", "g6", "g6e", "inf1", "inf2", "trn1",
})


class SageMakerSpecError(SageMakerError, ValueError):
    """A SageMaker deployment argument is invalid; ``context['field']`` names it."""


def _bad(field_name: str, value: Any, why: str) -> SageMakerSpecError:
    return SageMakerSpecError(f"SageMaker {field_name} {value!r} is invalid: {why}",
                              field=field_name, value=repr(value), reason="invalid")


def _int(field_name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise _bad(field_name, value, "expected an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _bad(field_name, value, "expected an integer") from None
    if number != value and str(number) != str(value).strip():
        raise _bad(field_name, value, "expected an integer")
    if not low <= number <= high:
        raise _bad(field_name, value, f"must be between {low} and {high}")
    return number


# -- traffic shifting -------------------------------------------------------------------------
@dataclass(frozen=True)
class TrafficShift:
    """How blue/green moves traffic to the new fleet.

    Build with :meth:`canary`, :meth:`linear` or :meth:`all_at_once`; ``wait_seconds`` is the
    bake time between steps (SageMaker's ``WaitIntervalInSeconds``).
    """

    type: str
    percent: int | None = None
    wait_seconds: int = 0

    def __post_init__(self) -> None:
        kind = str(self.type).upper()
        if kind not in ("CANARY", "LINEAR", "ALL_AT_ONCE"):
            raise _bad("traffic_shift.type", self.type, "expected canary, linear or all_at_once")
        object.__setattr__(self, "type", kind)
        object.__setattr__(self, "wait_seconds", _int("traffic_shift.wait_seconds", self.wait_seconds, 0, 3600))
        if kind == "CANARY":
            # SageMaker: the canary is at most half of the new fleet's capacity.
            object.__setattr__(self, "percent", _int("traffic_shift.percent", self.percent, 1, 50))
        elif kind == "LINEAR":
            object.__setattr__(self, "percent", _int("traffic_shift.percent", self.percent, 10, 50))
        elif self.percent is not None:
            raise _bad("traffic_shift.percent", self.percent, "all_at_once takes no percent")

    @classmethod
    def canary(cls, percent: int, wait_seconds: int) -> TrafficShift:
        return cls("CANARY", percent, wait_seconds)

    @classmethod
    def linear(cls, step_percent: int, interval_seconds: int) -> TrafficShift:
        return cls("LINEAR", step_percent, interval_seconds)

    @classmethod
    def all_at_once(cls, wait_seconds: int = 0) -> TrafficShift:
        return cls("ALL_AT_ONCE", None, wait_seconds)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | TrafficShift) -> TrafficShift:
        if isinstance(data, TrafficShift):
            return data
        if not isinstance(data, dict):
            raise _bad("traffic_shift", data, "expected a dict like {'type': 'canary', 'percent': 10, "
                                              "'wait_seconds': 300}")
        unknown = set(data) - {"type", "percent", "wait_seconds"}
        if unknown:
            raise _bad(f"traffic_shift.{sorted(unknown)[0]}", data[sorted(unknown)[0]], "unknown field")
        return cls(data.get("type", ""), data.get("percent"), data.get("wait_seconds", 0))

    def to_api(self) -> dict[str, Any]:
        routing: dict[str, Any] = {"Type": self.type, "WaitIntervalInSeconds": self.wait_seconds}
        if self.type == "CANARY":
            routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": self.percent}
        elif self.type == "LINEAR":
            routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": self.percent}
        return routing


@dataclass(frozen=True)
class DeploymentConfig:
    """SageMaker's ``DeploymentConfig`` for ``UpdateEndpoint``: blue/green plus alarm rollback."""

    traffic_shift: TrafficShift
    termination_wait_seconds: int = 0
    max_execution_timeout: int | None = None
    auto_rollback_alarms: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.traffic_shift, TrafficShift):
            object.__setattr__(self, "traffic_shift", TrafficShift.from_dict(self.traffic_shift))
        object.__setattr__(self, "termination_wait_seconds",
                           _int("termination_wait_seconds", self.termination_wait_seconds, 0, 3600))
        if self.max_execution_timeout is not None:
            object.__setattr__(self, "max_execution_timeout",
                               _int("max_execution_timeout", self.max_execution_timeout, 600, 14400))
        alarms = self.auto_rollback_alarms
        if isinstance(alarms, str) or not isinstance(alarms, (list, tuple)):
            raise _bad("auto_rollback_alarms", alarms, "expected a list of CloudWatch alarm names")
        if len(alarms) > 10:
            raise _bad("auto_rollback_alarms", alarms, "at most 10 alarms")
        for i, name in enumerate(alarms):
            if not isinstance(name, str) or not 1 <= len(name) <= 255:
                raise _bad(f"auto_rollback_alarms[{i}]", name, "expected an alarm name of 1-255 characters")
        object.__setattr__(self, "auto_rollback_alarms", list(alarms))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | DeploymentConfig) -> DeploymentConfig:
        if isinstance(data, DeploymentConfig):
            return data
        if not isinstance(data, dict):
            raise _bad("deployment_config", data, "expected a dict")
        known = {"traffic_shift", "termination_wait_seconds", "max_execution_timeout", "auto_rollback_alarms"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise _bad(f"deployment_config.{unknown[0]}", data[unknown[0]], "unknown field")
        if "traffic_shift" not in data:
            raise _bad("traffic_shift", None, "required")
        return cls(traffic_shift=TrafficShift.from_dict(data["traffic_shift"]),
                   termination_wait_seconds=data.get("termination_wait_seconds", 0),
                   max_execution_timeout=data.get("max_execution_timeout"),
                   auto_rollback_alarms=data.get("auto_rollback_alarms") or [])

    def to_api(self) -> dict[str, Any]:
        policy: dict[str, Any] = {"TrafficRoutingConfiguration": self.traffic_shift.to_api(),
                                  "TerminationWaitInSeconds": self.termination_wait_seconds}
        if self.max_execution_timeout is not None:
            policy["MaximumExecutionTimeoutInSeconds"] = self.max_execution_timeout
        config: dict[str, Any] = {"BlueGreenUpdatePolicy": policy}
        if self.auto_rollback_alarms:
            config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in self.auto_rollback_alarms]}
        return config


# -- endpoint ---------------------------------------------------------------------------------
def check_instance_type(value: Any, field_name: str = "instance_type") -> str:
    match = _INSTANCE_RE.match(str(value or ""))
    if not match:
        raise _bad(field_name, value, "expected ml.<family>.<size>, e.g. ml.m5.large")
    if match["family"] not in INSTANCE_FAMILIES:
        raise _bad(field_name, value, f"unknown instance family {match['family']!r}; known: "
                                      f"{', '.join(sorted(INSTANCE_FAMILIES))}")
    return str(value)


def resource_name(*parts: str, field_name: str = "name") -> str:
    """A valid SageMaker name from ``parts`` joined by ``-``; too long → truncated plus a hash.

    Deterministic: the same parts always give the same name, which is what makes reruns find
    the resources an earlier try created.
    """
    raw = "-".join(str(p) for p in parts)
    name = re.sub(r"-{2,}", "-", re.sub(r"[^a-zA-Z0-9-]+", "-", raw)).strip("-")
    if not name:
        raise _bad(field_name, raw, "has no letters or digits")
    if len(name) > NAME_MAX:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        tail = f"-{digest}-{parts[-1]}" if parts else f"-{digest}"
        tail = re.sub(r"[^a-zA-Z0-9-]+", "-", tail)
        name = name[: NAME_MAX - len(tail)].rstrip("-") + tail
    if not _NAME_RE.match(name):  # pragma: no cover - guarded by the substitutions above
        raise _bad(field_name, raw, "cannot be made a valid SageMaker name")
    return name


def version_resource_name(endpoint_name: str, model_name: str, version: str | int) -> str:
    """``<endpoint>-<model>-v<version>``: the model and endpoint-config name for one version."""
    return resource_name(endpoint_name, model_name, f"v{version}", field_name="resource name")


@dataclass(frozen=True)
class EndpointSpec:
    """What to serve and on what; checked on construction."""

    endpoint_name: str
    image_uri: str
    instance_type: str
    initial_instance_count: int = 1
    execution_role_arn: str = ""
    variant_name: str = "AllTraffic"
    #: SageMaker Data Capture: requests and responses to ``<capture_uri>/v<version>/`` (empty: off).
    capture_uri: str = ""
    capture_percent: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.endpoint_name, str) or not _NAME_RE.match(self.endpoint_name):
            raise _bad("endpoint_name", self.endpoint_name,
                       "1-63 letters, digits or hyphens, starting and ending with a letter or digit")
        if not self.image_uri:
            raise _bad("image_uri", self.image_uri, "required: the ECR URI of the serving container "
                                                    "(e.g. one built with `mlflow sagemaker build-and-push-container`)")
        if not _ECR_IMAGE_RE.match(str(self.image_uri)):
            raise _bad("image_uri", self.image_uri,
                       "expected <account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@sha256:digest]")
        check_instance_type(self.instance_type)
        object.__setattr__(self, "initial_instance_count",
                           _int("initial_instance_count", self.initial_instance_count, 1, 100))
        if not _ROLE_ARN_RE.match(str(self.execution_role_arn or "")):
            raise _bad("execution_role_arn", self.execution_role_arn,
                       "expected arn:aws:iam::<account>:role/<name>")
        if not re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", str(self.variant_name)):
            raise _bad("variant_name", self.variant_name, "1-63 letters, digits or hyphens")
        if self.capture_uri and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", str(self.capture_uri)):
            raise _bad("data_capture_uri", self.capture_uri, "expected s3://<bucket>/<prefix> (empty: no capture)")
        object.__setattr__(self, "capture_percent", _int("data_capture_percent", self.capture_percent, 1, 100))

    def model_request(self, model_name: str, model_data_url: str, environment: dict[str, str] | None = None
                      ) -> dict[str, Any]:
        """``CreateModel`` arguments."""
        container: dict[str, Any] = {"Image": self.image_uri, "ModelDataUrl": model_data_url,
                                     "Mode": "SingleModel"}
        if environment:
            container["Environment"] = dict(environment)
        return {"ModelName": model_name, "PrimaryContainer": container,
                "ExecutionRoleArn": self.execution_role_arn}

    def capture_destination(self, version: str | int) -> str:
        """Where this version's captured traffic goes: one prefix per version, so every captured
        call names the version that answered it (SageMaker adds ``<endpoint>/<variant>/yyyy/mm/dd/hh/``)."""
        return f"{str(self.capture_uri).rstrip('/')}/v{version}"

    def endpoint_config_request(self, config_name: str, model_name: str, version: str | int | None = None
                                ) -> dict[str, Any]:
        """``CreateEndpointConfig`` arguments: one variant with all the traffic; with ``capture_uri``
        (and the ``version``), Data Capture of every request and response."""
        request: dict[str, Any] = {"EndpointConfigName": config_name, "ProductionVariants": [{
            "VariantName": self.variant_name, "ModelName": model_name, "InstanceType": self.instance_type,
            "InitialInstanceCount": self.initial_instance_count, "InitialVariantWeight": 1.0}]}
        if self.capture_uri and version is not None:
            request["DataCaptureConfig"] = {
                "EnableCapture": True, "InitialSamplingPercentage": self.capture_percent,
                "DestinationS3Uri": self.capture_destination(version),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                             "JsonContentTypes": ["application/json"]}}
        return request


def same_variants(live: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether an existing endpoint config serves what ``wanted`` (a create request) asks for."""
    keys = ("VariantName", "ModelName", "InstanceType", "InitialInstanceCount")

    def norm(config: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted(tuple(v.get(k) for k in keys) for v in config.get("ProductionVariants") or [])

    def capture(config: dict[str, Any]) -> tuple[Any, ...]:
        data = config.get("DataCaptureConfig") or {}
        if not data.get("EnableCapture"):
            return ()
        return data.get("DestinationS3Uri"), data.get("InitialSamplingPercentage")

    return norm(live) == norm(wanted) and capture(live) == capture(wanted)


def s3_model_key(prefix: str, endpoint_name: str, model_name: str, version: str | int) -> str:
    """Idempotent S3 key of a version's ``model.tar.gz``."""
    prefix = str(prefix or "").strip("/")
    return "/".join(p for p in (prefix, endpoint_name, model_name, f"v{version}", "model.tar.gz") if p)


def console_url(region: str, endpoint_name: str) -> str:
    return (f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}"
            f"#/endpoints/{endpoint_name}")


# -- smoke test payload -----------------------------------------------------------------------
def scoring_request(rows: list[list[Any]], columns: list[str] | None = None) -> dict[str, Any]:
    """MLflow's scoring-server JSON (``dataframe_split``); :class:`SageMakerSpecError` naming the field."""
    return verify.scoring_request(rows, columns, bad=_bad)


# Statuses SageMaker moves an endpoint through on its own; anything else is where it stays.
ENDPOINT_TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


# -- throttling -------------------------------------------------------------------------------
THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequests", "TooManyRequestsException",
                              "RequestLimitExceeded", "ThrottledException"})


def call_with_backoff(fn: Callable[[], T], *, call: str, is_throttled: Callable[[BaseException], bool],
                      attempts: int = 6, base_delay: float = 0.5, max_delay: float = 20.0,
                      sleep: Callable[[float], None] | None = None, context: dict[str, Any] | None = None) -> T:
    """Run ``fn``; on throttling retry with full-jitter exponential backoff, ``attempts`` in all.

    When every attempt was throttled, raise :class:`SageMakerError` naming ``call``.
    """
    sleep = sleep or time.sleep  # looked up per call so tests can patch it
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as err:
            if not is_throttled(err):
                raise
            if attempt == attempts:
                raise SageMakerError(
                    f"SageMaker {call} was throttled {attempts} times in a row; giving up "
                    f"(last error: {err})", call=call, attempts=attempts, reason="throttled",
                    **(context or {})) from err
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            sleep(random.uniform(delay / 2, delay))
    raise AssertionError("unreachable")  # pragma: no cover


def is_throttled(err: BaseException) -> bool:
    """A botocore ClientError whose code (or HTTP status 429) says "slow down"."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return False
    code = (response.get("Error") or {}).get("Code", "")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return code in THROTTLING_CODES or status == 429


def _error_code(err: BaseException) -> str:
    response = getattr(err, "response", None)
    return ((response or {}).get("Error") or {}).get("Code", "") if isinstance(response, dict) else ""


def is_not_found(err: BaseException) -> bool:
    # SageMaker answers Describe* on a missing resource with ValidationException "Could not find ...".
    return _error_code(err) in ("ValidationException", "ResourceNotFound") and "could not find" in str(err).lower()


def aws_call(call: str, fn: Callable[[], T], *, attempts: int = 6, base_delay: float = 0.5,
             sleep: Callable[[float], None] | None = None, **context: Any) -> T:
    """One AWS call with bounded exponential backoff on throttling; other errors pass through."""
    return call_with_backoff(fn, call=call, is_throttled=is_throttled, attempts=attempts,
                             base_delay=base_delay, sleep=sleep, context=context)


def smoke_test_endpoint(hook: Any, endpoint: str, rows: list[list[Any]], timeout: float = 30.0, *,
                        columns: list[str] | None = None, throttle_attempts: int = 6) -> dict[str, Any]:
    """POST ``rows`` to ``endpoint`` in MLflow's scoring format and check the answer.

    :param hook: ``AwsBaseHook(client_type="sagemaker-runtime")`` (any hook whose ``conn`` is a
        sagemaker-runtime client).
    :param timeout: the longest acceptable latency of the call, in seconds.
    Returns ``{"endpoint_name", "rows", "predictions", "latency_ms"}``; raises
    :class:`SageMakerError` (``reason="smoke"``) when the call fails, is too slow, or does not
    return exactly one prediction per row.
    """
    import uuid

    from airflow_mlops_provider.core.capture import CHECK_INFERENCE_PREFIX

    payload = json.dumps(scoring_request(rows, columns))
    client = hook.conn
    # The provider's own checks are not traffic: Data Capture records this id, the online partition leaves it out.
    inference_id = f"{CHECK_INFERENCE_PREFIX}{uuid.uuid4().hex}"
    started = time.monotonic()
    try:
        response = aws_call("InvokeEndpoint", lambda: client.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Accept="application/json", Body=payload,
            InferenceId=inference_id), attempts=throttle_attempts, endpoint=endpoint)
        raw = response["Body"].read()
    except SageMakerError:
        raise
    except Exception as err:
        raise SageMakerError(f"Smoke test of SageMaker endpoint {endpoint!r} failed: the call raised {err}",
                             endpoint=endpoint, reason="smoke") from err
    latency = time.monotonic() - started
    if latency > timeout:
        raise SageMakerError(f"Smoke test of SageMaker endpoint {endpoint!r} failed: answered in {latency:.2f}s, "
                             f"over the {timeout}s limit", endpoint=endpoint, reason="smoke",
                             latency_ms=round(latency * 1000, 1))
    try:
        predictions = predictions_from_body(json.loads(raw))
    except ValueError as err:
        raise SageMakerError(f"Smoke test of SageMaker endpoint {endpoint!r} failed: the body is not an MLflow "
                             f"scoring answer: {err}", endpoint=endpoint, reason="smoke") from err
    if len(predictions) != len(rows):
        raise SageMakerError(f"Smoke test of SageMaker endpoint {endpoint!r} failed: {len(rows)} rows sent, "
                             f"{len(predictions)} predictions returned", endpoint=endpoint, reason="smoke")
    return {"endpoint_name": endpoint, "rows": len(rows), "predictions": predictions,
            "latency_ms": round(latency * 1000, 1)}
