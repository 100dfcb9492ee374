"""The input contract of a model version: a GE suite derived from its signature and baseline.

Critical: every signature column (and key column) is present, with a compatible type family;
integer columns have no nulls (MLflow's schema enforcement refuses them). Warnings: nulls in
columns that had none in training, categories never seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_INTEGER_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "Int64"]
_NUMERIC_TYPES = [*_INTEGER_TYPES, "float16", "float32", "float64", "Float64"]
# A ``long``/``integer`` column must hold whole numbers: a float column (fractions, or NaN-widened
# integers) is refused here, as MLflow's schema enforcement would refuse it (or a raw estimator
# would truncate it) at scoring time.
_TYPE_LISTS = {
    "long": _INTEGER_TYPES, "integer": _INTEGER_TYPES, "double": _NUMERIC_TYPES, "float": _NUMERIC_TYPES,
    "string": ["object", "str", "string", "category", "large_string"],
    "boolean": ["bool", "boolean", *_NUMERIC_TYPES],
}

_FLOAT_MAX = 1.7976931348623157e308
#: Meta key of a contract expectation whose min/max values are floats written as text (see below).
FLOAT_BOUNDS_META = "mlops_float_bounds"
# Values a column of the signature's type can hold: ±inf is not a measurement, and an unsigned
# 64-bit value above 2**63-1 does not fit the model's signed ``long``.
_BOUNDS = {
    "double": (-_FLOAT_MAX, _FLOAT_MAX, "column {column!r} must hold finite numbers (found +inf or -inf)"),
    "float": (-_FLOAT_MAX, _FLOAT_MAX, "column {column!r} must hold finite numbers (found +inf or -inf)"),
    "long": (-(2**63), 2**63 - 1, "column {column!r} must fit the model's signed 64-bit 'long' "
             "(found a value outside -2**63..2**63-1, or ±inf)"),
    "integer": (-(2**31), 2**31 - 1, "column {column!r} must fit the model's signed 32-bit 'integer' "
                "(found a value outside -2**31..2**31-1, or ±inf)"),
}


def signature_inputs(schema: Any) -> list[tuple[str, str]]:
    """(column, type name) pairs of an MLflow input schema: ``long``, ``double``, ``string`` ..."""
    return [(c.name, getattr(c.type, "name", str(c.type))) for c in schema.inputs]


def contract_suite(name: str, inputs: Sequence[tuple[str, str]], profile: dict[str, Any] | None,
                   key_columns: Sequence[str] = ()) -> dict[str, Any]:
    """``inputs`` are (column, MLflow type) pairs from the model signature."""
    columns = [c for c, _ in inputs]
    expectations: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": list(dict.fromkeys([*key_columns, *columns])), "exact_match": False},
         "severity": "critical"},
    ]
    expectations += [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": k},
                      "severity": "critical"} for k in key_columns]
    for column, mlflow_type in inputs:
        types = _TYPE_LISTS.get(mlflow_type)
        if types:
            expectation = {"type": "expect_column_values_to_be_in_type_list",
                           "kwargs": {"column": column, "type_list": types}, "severity": "critical"}
            if types is _INTEGER_TYPES:
                expectation["description"] = (f"column {column!r} must hold whole numbers in an integer type "
                                              f"(the model's signature says {mlflow_type!r})")
            expectations.append(expectation)
        base = (profile or {}).get("columns", {}).get(column, {})
        bounds = _BOUNDS.get(mlflow_type)
        if bounds:
            low, high = bounds[0], bounds[1]
            if isinstance(low, float):
                # The contract travels as XCom; a metadata DB on PostgreSQL stores XCom as JSONB,
                # whose numeric type gives 1.79e308 back as a 309-digit integer that the Task SDK
                # cannot serialise. Floats travel as text and load_suite turns them back.
                low, high = repr(low), repr(high)
            expectations.append({"type": "expect_column_values_to_be_between",
                                 "kwargs": {"column": column, "min_value": low, "max_value": high},
                                 "meta": {FLOAT_BOUNDS_META: True} if isinstance(bounds[0], float) else None,
                                 "severity": "critical", "description": bounds[2].format(column=column)})
        if mlflow_type in ("long", "integer"):
            expectations.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column},
                                 "severity": "critical"})
        elif base.get("nulls") == 0:
            expectations.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column},
                                 "severity": "warning"})
        if base.get("kind") == "categorical" and mlflow_type == "string" and base.get("counts"):
            expectations.append({"type": "expect_column_values_to_be_in_set",
                                 "kwargs": {"column": column, "value_set": sorted(base["counts"])},
                                 "severity": "warning"})
    return {"name": name, "expectations": expectations}
