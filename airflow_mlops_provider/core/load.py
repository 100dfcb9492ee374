"""The load test of a deployment lane: concurrent requests against the candidate, judged by limits.

A *load policy* is part of every deploy target's config (the limits are defined once, in
:data:`LOAD_LIMITS`; the targets' schema, defaults and the operator's arguments derive from
it): how many requests run at once (``load_concurrency``, 0 turns the test off), how many at
most (``load_requests``) and for how long at most (``load_duration_s``), how many payload rows
each request carries (``load_rows``), and the limits: p95 and p99 latency, error rate, minimum
throughput. :func:`run_load` sends the requests, :func:`judge_load` names every limit the
measured figures break.

The runner is a thread pool in the task's own process: a request is a blocking call the target
supplies (``urllib`` for the local and KServe targets, ``boto3``'s ``invoke_endpoint`` for
SageMaker), so threads measure the same client path the smoke test and the bake use. Locust
needs gevent's monkey-patching of the whole process, which must not happen inside an Airflow
task (the task runner's supervisor sockets and the SDK's HTTP client share that process); see
docs/release.md.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Every limit of a load policy, defined once: JSON schema and default. A target's config carries
# them (deploy.base.LOAD_DEFAULTS / LOAD_SCHEMA), the verify operator takes them as arguments.
LOAD_LIMITS: dict[str, dict[str, Any]] = {
    "load_concurrency": {"type": "integer", "minimum": 0, "maximum": 64, "default": 2,
                         "description": "requests in flight at once; 0: no load test"},
    "load_requests": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 40,
                      "description": "the most requests the test sends"},
    "load_duration_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 900, "default": 30,
                        "description": "the longest the test sends requests (whichever bound comes first)"},
    "load_rows": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1,
                  "description": "holdout rows per request"},
    "load_max_p95_ms": {"type": "number", "exclusiveMinimum": 0, "default": 2000},
    "load_max_p99_ms": {"type": "number", "exclusiveMinimum": 0, "default": 5000},
    "load_max_error_rate": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.0},
    "load_min_rps": {"type": "number", "minimum": 0, "default": 0,
                     "description": "the least completed requests per second; 0: no throughput limit"},
}

# Where the load test's and the canary's rows come from: not a limit, a source. Empty: the first rows
# of the challenger's holdout; else a scored partition (Parquet, or CSV by its suffix), its last rows.
PAYLOAD_FIELDS: dict[str, dict[str, Any]] = {
    "payload_uri": {"type": "string", "default": "",
                    "description": "a scored partition whose last rows the load test and the canary send; "
                                   "empty: the challenger's holdout"},
}


def check_limits(rules: dict[str, dict[str, Any]], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` (possibly templated strings) cast to the JSON-schema types of ``rules`` and checked
    against their bounds; raises ``ValueError`` naming the field when one is out of range.

    A field not given, or rendered empty (a DAG config that predates the field: its template
    renders ``""``), takes its default."""
    out: dict[str, Any] = {}
    for name, rule in rules.items():
        value = given.get(name)
        if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
            value = rule.get("default")
        try:
            number: float = float(value)
            if rule["type"] == "integer":
                if not number.is_integer():
                    raise ValueError
                number = int(number)
        except (TypeError, ValueError):
            kind = "a whole number" if rule["type"] == "integer" else "a number"
            raise ValueError(f"{name} must be {kind}, got {value!r}") from None
        low = rule.get("minimum", rule.get("exclusiveMinimum"))
        high = rule.get("maximum")
        too_low = low is not None and (number <= low if "exclusiveMinimum" in rule else number < low)
        if too_low or (high is not None and number > high):
            opening = "(" if "exclusiveMinimum" in rule else "["
            raise ValueError(f"{name} must be in {opening}{low}, {high if high is not None else 'inf'}], "
                             f"got {value!r}")
        out[name] = number
    return out


def load_policy(**given: Any) -> dict[str, Any]:
    """A load policy from (possibly templated) values, checked against :data:`LOAD_LIMITS`."""
    unknown = sorted(set(given) - set(LOAD_LIMITS))
    if unknown:
        raise ValueError(f"{unknown[0]} is not a load policy field; known: {sorted(LOAD_LIMITS)}")
    return check_limits(LOAD_LIMITS, given)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-percentile (0 < q <= 100) of ascending ``sorted_values``; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def error_kind(err: BaseException) -> str:
    """How a failed request is counted: ``http_<status>``, ``timeout``, ``unreachable`` or the error's class."""
    context = getattr(err, "context", None) or {}
    status = context.get("status") or getattr(err, "code", None)
    if isinstance(status, int):
        return f"http_{status}"
    text = str(err).lower()
    if isinstance(err, TimeoutError) or "timed out" in text or "timeout" in text:
        return "timeout"
    if "not reachable" in text or "connection refused" in text or isinstance(err, ConnectionError):
        return "unreachable"
    if "predictions for" in text or "unexpected response" in text:
        return "bad_response"
    return type(err).__name__


def run_load(send: Callable[[], Any], *, concurrency: int, requests: int, duration_s: float,
             clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Send up to ``requests`` calls of ``send`` with ``concurrency`` in flight, for at most ``duration_s``.

    ``send`` makes one request and raises when it fails; its latency is measured here. No request
    starts after the deadline; those in flight finish (bounded by their own timeout). Returns
    ``{"requests", "ok", "errors", "errors_by_kind", "error_rate", "elapsed_s", "throughput_rps",
    "p50_ms", "p95_ms", "p99_ms", "max_ms", "concurrency", "stopped_by"}`` (``stopped_by``:
    ``requests`` or ``duration``).
    """
    concurrency, requests = max(int(concurrency), 1), max(int(requests), 1)
    lock = threading.Lock()
    issued = [0]
    latencies: list[float] = []
    kinds: Counter[str] = Counter()
    samples: dict[str, str] = {}
    started = clock()
    deadline = started + float(duration_s)

    def claim() -> bool:
        with lock:
            if issued[0] >= requests or clock() >= deadline:
                return False
            issued[0] += 1
            return True

    def worker() -> None:
        while claim():
            begun = clock()
            try:
                send()
            except Exception as err:  # noqa: BLE001 - every failed request is counted by its kind
                kind = error_kind(err)
                with lock:
                    kinds[kind] += 1
                    samples.setdefault(kind, str(err)[:300])
                continue
            elapsed_ms = (clock() - begun) * 1000
            with lock:
                latencies.append(elapsed_ms)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load") as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    elapsed = max(clock() - started, 1e-9)
    latencies.sort()
    errors = sum(kinds.values())
    total = len(latencies) + errors
    return {
        "requests": total, "ok": len(latencies), "errors": errors, "errors_by_kind": dict(kinds),
        "error_samples": samples, "error_rate": errors / total if total else 1.0, "elapsed_s": round(elapsed, 3),
        "throughput_rps": round(total / elapsed, 2), "p50_ms": _round(percentile(latencies, 50)),
        "p95_ms": _round(percentile(latencies, 95)), "p99_ms": _round(percentile(latencies, 99)),
        "max_ms": _round(latencies[-1] if latencies else None), "concurrency": concurrency,
        "stopped_by": "requests" if total >= requests else "duration",
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# (limit, measured field, how the message names it, unit, True: the measured figure must stay at or above)
_CHECKS = (
    ("load_max_error_rate", "error_rate", "error rate", "", False),
    ("load_max_p95_ms", "p95_ms", "p95 latency", " ms", False),
    ("load_max_p99_ms", "p99_ms", "p99 latency", " ms", False),
    ("load_min_rps", "throughput_rps", "throughput", " requests/s", True),
)


def judge_load(result: dict[str, Any], policy: dict[str, Any]) -> list[dict[str, Any]]:
    """Every limit of ``policy`` that ``result`` breaks: ``{"limit", "limit_value", "measured", "message"}``.

    A latency percentile without one successful request counts as broken (nothing was measured).
    """
    broken = []
    for limit, measured_field, what, unit, at_least in _CHECKS:
        bound = policy.get(limit)
        if bound is None or (at_least and not bound):
            continue
        measured = result.get(measured_field)
        if measured is None:
            bad = True
        else:
            bad = measured < bound if at_least else measured > bound
        if bad:
            shown = "nothing (no request succeeded)" if measured is None else _show(measured, unit)
            relation = "below" if at_least else "above"
            broken.append({"limit": limit, "limit_value": bound, "measured": measured,
                           "message": f"{what} {shown} is {relation} the {limit} limit of {_show(bound, unit)}"})
    return broken


def _show(value: float, unit: str) -> str:
    if not unit:
        return f"{value:.1%}"
    return f"{value:.1f}{unit}" if unit.strip() == "requests/s" else f"{value:.0f}{unit}"
