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

# 2: the float arrays of numeric features are base64 text (encode_floats); 1: JSON lists.
PROFILE_VERSION = 2
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


def encode_floats(values: Any) -> str:
    """A float array as text for the profile JSON: base64 of its little-endian float64 bytes.

    Exact, about 11 characters a value, and decoded without a Python float per value (a list of
    4000 floats per feature made the JSON of a 1000-feature profile take 17 s to write and 11 s
    to read).
    """
    import base64

    import numpy as np

    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def floats(value: Any) -> Any:
    """A profile's float array (``quantiles``, ``low_tail``, ``high_tail``) as numpy: the text of
    :func:`encode_floats` (profile version 2) or a plain list (version 1)."""
    import base64

    import numpy as np

    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f8")
    return np.asarray(value, dtype=float)


def _numeric_entry(col: Any) -> dict[str, Any]:
    """The profile of one numeric feature, from a single sort of its finite values."""
    import numpy as np

    raw = col.to_numpy(dtype=float, na_value=np.nan) if hasattr(col, "to_numpy") else np.asarray(col, float)
    finite = np.isfinite(raw)
    if finite.all():
        arr, nulls = raw, 0
    else:
        arr, nulls = raw[finite], int(np.isnan(raw).sum())  # drift tests ignore +-inf like NaN
    n = len(arr)
    entry: dict[str, Any] = {"nulls": nulls, "dtype": str(col.dtype), "kind": "numeric", "count": n}
    if not n:
        entry.update(mean=None, std=0.0, min=None, max=None, n_unique=0, quantiles=encode_floats([]),
                     low_tail=encode_floats([]), high_tail=encode_floats([]))
        return entry
    ordered = np.sort(arr)
    changes = ordered[1:] != ordered[:-1]
    n_unique = int(np.count_nonzero(changes)) + 1
    if n_unique <= MAX_NUMERIC_COUNTS:
        starts = np.concatenate(([0], np.flatnonzero(changes) + 1))
        counts = np.diff(np.append(starts, n))
        entry["counts"] = {repr(float(ordered[i])): int(c) for i, c in zip(starts, counts, strict=True)}
    # Quantiles with numpy's "inverted_cdf" method: the order statistic at ceil(q n) - 1.
    levels = np.linspace(0.0, 1.0, N_QUANTILES)
    grid = ordered[np.clip(np.ceil(levels * n).astype(np.int64) - 1, 0, n - 1)]
    entry.update(
        mean=float(arr.mean()),
        std=float(arr.std()),  # ddof=0, as the drift norm uses
        min=float(ordered[0]),
        max=float(ordered[-1]),
        n_unique=n_unique,
        quantiles=encode_floats(grid),
        low_tail=encode_floats(ordered[:TAIL_VALUES]),
        high_tail=encode_floats(ordered[-TAIL_VALUES:]),
    )
    return entry


def category_counts(values: Any) -> dict[str, int]:
    """Counts of a categorical column's non-null values under the baseline's keys
    (:func:`~airflow_mlops_provider.core.baseline.category_keys`), counted before the values are
    turned into keys, so a million rows cost one hash pass and a key per distinct value."""
    import numpy as np
    import pandas as pd

    if type(values).__module__.startswith("pyarrow"):
        import pyarrow as pa
        import pyarrow.compute as pc

        kind = values.type
        if pa.types.is_dictionary(kind):
            values, kind = values.cast(kind.value_type), kind.value_type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind) \
                or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            counted = pc.value_counts(values)
            uniques = counted.field("values").to_pylist()
            numbers = pa.types.is_integer(kind) or pa.types.is_floating(kind)
            out: dict[str, int] = {}
            for value, count in zip(uniques, counted.field("counts").to_pylist(), strict=True):
                if value is None or (numbers and not np.isfinite(value)):
                    continue
                key = repr(float(value)) if numbers else str(value)
                out[key] = out.get(key, 0) + int(count)
            return out
        values = values.to_pandas()
    counted = pd.Series(values).value_counts()  # without nulls
    if pd.api.types.is_float_dtype(counted.index):
        counted = counted[np.isfinite(counted.index.to_numpy())]  # +-inf are left out like NaN
    out = {}
    for key, count in zip(category_keys(counted.index.to_series()), counted.to_numpy(), strict=True):
        out[key] = out.get(key, 0) + int(count)
    return out


def _categorical_entry(col: Any) -> dict[str, Any]:
    counts = category_counts(col)
    return {"nulls": int(col.isna().sum()), "dtype": str(col.dtype), "kind": "categorical",
            "count": sum(counts.values()), "counts": counts}


def worker_threads(tasks: int) -> int:
    """Threads for work that numpy runs without the GIL: the CPUs this process may use (its
    affinity, not the machine's count), at most 4, never more than there are tasks."""
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4, tasks))


def compute_profile(frame: Any, features: list[str], categorical: list[str] | None = None) -> dict[str, Any]:
    """Profile ``features`` of ``frame``; ``categorical`` overrides dtype-based detection.

    Each numeric feature is sorted once (quantile grid, tails, distinct values and extremes come
    from that order); features are profiled on a few threads, since the sorts release the GIL.
    """
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise KeyError(f"baseline features not in the data: {missing}")
    cats = set(categorical) if categorical is not None else {c for c in features if is_categorical(frame[c])}

    def entry(name: str) -> dict[str, Any]:
        return _categorical_entry(frame[name]) if name in cats else _numeric_entry(frame[name])

    threads = worker_threads(len(features))
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            entries = list(pool.map(entry, features))
    else:
        entries = [entry(name) for name in features]
    return {"version": PROFILE_VERSION, "rows": int(len(frame)), "features": list(features),
            "columns": dict(zip(features, entries, strict=True))}


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
