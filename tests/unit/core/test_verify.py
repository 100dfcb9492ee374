"""The bake: first request is the smoke test, later failures count, p95 latency is checked."""

from __future__ import annotations

import pytest

from airflow_mlops_provider.core.verify import bake
from airflow_mlops_provider.exceptions import KServeError


def sequence(*outcomes):
    items = iter(outcomes)

    def request() -> float:
        item = next(items)
        if isinstance(item, Exception):
            raise item
        return item

    return request


def test_passes_within_limits():
    out = bake(sequence(10.0, 12.0, 11.0, 30.0), 4, max_error_rate=0.0, max_latency_ms=50,
               failure=KServeError, target="svc")
    assert out == {"requests": 4, "errors": 0, "error_rate": 0.0, "p95_latency_ms": 30.0}


def test_first_request_failing_is_the_smoke_test_failing():
    with pytest.raises(KServeError, match="down"):
        bake(sequence(KServeError("down"), 1.0), 2, max_error_rate=1.0, max_latency_ms=None,
             failure=KServeError, target="svc")


def test_error_rate_and_latency_limits_name_the_target():
    with pytest.raises(KServeError, match=r"1 of 4 requests to svc failed \(error rate 25.0% > 10.0%\)"):
        bake(sequence(1.0, KServeError("boom"), 1.0, 1.0), 4, max_error_rate=0.1, max_latency_ms=None,
             failure=KServeError, target="svc")
    out = bake(sequence(1.0, KServeError("boom"), 1.0, 1.0), 4, max_error_rate=0.25, max_latency_ms=None,
               failure=KServeError, target="svc")
    assert out["errors"] == 1
    with pytest.raises(KServeError, match="p95 latency 900 ms of svc is above the 500 ms limit"):
        bake(sequence(10.0, 900.0), 2, max_error_rate=0.0, max_latency_ms=500, failure=KServeError, target="svc")
