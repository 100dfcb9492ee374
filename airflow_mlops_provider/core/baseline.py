"""The drift baseline: a compact per-feature reference profile of the training data.

Stored with the model version at training time so that the nightly drift check never reloads
the training set. Numeric features keep 1001 quantiles (enough to reproduce the Wasserstein
distance Evidently uses for large references), moments and null counts; categorical features
keep their category counts (for Jensen-Shannon / chi-square). A bounded random sample of rows is
stored beside the profile for small-sample tests and the HTML report.
"""

from __future__ import annotations

from typing import Any

PROFILE_VERSION = 1
N_QUANTILES = 1001
SAMPLE_ROWS = 5000


def is_categorical(series: Any) -> bool:
    import pandas as pd

    return not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


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
        entry: dict[str, Any] = {"count": int(len(values)), "nulls": nulls, "dtype": str(col.dtype)}
        if name in cats:
            counts = values.astype(str).value_counts()
            entry.update(kind="categorical", counts={str(k): int(v) for k, v in counts.items()})
        else:
            arr = values.to_numpy(dtype=float)
            entry.update(
                kind="numeric",
                mean=float(arr.mean()) if len(arr) else None,
                std=float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                min=float(arr.min()) if len(arr) else None,
                max=float(arr.max()) if len(arr) else None,
                n_unique=int(min(len(np.unique(arr)), 1000)) if len(arr) else 0,
                quantiles=np.quantile(arr, levels).tolist() if len(arr) else [],
            )
        columns[name] = entry
    return {"version": PROFILE_VERSION, "rows": int(len(frame)), "features": features, "columns": columns}


def sample_rows(frame: Any, n: int = SAMPLE_ROWS, seed: int = 0) -> Any:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed)
