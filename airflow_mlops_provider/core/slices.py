"""Slices of the holdout: declared subsets (a column's values, numeric bins) judged one by one.

A model config declares slices (``ModelConfig.slices``), each an object:

- ``{"column": "merchant_category"}`` — one slice per value of the column found in the holdout;
- ``{"column": "merchant_category", "values": ["gaming", "travel"]}`` — one slice per listed value;
- ``{"column": "amount", "bins": [0, 50, 500]}`` — one slice per half-open range ``[0, 50)``,
  ``[50, 500)``; use ``null`` at either end for an open range (``[500, ∞)``).

Each slice gets the task type's metrics for challenger and champion on the same rows (and, when
the bootstrap is on, intervals of the metrics the slice rules name). The promotion policy's
``slices`` section then judges every slice with at least ``min_rows`` rows: a floor per metric,
and a maximum regression against the champion on that slice; a smaller slice is reported, not
judged (see :class:`~airflow_mlops_provider.core.policy.PromotionPolicy`).

Pure: no Airflow; numpy and pandas are imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


class SliceError(ValueError):
    """A slice declaration is malformed, or names a column the holdout lacks."""


def parse_slices(raw: Any, where: str = "slices") -> list[dict[str, Any]]:
    """Check slice declarations; return them normalised (``column``, optional ``values`` / ``bins``, ``name``)."""
    if raw is None:
        return []
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise SliceError(f"{where} must be a list of slice declarations, got {type(raw).__name__}")
    out = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("column"), str) or not item["column"]:
            raise SliceError(f"{at} must be an object with a 'column' (a column name), got {item!r}")
        unknown = set(item) - {"column", "values", "bins", "name"}
        if unknown:
            raise SliceError(f"{at} ({item['column']!r}) has unknown fields {sorted(unknown)}; known: "
                             "['bins', 'column', 'name', 'values']")
        if "values" in item and "bins" in item:
            raise SliceError(f"{at} ({item['column']!r}) sets both 'values' and 'bins'; a slice is one or the other")
        spec: dict[str, Any] = {"column": item["column"]}
        if "name" in item:
            spec["name"] = str(item["name"])
        if "values" in item:
            values = item["values"]
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise SliceError(f"{at} ({item['column']!r}).values must be a non-empty list")
            spec["values"] = list(values)
        if "bins" in item:
            bins = item["bins"]
            if isinstance(bins, (str, bytes)) or not isinstance(bins, Sequence) or len(bins) < 2:
                raise SliceError(f"{at} ({item['column']!r}).bins must list at least two edges, got {bins!r}")
            edges = []
            for j, edge in enumerate(bins):
                if edge is None and j in (0, len(bins) - 1):
                    edges.append(None)
                elif isinstance(edge, (int, float)) and not isinstance(edge, bool) and not math.isnan(edge):
                    edges.append(float(edge))
                else:
                    raise SliceError(f"{at} ({item['column']!r}).bins[{j}] must be a number (null only at either "
                                     f"end), got {edge!r}")
            inner = [e for e in edges if e is not None]
            if any(b <= a for a, b in zip(inner, inner[1:], strict=False)):
                raise SliceError(f"{at} ({item['column']!r}).bins must increase, got {bins!r}")
            spec["bins"] = edges
        out.append(spec)
    return out


def _edge(value: float | None) -> str:
    if value is None:
        return "∞"
    return f"{value:g}"


def slice_masks(frame: Any, specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[{"slice": name, "column", "kind", "mask"}]`` for every declared slice on ``frame`` (a DataFrame)."""
    import numpy as np
    import pandas as pd

    out = []
    for spec in parse_slices(list(specs)):
        column = spec["column"]
        if column not in frame.columns:
            raise SliceError(f"slice column {column!r} is not in the holdout (columns: {sorted(frame.columns)[:30]}); "
                             "declare slices on columns the training data keeps")
        values = frame[column]
        label = spec.get("name", column)
        if "bins" in spec:
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                raise SliceError(f"slice column {column!r} has dtype {values.dtype}; bins need a numeric column")
            numbers = values.to_numpy(dtype=float)
            edges = spec["bins"]
            for low, high in zip(edges, edges[1:], strict=False):
                mask = np.ones(len(numbers), dtype=bool)
                if low is not None:
                    mask &= numbers >= low
                if high is not None:
                    mask &= numbers < high
                out.append({"slice": f"{label} in [{_edge(low) if low is not None else '-∞'}, {_edge(high)})",
                            "column": column, "kind": "bin", "low": low, "high": high, "mask": mask})
            continue
        wanted = spec.get("values")
        if wanted is None:
            present = pd.unique(values.dropna())
            wanted = sorted(present.tolist(), key=str)
        for value in wanted:
            mask = (values == value).to_numpy() | (values.astype(str) == str(value)).to_numpy()
            out.append({"slice": f"{label}={value}", "column": column, "kind": "value",
                        "value": value.item() if hasattr(value, "item") else value, "mask": mask})
    return out


def slice_report(task_type: Any, frame: Any, y_true: Any, raw_by_side: Mapping[str, Any],
                 classes: Any, specs: Sequence[Mapping[str, Any]], *,
                 bootstrap_spec: Any = None, interval_metrics: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The metrics of each side on each slice: ``[{"slice", "column", "rows", "metrics": {side: {...}},
    "intervals": {side: {metric: {value, low, high}}}, "gains": {...}}]``.

    ``frame`` holds the slice columns, row-aligned with ``y_true`` and each side's raw output.
    Intervals (``bootstrap_spec``) are computed for ``interval_metrics`` only — the ones rules judge.
    """
    import numpy as np

    from airflow_mlops_provider.core.bootstrap import side_classes
    from airflow_mlops_provider.core.task_types import get_task_type
    from airflow_mlops_provider.core.tasks import TaskTypeError

    task = get_task_type(task_type)
    y = np.asarray(y_true)
    sides = {k: np.asarray(getattr(v, "values", v)) for k, v in raw_by_side.items() if v is not None}
    report = []
    for entry in slice_masks(frame, specs):
        mask = entry.pop("mask")
        rows = int(mask.sum())
        item: dict[str, Any] = {**entry, "rows": rows, "metrics": {}}
        if rows:
            for side, raw in sides.items():
                try:
                    item["metrics"][side] = {k: float(v) for k, v in
                                             task.compute_metrics(y[mask], raw[mask], side_classes(classes, side)).items()}
                except (TaskTypeError, ValueError) as err:  # e.g. a slice with one class
                    item.setdefault("errors", {})[side] = str(err)
            if bootstrap_spec is not None and getattr(bootstrap_spec, "enabled", False) and interval_metrics \
                    and rows >= 2:
                from airflow_mlops_provider.core.bootstrap import bootstrap

                directions = {k: v for k, v in task.metrics.items() if k in set(interval_metrics)}
                boot = bootstrap(task, y[mask], {s: r[mask] for s, r in sides.items()}, classes, bootstrap_spec,
                                 directions=directions)
                item["intervals"] = {side: {k: v for k, v in metrics.items() if k in set(interval_metrics)}
                                     for side, metrics in boot["intervals"].items()}
                item["gains"] = boot["gains"]
        report.append(item)
    return report
