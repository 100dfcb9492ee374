"""The drift baseline: a compact per-feature reference profile of the training data.

Stored with the model version at training time so that the nightly drift check never reloads
the training set. Numeric features keep 1001 quantiles (enough to reproduce the Wasserstein
distance Evidently uses for large references), moments and null counts; categorical features
keep their category counts (for Jensen-Shannon / chi-square). A bounded random sample of rows is
stored beside the profile for small-sample tests and the HTML report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROFILE_VERSION = 1
# The files of a version's baseline folder (artifact path ``baseline/`` of its training run).
PROFILE_FILE = "profile.json"
SAMPLE_FILE = "sample.parquet"
PREDICTIONS_FILE = "predictions.json"  # the model's outputs on the training holdout
PREDICTIONS_SAMPLE_FILE = "predictions_sample.parquet"
N_QUANTILES = 2001
# The extreme values dominate the Wasserstein distance of heavy-tailed features: keep the lowest
# and highest TAIL_VALUES reference values exactly, the quantile grid covers the middle.
TAIL_VALUES = 1000
SAMPLE_ROWS = 5000
# Numeric features with at most this many distinct values also keep exact value counts.
MAX_NUMERIC_COUNTS = 20


# Evidently treats integer columns with at most this many distinct values as categorical.
INTEGER_CARDINALITY_LIMIT = 10


def is_categorical(series: Any) -> bool:
    """Evidently's column-type inference: floats numeric, low-cardinality integers categorical."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return True
    if pd.api.types.is_integer_dtype(series):
        return series.nunique() <= INTEGER_CARDINALITY_LIMIT
    return False


def category_keys(values: Any) -> Any:
    """String keys for category counts; numbers keyed by float value so that 3 and 3.0 match."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(float).map(repr)
    return values.astype(str)


def compute_profile(frame: Any, features: list[str], categorical: list[str] | None = None) -> dict[str, Any]:
    """Profile ``features`` of ``frame``; ``categorical`` overrides dtype-based detection."""
    import numpy as np

    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise KeyError(f"baseline features not in the data: {missing}")
    cats = set(categorical) if categorical is not None else {c for c in features if is_categorical(frame[c])}
    columns: dict[str, Any] = {}
    levels = np.linspace(0.0, 1.0, N_QUANTILES)
    for name in features:
        col = frame[name]
        nulls = int(col.isna().sum())
        values = col.dropna()
        entry: dict[str, Any] = {"nulls": nulls, "dtype": str(col.dtype)}
        if name in cats:
            counts = category_keys(values).value_counts()
            entry.update(kind="categorical", count=int(len(values)),
                         counts={str(k): int(v) for k, v in counts.items()})
        else:
            arr = values.to_numpy(dtype=float)
            arr = arr[np.isfinite(arr)]  # drift tests ignore +-inf like NaN
            uniques, counts = np.unique(arr, return_counts=True)
            if len(uniques) <= MAX_NUMERIC_COUNTS:
                entry["counts"] = {repr(float(u)): int(c) for u, c in zip(uniques, counts, strict=True)}
            entry.update(
                kind="numeric",
                count=int(len(arr)),
                mean=float(arr.mean()) if len(arr) else None,
                std=float(arr.std()) if len(arr) else 0.0,  # ddof=0, as the drift norm uses
                min=float(arr.min()) if len(arr) else None,
                max=float(arr.max()) if len(arr) else None,
                n_unique=int(len(uniques)),
                quantiles=np.quantile(arr, levels, method="inverted_cdf").tolist() if len(arr) else [],
                low_tail=np.sort(arr)[:TAIL_VALUES].tolist(),
                high_tail=np.sort(arr)[-TAIL_VALUES:].tolist() if len(arr) else [],
            )
        columns[name] = entry
    return {"version": PROFILE_VERSION, "rows": int(len(frame)), "features": features, "columns": columns}


def sample_rows(frame: Any, n: int = SAMPLE_ROWS, seed: int = 0) -> Any:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed)


@dataclass
class Baseline:
    """What a model version keeps for drift: feature profile and sample, and (when trained with a
    prediction baseline) the profile and sample of its outputs on the training holdout."""

    profile: dict[str, Any]
    sample: Any
    predictions: dict[str, Any] | None = None
    predictions_sample: Any = None
