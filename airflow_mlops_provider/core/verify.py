"""Verification of a freshly deployed model: a smoke request, then a bake of repeated requests."""

from __future__ import annotations

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
