"""Verification of a freshly deployed model: a smoke request, then a bake of repeated requests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


def bake(request: Callable[[], float], requests: int, *, max_error_rate: float, max_latency_ms: float | None,
         failure: type[Exception], target: str, **error_context: Any) -> dict[str, Any]:
    """Call ``request`` (returns its latency in ms) ``requests`` times.

    The first call is the smoke test and must succeed; later ``failure`` exceptions count towards
    the error rate. Raises ``failure`` naming ``target`` when the error rate or the p95 latency is
    over its limit. Returns ``{"requests", "errors", "error_rate", "p95_latency_ms"}``.
    """
    requests = max(int(requests), 1)
    latencies, messages = [request()], []
    for _ in range(requests - 1):
        try:
            latencies.append(request())
        except failure as err:
            messages.append(str(err))
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    rate = len(messages) / requests
    result = {"requests": requests, "errors": len(messages), "error_rate": rate, "p95_latency_ms": p95}
    if rate > max_error_rate:
        raise failure(f"bake: {len(messages)} of {requests} requests to {target} failed (error rate "
                      f"{rate:.1%} > {max_error_rate:.1%}): {messages[:3]}", reason="smoke", **error_context)
    if max_latency_ms is not None and p95 > max_latency_ms:
        raise failure(f"bake: p95 latency {p95:.0f} ms of {target} is above the {max_latency_ms:.0f} ms limit",
                      reason="smoke", **error_context)
    return result


# Verification limits every deploy target shares, defined once: their JSON schema and default.
# ``VERIFY_DEFAULTS`` / ``VERIFY_SCHEMA`` (deploy/base.py) and :func:`bake_limits` derive from it.
VERIFY_LIMITS: dict[str, dict[str, Any]] = {
    "smoke_rows": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5},
    "bake_requests": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5},
    "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.0},
    "max_latency_ms": {"type": "number", "exclusiveMinimum": 0, "default": 2000},
}


def lane_check_limits() -> dict[str, dict[str, Any]]:
    """Every limit of a lane's checks, each defined once where its check lives: the verification
    (:data:`VERIFY_LIMITS`), the load test (:data:`~airflow_mlops_provider.core.load.LOAD_LIMITS`)
    and the quality canary (:data:`~airflow_mlops_provider.core.canary.CANARY_LIMITS`)."""
    from airflow_mlops_provider.core.canary import CANARY_LIMITS
    from airflow_mlops_provider.core.load import LOAD_LIMITS, PAYLOAD_FIELDS

    return {**VERIFY_LIMITS, **LOAD_LIMITS, **CANARY_LIMITS, **PAYLOAD_FIELDS}


# max_latency_ms may be None (no latency limit) when an operator is used on its own.
_NULLABLE = ("max_latency_ms",)


def bake_limits(*, smoke_rows: Any, bake_requests: Any, max_error_rate: Any, max_latency_ms: Any) -> dict[str, Any]:
    """The verification limits, cast from (possibly templated) values and checked against
    :data:`VERIFY_LIMITS` (the same check as the load test's limits).

    Raises ``ValueError`` naming the field when one is out of range.
    """
    from airflow_mlops_provider.core.load import check_limits

    given = {"smoke_rows": smoke_rows, "bake_requests": bake_requests, "max_error_rate": max_error_rate,
             "max_latency_ms": max_latency_ms}
    unset = {name: None for name in _NULLABLE if given[name] in (None, "", "None")}
    return {**check_limits({n: r for n, r in VERIFY_LIMITS.items() if n not in unset}, given), **unset}


def rollback_record(decision: dict[str, Any], *, target: str, states: dict[str, str | None],
                    lane_task_ids: list[str], rollback_task_id: str | None, rollback: Any, approval: Any,
                    dag_id: str, run_id: str, checks: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The ledger record of a deployment lane that failed; None when no lane step failed.

    ``checks``: the lane's load-test / quality-canary records; those that failed are named in
    ``broken_limits`` (``{"check", "limit", "limit_value", "measured", "message"}``)."""
    failed = sorted(t for t in lane_task_ids if states.get(t) in ("failed", "upstream_failed"))
    if not failed:
        return None
    return {"event": "rolled_back", "model": decision["model"], "target": target,
            "challenger_version": decision["challenger_version"], "champion_version": decision.get("champion_version"),
            "failed_tasks": failed, "approval": approval, "rollback_task": rollback_task_id, "rollback": rollback,
            "dag_id": dag_id, "run_id": run_id,
            "broken_limits": [{"check": c.get("event"), **b} for c in checks or [] if c.get("verdict") == "failed"
                              for b in c.get("broken_limits") or []]}


# -- MLflow's scoring-server format (SageMaker's MLflow image and ``mlflow models serve``) -----------
def _bad_request(field_name: str, value: Any, why: str) -> Exception:
    return ValueError(f"{field_name} {str(value)[:200]} is invalid: {why}")


def scoring_request(rows: list[list[Any]], columns: list[str] | None = None, *,
                    bad: Callable[[str, Any, str], Exception] = _bad_request) -> dict[str, Any]:
    """MLflow's scoring-server JSON (``dataframe_split``); raises ``bad(field, value, why)`` when malformed."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, (list, tuple)) for r in rows):
        raise bad("rows", rows, "expected a non-empty list of rows (lists of values)")
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise bad("rows", rows, "every row must have the same number of values")
    split: dict[str, Any] = {"data": [list(r) for r in rows]}
    if columns is not None:
        if len(columns) != width:
            raise bad("columns", columns, f"{len(columns)} names for rows of {width} values")
        split["columns"] = list(columns)
    return {"dataframe_split": split}


def predictions_from_body(body: Any) -> list[Any]:
    """Predictions from an MLflow scoring response (``{"predictions": [...]}`` or a bare list)."""
    if isinstance(body, dict) and isinstance(body.get("predictions"), list):
        return body["predictions"]
    if isinstance(body, list):
        return body
    raise ValueError(f"expected {{'predictions': [...]}} or a list, got {str(body)[:200]!r}")


def post_for_predictions(endpoint: str, body: Any, rows: int, *, parse: Callable[[Any], list[Any]],
                         failure: Callable[..., Exception], timeout: float = 30.0,
                         headers: dict[str, str] | None = None, what: str = "smoke test") -> tuple[list[Any], float]:
    """POST ``body`` as JSON to a served model; (predictions, latency in ms).

    ``parse`` turns the decoded answer into one prediction per row (ValueError otherwise). Any
    failure is ``failure(..., reason="smoke")`` naming the endpoint: an HTTP error status, no
    connection, an answer ``parse`` refuses, or not exactly ``rows`` predictions.
    """
    request = urllib.request.Request(endpoint, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            payload = resp.read()
    except urllib.error.HTTPError as err:
        detail = err.read()[:300].decode(errors="replace")
        raise failure(f"{what}: {endpoint} answered HTTP {err.code}: {detail}", url=endpoint, reason="smoke",
                      status=err.code) from err
    except OSError as err:
        raise failure(f"{what}: {endpoint} is not reachable: {err}", url=endpoint, reason="smoke") from err
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        predictions = parse(json.loads(payload))
    except ValueError as err:
        raise failure(f"{what}: {endpoint} returned an unexpected response: {err}", url=endpoint,
                      reason="smoke") from err
    if len(predictions) != rows:
        raise failure(f"{what}: {endpoint} returned {len(predictions)} predictions for {rows} rows",
                      url=endpoint, reason="smoke", rows=rows, predictions=len(predictions))
    return predictions, latency_ms
