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


def test_limits_are_cast_from_templated_values_and_checked_by_name():
    from airflow_mlops_provider.core.verify import bake_limits

    assert bake_limits(smoke_rows="5", bake_requests=3, max_error_rate="0.1", max_latency_ms="None") == {
        "smoke_rows": 5, "bake_requests": 3, "max_error_rate": 0.1, "max_latency_ms": None}
    with pytest.raises(ValueError, match="max_error_rate must be in"):
        bake_limits(smoke_rows=1, bake_requests=1, max_error_rate=2, max_latency_ms=10)
    with pytest.raises(ValueError, match="smoke_rows must be a whole number, got 'many'"):
        bake_limits(smoke_rows="many", bake_requests=1, max_error_rate=0, max_latency_ms=10)
    with pytest.raises(ValueError, match="max_latency_ms must be in"):
        bake_limits(smoke_rows=1, bake_requests=1, max_error_rate=0, max_latency_ms=0)


def test_rollback_record_lists_failed_lane_steps_only():
    from airflow_mlops_provider.core.verify import rollback_record

    decision = {"model": "m", "challenger_version": "3", "champion_version": "2"}
    common = {"target": "kserve", "lane_task_ids": ["kserve.deploy", "kserve.verify", "kserve.promote"],
              "rollback_task_id": None, "rollback": None, "approval": None, "dag_id": "d", "run_id": "r"}
    assert rollback_record(decision, states={"kserve.deploy": "success", "kserve.rollback": "failed"},
                           **common) is None
    out = rollback_record(decision, states={"kserve.verify": "failed", "kserve.promote": "upstream_failed"},
                          **common)
    assert out["failed_tasks"] == ["kserve.promote", "kserve.verify"] and out["event"] == "rolled_back"
    assert (out["challenger_version"], out["champion_version"], out["target"]) == ("3", "2", "kserve")


def test_scoring_request_names_the_field():
    from airflow_mlops_provider.core.verify import scoring_request

    assert scoring_request([[1, 2]], ["a", "b"]) == {"dataframe_split": {"data": [[1, 2]], "columns": ["a", "b"]}}
    with pytest.raises(ValueError, match="^columns"):
        scoring_request([[1, 2]], ["a"])
    with pytest.raises(ValueError, match="^rows"):
        scoring_request([], None)


def test_rollback_record_names_the_broken_limits_of_failed_checks():
    from airflow_mlops_provider.core.verify import rollback_record

    decision = {"model": "m", "challenger_version": "3", "champion_version": "1"}
    broken = {"limit": "load_min_rps", "limit_value": 100.0, "measured": 41.2,
              "message": "throughput 41.2 requests/s is below the load_min_rps limit of 100.0 requests/s"}
    checks = [{"event": "load_test", "verdict": "failed", "broken_limits": [broken]},
              {"event": "quality_canary", "verdict": "passed", "broken_limits": []}]
    out = rollback_record(decision, target="local", states={"local.verify": "failed"}, lane_task_ids=["local.verify"],
                          rollback_task_id="local.rollback", rollback={}, approval=None, dag_id="d", run_id="r",
                          checks=checks)
    assert out is not None and out["broken_limits"] == [{"check": "load_test", **broken}]
