"""Per-feature drift against a stored baseline profile, with Evidently's default tests.

The choice of test and its threshold follow Evidently's defaults (``DataDriftPreset``):

* reference of at most 1000 rows (the stored sample then holds every row): numeric features
  with more than 5 distinct values use the two-sample Kolmogorov-Smirnov test (drift when
  p <= 0.05); other numeric features and categorical ones use chi-square (more than 2 distinct
  values) or the two-proportion Z test (drift when p < 0.05);
* larger references: numeric features with more than 5 distinct values use the Wasserstein
  distance normed by the reference standard deviation (drift when >= 0.1); the others use the
  Jensen-Shannon distance of value frequencies (drift when >= 0.1).

Large references are never reloaded: the Wasserstein distance is integrated from the current
data's exact quantile function against the reference's stored tails and quantile grid, and
Jensen-Shannon uses the stored value counts. NaN and infinities are ignored, as Evidently does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SMALL_REFERENCE = 1000
PVALUE_THRESHOLD = 0.05
DISTANCE_THRESHOLD = 0.1
DEFAULT_MIN_ROWS = 100


@dataclass
class ColumnDrift:
    column: str
    kind: str
    method: str
    statistic: float | None
    threshold: float
    drifted: bool
    current_rows: int
    note: str | None = None


@dataclass
class DriftPolicy:
    """When a partition counts as drifted: a share of drifted features, any key feature, or
    (with ``prediction_drift``) the model's outputs drifting from their training-holdout baseline."""

    drift_share: float = 0.5
    key_features: tuple[str, ...] = ()
    prediction_drift: bool = False
    #: Below this many rows the tests say nothing reliable (one row of training data "drifts"
    #: on every feature): the verdicts are reported, the policy does not fire.
    min_rows: int = DEFAULT_MIN_ROWS

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DriftPolicy:
        data = dict(data or {})
        unknown = set(data) - {"drift_share", "key_features", "prediction_drift", "min_rows"}
        if unknown:
            raise ValueError(f"drift policy has unknown fields {sorted(unknown)}")
        share = float(data.get("drift_share", 0.5))
        if not 0 < share <= 1:
            raise ValueError(f"drift policy: drift_share must be in (0, 1], got {share}")
        min_rows = data.get("min_rows", DEFAULT_MIN_ROWS)
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
            raise ValueError(f"drift policy: min_rows must be an integer >= 1, got {min_rows!r}")
        return cls(drift_share=share, key_features=tuple(data.get("key_features", ())),
                   prediction_drift=bool(data.get("prediction_drift", False)), min_rows=min_rows)


@dataclass
class DriftResult:
    columns: list[ColumnDrift]
    drift_share: float
    n_drifted: int
    drifted: bool
    reasons: list[str] = field(default_factory=list)
    prediction: ColumnDrift | None = None
    rows: int | None = None
    #: Set when the partition had fewer rows than the policy's ``min_rows``: not decided.
    too_few_rows: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"columns": {c.column: asdict(c) for c in self.columns}, "drift_share": self.drift_share,
                "n_drifted": self.n_drifted, "n_columns": len(self.columns), "drifted": self.drifted,
                "reasons": self.reasons, "prediction": asdict(self.prediction) if self.prediction else None,
                "rows": self.rows, "too_few_rows": self.too_few_rows}


def _is_arrow(values: Any) -> bool:
    return type(values).__module__.startswith("pyarrow")


def _finite_floats(values: Any) -> Any:
    """The finite values of a numeric column (pandas, numpy or pyarrow) as float64."""
    import numpy as np

    if _is_arrow(values):
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
    else:
        import pandas as pd

        series = values if isinstance(values, pd.Series) else pd.Series(values)
        if pd.api.types.is_numeric_dtype(series):  # numbers and booleans
            arr = series.to_numpy(dtype=float, na_value=np.nan)
        else:
            arr = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(arr)
    return arr if finite.all() else arr[finite]


def _sorted_counts(ordered: Any) -> tuple[Any, Any]:
    """Distinct values and their counts of a sorted array."""
    import numpy as np

    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1]))) if len(ordered) else \
        np.zeros(0, dtype=np.int64)
    return ordered[starts], np.diff(np.append(starts, len(ordered)))


def _float_counts(ordered: Any) -> dict[str, int]:
    vals, counts = _sorted_counts(ordered)
    return {repr(float(v)): int(c) for v, c in zip(vals, counts, strict=True)}


def _js_distance(ref_counts: dict[str, int], cur_counts: dict[str, int]) -> float:
    import numpy as np
    from scipy.spatial import distance

    keys = sorted(set(ref_counts) | set(cur_counts))
    ref_n, cur_n = sum(ref_counts.values()), sum(cur_counts.values())
    p = np.array([ref_counts.get(k, 0) / ref_n for k in keys])
    q = np.array([cur_counts.get(k, 0) / cur_n for k in keys])
    return float(distance.jensenshannon(p, q))


def _reference_quantile_function(n: int, low: Any, high: Any, grid: Any, u: Any) -> Any:
    """The empirical quantile function at ``u`` of a reference of ``n`` values: exact in its
    stored tails (``low``, ``high``), interpolated on its stored quantile ``grid`` in between."""
    import numpy as np

    idx = np.clip(np.ceil(u * n).astype(np.int64) - 1, 0, n - 1)  # index into the sorted reference
    out = np.interp(u, np.linspace(0.0, 1.0, len(grid)), grid)
    in_low = idx < len(low)
    out[in_low] = low[idx[in_low]]
    top = idx - (n - len(high))
    in_high = top >= 0
    out[in_high] = high[top[in_high]]
    return out


def _wasserstein(ref: dict[str, Any], current_sorted: Any) -> float:
    """W1 = integral over u of |Q_ref(u) - Q_cur(u)|.

    Integrated piecewise between the merged step points of both quantile functions, so it is
    exact wherever the reference is stored exactly (its tails) and interpolated in between. The
    current's n steps are uniform (width 1/n): each is integrated at its midpoint, and only the
    few steps a reference step point falls inside are cut at those points.
    """
    import numpy as np

    from airflow_mlops_provider.core.baseline import floats

    n, n_ref = len(current_sorted), int(ref["count"])
    low, high, grid = floats(ref["low_tail"]), floats(ref["high_tail"]), floats(ref["quantiles"])
    extra = np.unique(np.concatenate([
        np.arange(len(low) + 1) / n_ref,
        (n_ref - np.arange(len(high) + 1)) / n_ref,
        np.linspace(0.0, 1.0, len(grid)),
    ]))
    steps = np.arange(n + 1) / n
    # The current's steps a reference point falls strictly inside (not on a step's edge).
    at = np.clip(np.searchsorted(steps, extra, side="right") - 1, 0, n - 1)
    inside = (extra > steps[at]) & (extra < steps[at + 1])
    cut = np.unique(at[inside])
    mid = (np.arange(n) + 0.5) / n
    # (not "@": a BLAS dot product may start threads that spin on a busy machine)
    whole = np.abs(current_sorted - _reference_quantile_function(n_ref, low, high, grid, mid))
    total = float((np.sum(whole) - np.sum(whole[cut])) / n)  # the steps no reference point cuts
    if len(cut):
        breaks = np.unique(np.concatenate([steps[cut], steps[cut + 1], extra[inside]]))
        width = np.diff(breaks)
        pieces = breaks[:-1] + width / 2
        owner = np.clip(np.searchsorted(steps, pieces, side="right") - 1, 0, n - 1)
        keep = np.isin(owner, cut) & (width > 0)  # pieces between two cut steps are not steps of their own
        total += float(np.sum(np.abs(current_sorted[owner[keep]]
                                     - _reference_quantile_function(n_ref, low, high, grid, pieces[keep]))
                              * width[keep]))
    return total


def _z_test(ref_counts: dict[str, int], cur_counts: dict[str, int]) -> float:
    """Evidently's two-proportion Z test on the share of values other than the first key (with
    two keys the p-value does not depend on which one is first)."""
    import numpy as np
    from scipy import stats

    keys = sorted(set(ref_counts) | set(cur_counts))
    if len(keys) == 1:
        return 1.0
    n1, n2 = sum(ref_counts.values()), sum(cur_counts.values())
    p1, p2 = 1 - ref_counts.get(keys[0], 0) / n1, 1 - cur_counts.get(keys[0], 0) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    denom = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if denom == 0:
        return 1.0
    return float(2 * (1 - stats.norm.cdf(abs((p1 - p2) / denom))))


def _chi_square(ref_counts: dict[str, int], cur_counts: dict[str, int]) -> float:
    import numpy as np
    from scipy import stats

    keys = sorted(set(ref_counts) | set(cur_counts))
    k = sum(cur_counts.values()) / sum(ref_counts.values())
    f_exp = np.array([ref_counts.get(key, 0) * k for key in keys], dtype=float)
    f_obs = np.array([cur_counts.get(key, 0) for key in keys], dtype=float)
    return float(stats.chisquare(f_obs, f_exp)[1])


def _constant_note(name: str, ref_keys: Any, cur_keys: Any) -> str | None:
    """Say so when a feature holds a single value on a side: its verdict is still Evidently's
    (one value against another drifts fully, the same value does not drift)."""
    said = [f"{next(iter(keys))} in {side}" for side, keys in (("the training baseline", ref_keys),
                                                              ("the current data", cur_keys)) if len(keys) == 1]
    return f"column {name!r} is constant ({'; '.join(said)})" if said else None


def column_drift(name: str, ref: dict[str, Any], current: Any, ref_sample: Any = None) -> ColumnDrift:
    """Drift of one feature: ``ref`` is its profile entry, ``ref_sample`` the stored sample column.

    ``current`` may be a pandas Series, a numpy array or a pyarrow (Chunked)Array. A feature
    with no value on a side gets a ``none`` verdict that says so; a constant one is tested as
    Evidently tests it, with a note naming the constant.
    """
    import numpy as np
    from scipy import stats

    from airflow_mlops_provider.core.baseline import category_counts

    numeric = ref["kind"] == "numeric"
    ref_n = int(ref["count"])
    if numeric:
        cur = np.sort(_finite_floats(current))
        cur_n = len(cur)
    else:
        cur_counts = category_counts(current)
        cur_n = sum(cur_counts.values())
    if cur_n == 0 or ref_n == 0:
        side = "the current data" if cur_n == 0 else "the training baseline"
        return ColumnDrift(name, ref["kind"], "none", None, 0.0, False, cur_n,
                           note=f"column {name!r} has no non-null{' finite' if numeric else ''} value in {side}; "
                                "not tested")
    if ref_n <= SMALL_REFERENCE:
        if ref_sample is None:
            raise ValueError(f"feature {name!r}: a reference of {ref_n} rows needs the full sample")
        if numeric:
            sample = np.sort(_finite_floats(ref_sample))
            sample_n = len(sample)
        else:
            ref_counts = category_counts(ref_sample)
            sample_n = sum(ref_counts.values())
        if sample_n != ref_n:
            raise ValueError(f"feature {name!r}: a reference of {ref_n} rows needs the full sample")
        if numeric:
            ref_counts = _float_counts(sample)
            cur_keys = _sorted_counts(cur)[0]
            n_values = len(np.union1d(_sorted_counts(sample)[0], cur_keys))
            if n_values > 5:
                p = float(stats.ks_2samp(sample, cur)[1])
                return ColumnDrift(name, "numeric", "ks", p, PVALUE_THRESHOLD, p <= PVALUE_THRESHOLD, cur_n,
                                   note=_constant_note(name, ref_counts, cur_keys))
            cur_counts = _float_counts(cur)
        n_values = len(set(ref_counts) | set(cur_counts))
        note = _constant_note(name, ref_counts, cur_counts)
        if n_values > 2:
            p = _chi_square(ref_counts, cur_counts)
            return ColumnDrift(name, ref["kind"], "chisquare", p, PVALUE_THRESHOLD, p < PVALUE_THRESHOLD, cur_n,
                               note=note)
        p = _z_test(ref_counts, cur_counts)
        return ColumnDrift(name, ref["kind"], "z", p, PVALUE_THRESHOLD, p < PVALUE_THRESHOLD, cur_n, note=note)

    if numeric:
        ref_counts = ref.get("counts")
        many = ref_counts is None  # more than MAX_NUMERIC_COUNTS distinct reference values
        if not many:
            cur_vals = _sorted_counts(cur)[0]
            # More than 5 distinct current values: more than 5 in all, without keying each one.
            many = len(cur_vals) > 5 or len(set(ref_counts) | {repr(float(v)) for v in cur_vals}) > 5
        if many:
            wd = _wasserstein(ref, cur)
            value = wd / max(float(ref["std"]), 0.001)
            ref_keys = ref_counts or ()
            return ColumnDrift(name, "numeric", "wasserstein", value, DISTANCE_THRESHOLD,
                               value >= DISTANCE_THRESHOLD, cur_n,
                               note=_constant_note(name, ref_keys, cur[:1] if cur[0] == cur[-1] else ()))
        cur_counts = _float_counts(cur)
    else:
        ref_counts = ref["counts"]
    value = _js_distance(ref_counts, cur_counts)
    return ColumnDrift(name, ref["kind"], "jensenshannon", value, DISTANCE_THRESHOLD,
                       value >= DISTANCE_THRESHOLD, cur_n, note=_constant_note(name, ref_counts, cur_counts))


#: Bytes of column data read from Parquet at once by :func:`parquet_drift` (a group of columns).
READ_BUDGET_BYTES = 256 * 1024 * 1024


def parquet_drift(parquet: Any, profile: dict[str, Any], sample: Any = None, columns: list[str] | None = None,
                  budget_bytes: int = READ_BUDGET_BYTES) -> list[ColumnDrift]:
    """The verdict of every profiled feature (or ``columns``) of an open ``pyarrow.parquet.ParquetFile``.

    Columns are read in groups of about ``budget_bytes`` (8 bytes a row a column), so a table of
    thousands of columns is checked in bounded memory; the columns of a group are tested on a
    few threads (sorting and arithmetic in numpy release the GIL).
    """
    from concurrent.futures import ThreadPoolExecutor

    from airflow_mlops_provider.core.baseline import worker_threads

    names = list(columns or profile["features"])
    rows = max(int(parquet.metadata.num_rows), 1)
    group = max(1, min(len(names), budget_bytes // (8 * rows)))
    sample_columns = set() if sample is None else set(sample.columns)
    results: list[ColumnDrift] = []
    with ThreadPoolExecutor(worker_threads(group)) as pool:
        for start in range(0, len(names), group):
            chunk = names[start:start + group]
            table = parquet.read(columns=chunk)
            results.extend(pool.map(lambda n, t=table: column_drift(  # type: ignore[misc]
                n, profile["columns"][n], t.column(n), sample[n] if n in sample_columns else None), chunk))
            del table
    return results


def report_columns(current: Any, reference: Any, columns: list[str]) -> tuple[list[str], dict[str, str]]:
    """The columns a drift report can compare, and why each other one is left out.

    Evidently's preset raises on a column with no value on one side ("An empty column ... was
    provided"); such a column has its own verdict (``column_drift``'s note) instead.
    """
    import numpy as np
    import pandas as pd

    kept, skipped = [], {}
    for column in columns:
        for side, frame in (("current data", current), ("training sample", reference)):
            values = frame[column]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                empty = not np.isfinite(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)).any()
            else:
                empty = not values.notna().any()
            if empty:
                skipped[column] = f"column {column!r} has no non-null value in the {side}"
                break
        else:
            kept.append(column)
    return kept, skipped


def check_key_features(policy: DriftPolicy, profile: dict[str, Any]) -> None:
    unknown = [c for c in policy.key_features if c not in profile["columns"]]
    if unknown:
        raise KeyError(f"drift policy key_features {unknown} are not in the baseline")


def apply_policy(results: list[ColumnDrift], policy: DriftPolicy,
                 prediction: ColumnDrift | None = None, rows: int | None = None) -> DriftResult:
    """Decide whether the partition drifted from its per-feature verdicts (and its outputs' one).

    With ``rows`` below ``policy.min_rows`` the verdicts are kept but the policy never fires:
    ``too_few_rows`` says why.
    """
    drifted = [r.column for r in results if r.drifted]
    if rows is not None and rows < policy.min_rows:
        share = len(drifted) / len(results) if results else 0.0
        return DriftResult(columns=results, drift_share=share, n_drifted=len(drifted), drifted=False,
                           prediction=prediction, rows=rows,
                           too_few_rows=f"too few rows to decide drift: {rows} < min_rows {policy.min_rows}")
    share = len(drifted) / len(results) if results else 0.0
    reasons = []
    if results and share >= policy.drift_share:
        reasons.append(f"{len(drifted)} of {len(results)} features drifted ({share:.0%} >= "
                       f"{policy.drift_share:.0%}): {drifted}")
    key_hits = [c for c in policy.key_features if c in drifted]
    if key_hits:
        reasons.append(f"key features drifted: {key_hits}")
    if policy.prediction_drift and prediction is not None and prediction.drifted:
        reasons.append(f"model output {prediction.column!r} drifted ({prediction.method} "
                       f"{prediction.statistic:.4g}, threshold {prediction.threshold:g})")
    return DriftResult(columns=results, drift_share=share, n_drifted=len(drifted), drifted=bool(reasons),
                       reasons=reasons, prediction=prediction, rows=rows)


def detect_drift(profile: dict[str, Any], current: Any, sample: Any = None,
                 policy: DriftPolicy | None = None, columns: list[str] | None = None) -> DriftResult:
    """Test every profiled feature (or ``columns``) of a DataFrame and apply ``policy``."""
    policy = policy or DriftPolicy()
    names = columns or list(profile["features"])
    missing = [c for c in names if c not in current.columns]
    if missing:
        raise KeyError(f"the scored data lacks baseline features {missing}")
    check_key_features(policy, profile)
    results = [column_drift(c, profile["columns"][c], current[c],
                            None if sample is None or c not in sample.columns else sample[c]) for c in names]
    return apply_policy(results, policy, rows=len(current))
