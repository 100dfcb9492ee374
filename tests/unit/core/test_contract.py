"""The input contract survives the metadata DB it travels through as XCom."""

from __future__ import annotations

import json
import re

import pytest

from airflow_mlops_provider.core.contract import contract_suite


def _like_postgres_jsonb(value):
    """What a JSONB round trip does to numbers: numeric keeps no exponent, so 1.79e308 comes back
    as a 309-digit integer (which the Task SDK then cannot serialise: > 2**64 - 1)."""
    text = json.dumps(value)
    text = re.sub(r"-?\d+(\.\d+)?e\+?(\d+)", lambda m: str(int(float(m.group(0)))), text)
    return json.loads(text)


def test_float_bounds_travel_as_text_and_come_back_as_floats():
    suite = contract_suite("contract", [("amount", "double"), ("count", "long")], None)
    travelled = _like_postgres_jsonb(suite)

    def too_big(v):
        return isinstance(v, int) and not -(2**63) <= v <= 2**64 - 1

    assert not [v for e in travelled["expectations"] for v in e["kwargs"].values() if too_big(v)]
    pytest.importorskip("great_expectations")
    from airflow_mlops_provider.core.validation import load_suite

    loaded = load_suite(travelled)
    bounds = {e.column: (e.min_value, e.max_value) for e in loaded.expectations
              if type(e).__name__ == "ExpectColumnValuesToBeBetween"}
    assert bounds["amount"] == (-1.7976931348623157e308, 1.7976931348623157e308)
    assert bounds["count"] == pytest.approx((-(2**63), 2**63 - 1))
