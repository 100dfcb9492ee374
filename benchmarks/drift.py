"""Drift benchmarks: our profile-based check vs bare Evidently, and the wide-table cases.

Three cases, each printing one JSON line; every measured side runs in its own fresh process
(peak RSS is its own; see ``own_peak_rss_mb``), data generation in a setup process that is not timed.

* ``mixed`` (``--rows``, default 1,000,000): a reference and a current frame of 22 columns shaped
  like tabular work: heavy-tailed numerics with NaNs (lognormal, Student t, Pareto), integer
  columns (high-cardinality ones Evidently treats as numeric, low-cardinality ones it treats as
  categorical), string categoricals of 4 and 30 levels and one of ~20,000 levels (Zipf), a
  boolean and a constant column. Some columns drift far beyond Evidently's thresholds, the others
  not at all. ``ours_s`` COUNTS the train-time profile: reading the reference Parquet,
  ``compute_profile`` + the sample and writing them (``profile_s``), then the check: loading
  them, reading the current Parquet in column groups and testing every column (``check_s``,
  :func:`~airflow_mlops_provider.core.drift.parquet_drift`). ``baseline_s``: bare Evidently
  (``Report([DataDriftPreset()])``) reading both Parquet files into pandas and running the report.
  ``disagreements`` counts columns whose verdicts differ between the two.
* ``profile`` (``--wide-rows`` x ``--wide-columns``, default 100,000 x 1000 numeric): the time of
  ``compute_profile`` on an in-memory frame (``profile_s``), and of writing it as JSON
  (``write_s``).
* ``parquet`` (``--wide-rows`` x ``--parquet-columns``, default 100,000 x 5000 numeric, a tenth of
  them drifted): the check of a current Parquet file against a stored profile + sample, from
  loading them to the last verdict, with the check process's peak RSS.

    python benchmarks/drift.py [--cases mixed,profile,parquet] [--rows 1000000] [--wide-rows 100000]

Imports happen before the clock on every side.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, own_peak_rss_mb, peak_rss_mb_of

# --- the mixed case: 22 columns ------------------------------------------------------------------
# (name, generator, reference parameters, current parameters, drifted by design). Numeric shifts
# are far from Evidently's 0.1 (normed Wasserstein) or absent; categorical ones far from 0.1 (JS).
MIXED_NUMERIC = [
    ("amount", "lognormal", (3.0, 1.2), (3.0, 1.2), False),
    ("amount_7d", "lognormal", (5.0, 1.0), (5.8, 1.0), True),
    ("balance", "student_t", (1000.0, 300.0, 3), (1000.0, 300.0, 3), False),
    ("balance_delta", "student_t", (0.0, 50.0, 2.5), (60.0, 50.0, 2.5), True),
    ("session_s", "pareto", (2.5, 30.0), (2.5, 30.0), False),
    ("latency_ms", "pareto", (1.8, 20.0), (1.8, 40.0), True),
    ("score_a", "normal", (0.0, 1.0), (0.0, 1.0), False),
    ("score_b", "normal", (5.0, 2.0), (6.5, 2.0), True),
    ("ratio", "uniform", (0.0, 1.0), (0.0, 1.0), False),
    ("discount", "uniform", (0.0, 0.3), (0.1, 0.4), True),
    ("fx_rate", "normal", (1.1, 0.02), (1.1, 0.02), False),
    ("risk", "lognormal", (-1.0, 0.8), (-1.0, 0.8), False),
    ("customer_age", "int_uniform", (18, 90), (18, 90), False),      # ints, > 10 levels: numeric
    ("hour", "int_uniform", (0, 24), (6, 24), True),
    ("items_total", "int_uniform", (1, 200), (1, 200), False),
]
NULL_SHARE = {"amount": 0.02, "balance": 0.05, "session_s": 0.01, "latency_ms": 0.03, "risk": 0.1}
# (name, levels or "zipf:<n>", reference weights, current weights, drifted by design)
MIXED_CATEGORICAL = [
    ("weekday", "int:7", [1] * 7, [1] * 7, False),                    # ints, <= 10 levels: categorical
    ("n_cards", "int:5", [5, 4, 3, 2, 1], [1, 2, 3, 4, 5], True),
    ("channel", "str:4", [4, 3, 2, 1], [4, 3, 2, 1], False),
    ("country", "str:30", [1] * 30, [1] * 15 + [4] * 15, True),
    ("merchant", "zipf:20000", 1.1, 1.1, False),
    ("is_online", "bool", [3, 1], [3, 1], False),
    ("currency", "const", "EUR", "EUR", False),
]
MIXED = [c[0] for c in MIXED_NUMERIC] + [c[0] for c in MIXED_CATEGORICAL]


def _numeric(rng, dist: str, params: tuple, n: int):
    import numpy as np

    if dist == "lognormal":
        return rng.lognormal(params[0], params[1], n)
    if dist == "student_t":
        return params[0] + params[1] * rng.standard_t(params[2], n)
    if dist == "pareto":
        return params[1] * (1 + rng.pareto(params[0], n))
    if dist == "int_uniform":
        return rng.integers(params[0], params[1], n).astype(np.int64)
    if dist == "uniform":
        return rng.uniform(params[0], params[1], n)
    return rng.normal(params[0], params[1], n)


def _categorical(rng, name: str, levels: str, weights, n: int):
    import numpy as np

    if levels == "const":
        return np.full(n, weights, dtype=object)
    if levels == "bool":
        p = np.asarray(weights, float)
        return rng.random(n) < p[0] / p.sum()
    kind, count = levels.split(":")
    if kind == "zipf":
        p = 1.0 / np.arange(1, int(count) + 1) ** weights
        codes = rng.choice(int(count), size=n, p=p / p.sum())
        return np.array([f"m{k:05d}" for k in range(int(count))], dtype=object)[codes]
    p = np.asarray(weights, float)
    codes = rng.choice(len(p), size=n, p=p / p.sum())
    if kind == "int":
        return codes.astype(np.int64)
    return np.array([f"{name}_{k:02d}" for k in range(len(p))], dtype=object)[codes]


def mixed_frame(rows: int, seed: int, current: bool):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, int(current)])
    cols = {}
    for name, dist, ref, cur, _ in MIXED_NUMERIC:
        values = _numeric(rng, dist, cur if current else ref, rows)
        if name in NULL_SHARE:
            values[rng.random(rows) < NULL_SHARE[name]] = np.nan
        cols[name] = values
    for name, levels, ref, cur, _ in MIXED_CATEGORICAL:
        cols[name] = _categorical(rng, name, levels, cur if current else ref, rows)
    return pd.DataFrame(cols)


def setup_mixed(work: Path, rows: int, seed: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for label in ("current", "reference"):
        frame = mixed_frame(rows, seed, current=label == "current")
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), work / f"{label}.parquet",
                       row_group_size=250_000)
    return {"peak_rss_mb": own_peak_rss_mb()}


def _import_ours() -> float:
    started = time.perf_counter()
    for module in ("numpy", "pandas", "pyarrow.parquet", "pyarrow.compute", "scipy.stats", "scipy.spatial.distance",
                   "airflow_mlops_provider.core.drift", "airflow_mlops_provider.core.baseline"):
        importlib.import_module(module)
    return time.perf_counter() - started


def train_profile(reference: Path, work: Path) -> float:
    """What the training operator does for drift: profile the training frame, keep a sample."""
    import pandas as pd

    from airflow_mlops_provider.core.baseline import compute_profile, sample_rows

    started = time.perf_counter()
    frame = pd.read_parquet(reference)
    features = list(frame.columns)
    (work / "profile.json").write_text(json.dumps(compute_profile(frame, features)))
    sample_rows(frame)[features].to_parquet(work / "sample.parquet", index=False)
    return time.perf_counter() - started


def check(current: Path, work: Path) -> tuple[float, dict]:
    """What the drift operator does at check time, minus MLflow and the HTML report."""
    import pandas as pd

    from airflow_mlops_provider.core.drift import parquet_drift
    from airflow_mlops_provider.core.scoring import open_parquet

    started = time.perf_counter()
    profile = json.loads((work / "profile.json").read_text())
    sample = pd.read_parquet(work / "sample.parquet")
    with open_parquet(str(current)) as pf:
        results = parquet_drift(pf, profile, sample)
    seconds = time.perf_counter() - started
    return seconds, {r.column: {"method": r.method, "statistic": r.statistic, "drifted": r.drifted, "note": r.note}
                     for r in results}


def run_ours_mixed(work: Path) -> dict:
    import_s = _import_ours()
    cpu = time.process_time()
    profile_s = train_profile(work / "reference.parquet", work)
    check_s, columns = check(work / "current.parquet", work)
    return {"profile_s": profile_s, "check_s": check_s, "cpu_s": time.process_time() - cpu, "import_s": import_s,
            "columns": columns, "peak_rss_mb": own_peak_rss_mb()}


def _evidently_drifted(value: float, method: str, threshold: float) -> bool:
    """Evidently's verdict: p-values drift below the threshold (K-S at or below), distances at or above."""
    if "K-S" in method:
        return value <= threshold
    if "p_value" in method or "chi" in method.lower() or "Z-test" in method:
        return value < threshold
    return value >= threshold


def run_evidently(work: Path) -> dict:
    import_started = time.perf_counter()
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    import_s = time.perf_counter() - import_started
    started, cpu = time.perf_counter(), time.process_time()
    reference = pd.read_parquet(work / "reference.parquet")
    current = pd.read_parquet(work / "current.parquet")
    snapshot = Report([DataDriftPreset()]).run(current, reference).dict()
    columns = {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("ValueDrift"):
            value, method, threshold = float(metric["value"]), config["method"], float(config["threshold"])
            columns[config["column"]] = {"method": method, "statistic": value, "threshold": threshold,
                                         "drifted": _evidently_drifted(value, method, threshold)}
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu, "import_s": import_s, "columns": columns,
            "peak_rss_mb": own_peak_rss_mb()}


# --- the wide cases ------------------------------------------------------------------------------
WIDE_GROUP = 250  # columns generated (and profiled) at a time, so the setup stays small too


def wide_group(rows: int, first: int, count: int, seed: int, current: bool):
    """Columns ``first .. first+count`` of a wide numeric frame: every tenth one drifts (a shift
    of half a standard deviation) in the current frame."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, first, int(current)])
    data = rng.standard_normal((count, rows))
    if current:
        data[[k for k in range(count) if (first + k) % 10 == 0]] += 0.5
    return pd.DataFrame(dict(zip((f"f{first + k:05d}" for k in range(count)), data, strict=True)))


def run_profile_wide(rows: int, columns: int, seed: int) -> dict:
    _import_ours()
    from airflow_mlops_provider.core.baseline import compute_profile

    frame = wide_group(rows, 0, columns, seed, current=False)
    started, cpu = time.perf_counter(), time.process_time()
    profile = compute_profile(frame, list(frame.columns))
    profile_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    text = json.dumps(profile)
    write_s = time.perf_counter() - started - profile_s
    return {"profile_s": profile_s, "cpu_s": cpu_s, "write_s": write_s, "profile_mb": len(text) / 1e6,
            "peak_rss_mb": own_peak_rss_mb()}


def setup_parquet(work: Path, rows: int, columns: int, seed: int) -> dict:
    """The current Parquet file (row groups of 10,000 rows) and the reference's profile + sample."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops_provider.core.baseline import compute_profile, sample_rows

    entries, samples = {}, []
    for first in range(0, columns, WIDE_GROUP):
        frame = wide_group(rows, first, min(WIDE_GROUP, columns - first), seed, current=False)
        entries.update(compute_profile(frame, list(frame.columns))["columns"])
        samples.append(sample_rows(frame))  # the same rows for every group
    names = list(entries)
    (work / "profile.json").write_text(json.dumps({"version": 2, "rows": rows, "features": names,
                                                    "columns": entries}))
    pd.concat(samples, axis=1).to_parquet(work / "sample.parquet", index=False)
    del samples
    writer = None
    step = 10_000
    for offset in range(0, rows, step):
        n = min(step, rows - offset)
        parts = [wide_group(n, first, min(WIDE_GROUP, columns - first), seed + 1 + offset, current=True)
                 for first in range(0, columns, WIDE_GROUP)]
        table = pa.Table.from_pandas(pd.concat(parts, axis=1), preserve_index=False)
        writer = writer or pq.ParquetWriter(work / "current.parquet", table.schema)
        writer.write_table(table)
    writer.close()
    return {"peak_rss_mb": own_peak_rss_mb()}


def run_parquet_check(work: Path) -> dict:
    import_s = _import_ours()
    cpu = time.process_time()
    check_s, columns = check(work / "current.parquet", work)
    cpu_s = time.process_time() - cpu
    drifted = {n for n, c in columns.items() if c["drifted"]}
    expected = {n for n in columns if int(n[1:]) % 10 == 0}
    return {"check_s": check_s, "cpu_s": cpu_s, "import_s": import_s, "columns": len(columns), "drifted": len(drifted),
            "wrong_verdicts": len(drifted ^ expected), "peak_rss_mb": own_peak_rss_mb()}


# --- driver --------------------------------------------------------------------------------------
def _child(args: list[str]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *map(str, args)]


def _load() -> list[float]:
    import os

    return [round(v, 2) for v in os.getloadavg()]


def case_mixed(rows: int, seed: int) -> dict:
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        peak_rss_mb_of(_child(["setup_mixed", tmp, rows, seed]))
        _, base = peak_rss_mb_of(_child(["evidently", tmp]))
        _, ours = peak_rss_mb_of(_child(["ours_mixed", tmp]))
    expected = {name for name, *_, drifted in MIXED_NUMERIC + MIXED_CATEGORICAL if drifted}
    missing = [c for c in MIXED if c not in base["columns"] or c not in ours["columns"]]
    if missing:
        raise RuntimeError(f"no verdict for {missing}")
    detail = {}
    for name in MIXED:
        o, b = ours["columns"][name], base["columns"][name]
        detail[name] = {
            "ours_method": o["method"], "ours_statistic": None if o["statistic"] is None else round(o["statistic"], 6),
            "evidently_method": b["method"], "evidently_statistic": round(b["statistic"], 6),
            "ours_drifted": o["drifted"], "evidently_drifted": b["drifted"], "expected_drifted": name in expected,
            **({"note": o["note"]} if o["note"] else {}),
        }
    ours_s = ours["profile_s"] + ours["check_s"]
    return {
        "name": "drift_mixed", "rows": rows, "columns": len(MIXED),
        "ours_s": round(ours_s, 3), "profile_s": round(ours["profile_s"], 3), "check_s": round(ours["check_s"], 3),
        "baseline_s": round(base["seconds"], 3),
        "ours_cpu_s": round(ours["cpu_s"], 3), "baseline_cpu_s": round(base["cpu_s"], 3),
        "ratio": round(base["seconds"] / ours_s, 2),
        "ratio_check_only": round(base["seconds"] / ours["check_s"], 2),
        "ours_peak_rss_mb": round(ours["peak_rss_mb"], 1), "baseline_peak_rss_mb": round(base["peak_rss_mb"], 1),
        "disagreements": sum(d["ours_drifted"] != d["evidently_drifted"] for d in detail.values()),
        "drifted_ours": sum(d["ours_drifted"] for d in detail.values()),
        "drifted_evidently": sum(d["evidently_drifted"] for d in detail.values()),
        "drifted_expected": len(expected),
        "ours_import_s": round(ours["import_s"], 3), "baseline_import_s": round(base["import_s"], 3),
        "load_before": load_before, "load_after": _load(), "seed": seed, "columns_detail": detail,
    }


def case_profile(rows: int, columns: int, seed: int) -> dict:
    load_before = _load()
    _, out = peak_rss_mb_of(_child(["profile_wide", rows, columns, seed]))
    return {"name": "drift_profile_wide", "rows": rows, "columns": columns, "profile_s": round(out["profile_s"], 3),
            "cpu_s": round(out["cpu_s"], 3),
            "limit_s": 5.0, "within_limit": out["profile_s"] < 5.0, "write_s": round(out["write_s"], 3),
            "profile_mb": round(out["profile_mb"], 1), "peak_rss_mb": round(out["peak_rss_mb"], 1),
            "load_before": load_before, "load_after": _load()}


def case_parquet(rows: int, columns: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        setup_started = time.perf_counter()
        peak_rss_mb_of(_child(["setup_parquet", tmp, rows, columns, seed]))
        setup_s = time.perf_counter() - setup_started
        size_mb = (Path(tmp) / "current.parquet").stat().st_size / 1e6
        load_before = _load()
        peak, out = peak_rss_mb_of(_child(["parquet_check", tmp]))
    return {"name": "drift_parquet_wide", "rows": rows, "columns": columns, "parquet_mb": round(size_mb, 1),
            "check_s": round(out["check_s"], 3), "cpu_s": round(out["cpu_s"], 3), "limit_s": 60.0, "peak_rss_mb": round(peak, 1), "limit_mb": 2048,
            "within_limits": out["check_s"] < 60.0 and peak < 2048,
            "drifted": out["drifted"], "wrong_verdicts": out["wrong_verdicts"], "import_s": round(out["import_s"], 3),
            "setup_s": round(setup_s, 1), "load_before": load_before, "load_after": _load()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="mixed,profile,parquet")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the mixed case")
    parser.add_argument("--wide-rows", type=int, default=100_000, help="rows of the wide cases")
    parser.add_argument("--wide-columns", type=int, default=1000, help="columns of the profile case")
    parser.add_argument("--parquet-columns", type=int, default=5000, help="columns of the Parquet case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, rest = args.child[0], args.child[1:]
        if mode == "setup_mixed":
            emit(setup_mixed(Path(rest[0]), int(rest[1]), int(rest[2])))
        elif mode == "evidently":
            emit(run_evidently(Path(rest[0])))
        elif mode == "ours_mixed":
            emit(run_ours_mixed(Path(rest[0])))
        elif mode == "profile_wide":
            emit(run_profile_wide(int(rest[0]), int(rest[1]), int(rest[2])))
        elif mode == "setup_parquet":
            emit(setup_parquet(Path(rest[0]), int(rest[1]), int(rest[2]), int(rest[3])))
        elif mode == "parquet_check":
            emit(run_parquet_check(Path(rest[0])))
        return

    # The parent imports nothing heavy and holds no data (a child inherits nothing of it).
    cases = args.cases.split(",")
    if "mixed" in cases:
        emit(case_mixed(args.rows, args.seed))
    if "profile" in cases:
        emit(case_profile(args.wide_rows, args.wide_columns, args.seed))
    if "parquet" in cases:
        emit(case_parquet(args.wide_rows, args.parquet_columns, args.seed))


if __name__ == "__main__":
    main()
