"""The load test's runner, percentiles and limits (core.load), without a server: ``send`` is a function."""

from __future__ import annotations

import threading
import time

import pytest

from airflow_mlops_provider.core.load import (
    LOAD_LIMITS,
    error_kind,
    judge_load,
    load_policy,
    percentile,
    run_load,
)
from airflow_mlops_provider.exceptions import DeploymentError


def test_nearest_rank_percentiles():
    values = sorted(float(v) for v in range(1, 101))  # 1..100
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 99) == 99
    assert percentile(values, 100) == 100 and percentile([7.0], 99) == 7.0 and percentile([], 95) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == 4.0  # ceil(0.95 * 4) = 4th value, not an interpolation


def test_policy_derives_from_the_one_definition_and_names_bad_fields():
    assert load_policy() == {k: rule["default"] for k, rule in LOAD_LIMITS.items()}
    assert load_policy(load_concurrency="4", load_max_p99_ms="250.5")["load_concurrency"] == 4
    with pytest.raises(ValueError, match=r"load_concurrency must be in \[0, 64\], got 65"):
        load_policy(load_concurrency=65)
    with pytest.raises(ValueError, match=r"load_requests must be a whole number, got '2.5'"):
        load_policy(load_requests="2.5")
    with pytest.raises(ValueError, match=r"load_max_p95_ms must be in \(0, inf\], got 0"):
        load_policy(load_max_p95_ms=0)
    # A config that predates a field renders its template empty: the default applies.
    assert load_policy(load_concurrency="", load_min_rps=None)["load_concurrency"] == LOAD_LIMITS["load_concurrency"]["default"]
    with pytest.raises(ValueError, match="load_speed is not a load policy field"):
        load_policy(load_speed=3)


def test_runs_concurrently_up_to_the_request_bound_and_counts_errors_by_kind():
    in_flight, peak, calls = [0], [0], [0]
    lock = threading.Lock()

    def send() -> None:
        with lock:
            calls[0] += 1
            n = calls[0]
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            time.sleep(0.01)
            if n % 10 == 0:
                raise DeploymentError("x answered HTTP 503: busy", status=503)
            if n % 25 == 0:
                raise TimeoutError("timed out")
        finally:
            with lock:
                in_flight[0] -= 1

    out = run_load(send, concurrency=4, requests=100, duration_s=60)
    assert out["requests"] == 100 == calls[0] and out["stopped_by"] == "requests"
    assert out["errors_by_kind"] == {"http_503": 10, "timeout": 2} and out["errors"] == 12
    assert out["ok"] == 88 and out["error_rate"] == pytest.approx(0.12)
    assert peak[0] == 4  # four requests were in flight at once
    assert out["p50_ms"] >= 10 and out["p50_ms"] <= out["p95_ms"] <= out["p99_ms"] <= out["max_ms"]
    assert out["throughput_rps"] == pytest.approx(100 / out["elapsed_s"], rel=0.05)


def test_the_duration_bounds_the_test_before_the_request_count():
    out = run_load(lambda: time.sleep(0.02), concurrency=2, requests=100000, duration_s=0.3)
    assert out["stopped_by"] == "duration" and 5 <= out["requests"] < 100 and out["elapsed_s"] < 1.5


def test_judge_names_each_broken_limit_with_the_measured_figure():
    policy = load_policy(load_max_p95_ms=100, load_max_p99_ms=150, load_max_error_rate=0.05, load_min_rps=50)
    good = {"p95_ms": 90.0, "p99_ms": 140.0, "error_rate": 0.0, "throughput_rps": 60.0}
    assert judge_load(good, policy) == []
    bad = judge_load({"p95_ms": 120.0, "p99_ms": 400.0, "error_rate": 0.1, "throughput_rps": 12.5}, policy)
    assert [b["limit"] for b in bad] == ["load_max_error_rate", "load_max_p95_ms", "load_max_p99_ms", "load_min_rps"]
    assert bad[2] == {"limit": "load_max_p99_ms", "limit_value": 150.0, "measured": 400.0,
                      "message": "p99 latency 400 ms is above the load_max_p99_ms limit of 150 ms"}
    assert bad[3]["message"] == "throughput 12.5 requests/s is below the load_min_rps limit of 50.0 requests/s"
    assert bad[0]["message"] == "error rate 10.0% is above the load_max_error_rate limit of 5.0%"
    nothing = judge_load({"p95_ms": None, "p99_ms": None, "error_rate": 1.0, "throughput_rps": 3.0},
                         load_policy(load_max_error_rate=1))
    assert [b["limit"] for b in nothing] == ["load_max_p95_ms", "load_max_p99_ms"]
    assert "nothing (no request succeeded)" in nothing[0]["message"]
    assert judge_load({**good, "throughput_rps": 0.1}, load_policy()) == []  # load_min_rps 0: not judged


def test_error_kinds():
    assert error_kind(DeploymentError("x", status=500)) == "http_500"
    assert error_kind(DeploymentError("smoke test: http://h is not reachable: refused")) == "unreachable"
    assert error_kind(DeploymentError("smoke test: h returned 4 predictions for 5 rows")) == "bad_response"
    assert error_kind(TimeoutError()) == "timeout" and error_kind(KeyError("k")) == "KeyError"
