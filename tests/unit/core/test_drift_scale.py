"""The vectorised drift path: constant and empty columns, the Parquet column-group check, and
agreement with Evidently (the oracle) on a small frame of every column kind."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops_provider.core.baseline import (
    N_QUANTILES,
    compute_profile,
    floats,
    sample_rows,
)
from airflow_mlops_provider.core.drift import column_drift, detect_drift, parquet_drift
from tests.unit.core.test_drift import evidently_drift, is_drift


def mixed(rows: int, seed: int, shift: bool) -> pd.DataFrame:
    """One column of each kind Evidently tells apart, with NaN and infinities in a float one."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0 + (0.8 if shift else 0.0), 1.0, rows)
    amount[rng.random(rows) < 0.05] = np.nan
    amount[:3] = [np.inf, -np.inf, np.nan]
    return pd.DataFrame({
        "amount": amount,                                                     # numeric, heavy tail
        "score": rng.normal(0.0, 1.0, rows),                                  # numeric, unchanged
        "age": rng.integers(18, 90 if not shift else 60, rows),               # int, > 10 levels: numeric
        "weekday": rng.integers(0, 7, rows),                                  # int, <= 10 levels: categorical
        "channel": rng.choice(["web", "app", "shop", "phone"], rows,
                              p=[0.1, 0.2, 0.3, 0.4] if shift else [0.4, 0.3, 0.2, 0.1]),
        "is_online": rng.random(rows) < 0.3,                                  # boolean
        "currency": np.full(rows, "EUR", dtype=object),                       # constant
    })


def write(frame: pd.DataFrame, path) -> pq.ParquetFile:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=700)
    return pq.ParquetFile(path)


@pytest.mark.parametrize("ref_rows", [3000, 700])  # Evidently's large- and small-reference tests
def test_parquet_check_agrees_with_evidently(tmp_path, ref_rows):
    reference = mixed(ref_rows, seed=1, shift=False)
    current = mixed(2500, seed=2, shift=True)
    # As the operators do: the profile travels as JSON, the current data is read from Parquet.
    profile = json.loads(json.dumps(compute_profile(reference, list(reference.columns))))
    ours = {r.column: r for r in parquet_drift(write(current, tmp_path / "cur.parquet"), profile,
                                               sample_rows(reference), budget_bytes=3 * 8 * 2500)}
    theirs = evidently_drift(reference, current)
    assert set(theirs) == set(ours) == set(reference.columns)
    for name, (value, method, threshold) in theirs.items():
        assert ours[name].drifted == is_drift(value, method, threshold), (name, ours[name], method, value)
        assert ours[name].statistic == pytest.approx(value, rel=0.02, abs=1e-6), (name, method)
    assert {n for n, r in ours.items() if r.drifted} >= {"amount", "age", "channel"}
    assert "currency" in (ours["currency"].note or "")


@pytest.mark.parametrize("ref_rows", [5000, 500])
def test_constant_column_gets_a_verdict_naming_it(ref_rows):
    reference = pd.DataFrame({"flag": np.ones(ref_rows), "unit": ["kg"] * ref_rows})
    profile = compute_profile(reference, ["flag", "unit"])
    same = detect_drift(profile, pd.DataFrame({"flag": np.ones(300), "unit": ["kg"] * 300}), reference)
    moved = detect_drift(profile, pd.DataFrame({"flag": np.full(300, 2.0), "unit": ["lb"] * 300}), reference)
    for result, drifted in ((same, False), (moved, True)):
        for c in result.columns:
            assert c.drifted is drifted and c.method in ("jensenshannon", "z")
            assert c.note.startswith(f"column {c.column!r} is constant (")
    flag = next(c for c in moved.columns if c.column == "flag")
    assert flag.note == "column 'flag' is constant (1.0 in the training baseline; 2.0 in the current data)"
    # Evidently gives the same verdicts on the same frames.
    theirs = evidently_drift(reference, pd.DataFrame({"flag": np.full(300, 2.0), "unit": ["lb"] * 300}))
    assert all(is_drift(*theirs[c]) for c in ("flag", "unit"))


def test_all_null_column_gets_a_verdict_naming_it(tmp_path):
    reference = pd.DataFrame({"amount": np.arange(2000.0), "empty": np.full(2000, np.nan),
                              "city": ["a", "b"] * 1000})
    profile = compute_profile(reference, ["amount", "empty", "city"])
    assert profile["columns"]["empty"]["count"] == 0
    # Empty in the current data: a column of nulls (no type at all) read from Parquet.
    table = pa.table({"amount": pa.nulls(500, pa.float64()), "empty": pa.array([1.0] * 500),
                      "city": pa.nulls(500)})
    pq.write_table(table, tmp_path / "cur.parquet")
    verdicts = {r.column: r for r in parquet_drift(pq.ParquetFile(tmp_path / "cur.parquet"), profile,
                                                   sample_rows(reference))}
    assert verdicts["amount"].note == ("column 'amount' has no non-null finite value in the current data; "
                                       "not tested")
    assert verdicts["empty"].note == ("column 'empty' has no non-null finite value in the training baseline; "
                                      "not tested")
    assert verdicts["city"].note == "column 'city' has no non-null value in the current data; not tested"
    assert all(v.method == "none" and not v.drifted and v.statistic is None for v in verdicts.values())


def test_profile_is_one_sort_with_numpy_semantics():
    rng = np.random.default_rng(3)
    values = rng.standard_t(2.0, 12_345)
    values[::50] = np.nan
    values[1] = np.inf
    entry = compute_profile(pd.DataFrame({"x": values}), ["x"])["columns"]["x"]
    finite = np.sort(values[np.isfinite(values)])
    assert entry["count"] == len(finite) and entry["nulls"] == int(np.isnan(values).sum())
    np.testing.assert_array_equal(floats(entry["quantiles"]),
                                  np.quantile(finite, np.linspace(0, 1, N_QUANTILES), method="inverted_cdf"))
    np.testing.assert_array_equal(floats(entry["low_tail"]), finite[:1000])
    np.testing.assert_array_equal(floats(entry["high_tail"]), finite[-1000:])
    assert entry["std"] == pytest.approx(finite.std()) and entry["n_unique"] == len(np.unique(finite))


def test_version_1_profiles_with_float_lists_still_check():
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 4000)})
    current = pd.Series(rng.normal(0.3, 1, 3000))
    entry = compute_profile(reference, ["x"])["columns"]["x"]
    old = entry | {k: floats(entry[k]).tolist() for k in ("quantiles", "low_tail", "high_tail")}
    assert column_drift("x", old, current).statistic == column_drift("x", entry, current).statistic
