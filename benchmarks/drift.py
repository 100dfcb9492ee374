"""Drift check benchmark: our profile-based per-column check vs bare Evidently, same frames.

Side by side in one run, each side measured in its own fresh process (so peak RSS is its own):
a reference and a current frame of ``--rows`` rows x 25 features (20 float64 columns drawn from
normal / lognormal / uniform distributions, 5 string columns of 4-12 categories). Some columns
are shifted in the current frame far beyond Evidently's 0.1 threshold, the others not at all or
by a small fraction of it, so every verdict is unambiguous.

* ours: the baseline profile + sample are computed at training time (a setup process, not
  timed). The clock covers what ``EvidentlyCheckDriftOperator.execute`` does at check time,
  minus MLflow and the HTML report: load the profile JSON and the sample Parquet, read the
  current Parquet one column at a time with pyarrow and call ``column_drift`` per column.
* baseline: bare Evidently (``Report([DataDriftPreset()])``). The clock covers reading both
  Parquet files into pandas, running the report and extracting the per-column verdicts.

Imports happen before the clock on both sides. Data generation and profiling run in a separate
setup process as well: a child started with ``vfork`` + ``exec`` inherits its parent's peak RSS
in ``ru_maxrss``, so the parent itself must stay small.

    python benchmarks/drift.py [--rows 1000000] [--seed 0]

Prints one JSON object: name, rows, columns, ours_s, baseline_s, ratio (baseline_s / ours_s),
ours_peak_rss_mb, baseline_peak_rss_mb, disagreements (columns whose verdicts differ),
drifted_ours, drifted_evidently, drifted_expected, columns_detail (per column: both methods,
statistics and verdicts).
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

# (name, distribution, reference parameters, current parameters, drifted by design).
# Normed Wasserstein distances by construction: a location shift of d standard deviations gives
# d; normal scale s -> 0.8 |s - 1|; lognormal mu + d -> (e^d - 1) / sqrt(e^(sigma^2) - 1).
NUMERIC = [
    ("num_00", "normal", (0.0, 1.0), (0.0, 1.0), False),
    ("num_01", "normal", (10.0, 2.0), (11.0, 2.0), True),            # 0.5
    ("num_02", "lognormal", (0.0, 0.5), (0.0, 0.5), False),
    ("num_03", "uniform", (0.0, 1.0), (0.15, 1.15), True),           # 0.52
    ("num_04", "normal", (-3.0, 0.5), (-3.0, 0.75), True),           # 0.4
    ("num_05", "lognormal", (1.0, 0.75), (1.01, 0.75), False),       # ~0.01
    ("num_06", "uniform", (-5.0, 5.0), (-5.0, 5.0), False),
    ("num_07", "normal", (100.0, 15.0), (100.3, 15.0), False),       # 0.02
    ("num_08", "lognormal", (0.0, 1.0), (0.5, 1.0), True),           # 0.49
    ("num_09", "normal", (0.0, 1.0), (0.0, 1.0), False),
    ("num_10", "uniform", (0.0, 100.0), (0.0, 100.0), False),
    ("num_11", "normal", (5.0, 1.0), (5.03, 1.02), False),           # ~0.035
    ("num_12", "lognormal", (2.0, 0.3), (2.0, 0.3), False),
    ("num_13", "normal", (0.0, 3.0), (1.2, 3.0), True),              # 0.4
    ("num_14", "uniform", (10.0, 20.0), (10.0, 22.0), True),         # 0.35
    ("num_15", "normal", (50.0, 10.0), (50.0, 10.0), False),
    ("num_16", "lognormal", (0.5, 0.5), (0.5, 0.52), False),         # ~0.04
    ("num_17", "normal", (-1.0, 1.0), (-1.3, 1.0), True),            # 0.3
    ("num_18", "uniform", (0.0, 1.0), (0.0, 1.0), False),
    ("num_19", "normal", (0.0, 1.0), (0.6, 1.0), True),              # 0.6
]
# (name, reference category weights, current category weights, drifted by design); the weights
# are normalised. Jensen-Shannon distances are noted where the frequencies change.
CATEGORICAL = [
    ("cat_0", [4, 3, 2, 1], [4, 3, 2, 1], False),
    ("cat_1", [6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6], True),                       # ~0.36
    ("cat_2", [8, 7, 6, 5, 4, 3, 2, 1], [8.2, 7, 6, 5, 4, 3, 2, 0.8], False),      # ~0.013
    ("cat_3", [1] * 10, [1] * 10, False),
    ("cat_4", [1] * 12, [1] * 6 + [4] * 6, True),                                  # ~0.22
]
FEATURES = [c[0] for c in NUMERIC] + [c[0] for c in CATEGORICAL]


def _numeric(rng, dist: str, params: tuple[float, float], n: int):
    a, b = params
    if dist == "normal":
        return rng.normal(a, b, n)
    if dist == "lognormal":
        return rng.lognormal(a, b, n)
    return rng.uniform(a, b, n)


def _categorical(rng, name: str, weights: list[float], n: int):
    import numpy as np

    p = np.asarray(weights, dtype=float)
    labels = np.array([f"{name}_v{k:02d}" for k in range(len(p))], dtype=object)
    return labels[rng.choice(len(p), size=n, p=p / p.sum())]


def make_frame(rows: int, seed: int, current: bool):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, int(current)])
    cols = {name: _numeric(rng, dist, cur if current else ref, rows) for name, dist, ref, cur, _ in NUMERIC}
    for name, ref, cur, _ in CATEGORICAL:
        cols[name] = _categorical(rng, name, cur if current else ref, rows)
    return pd.DataFrame(cols)


def setup(work: Path, rows: int, seed: int) -> dict:
    """Training time (not timed): both frames to Parquet, the baseline profile + sample beside them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops_provider.core.baseline import compute_profile, sample_rows

    for label in ("current", "reference"):  # the reference last: it is profiled below
        frame = make_frame(rows, seed, current=label == "current")
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), work / f"{label}.parquet",
                       row_group_size=250_000)
    profile = compute_profile(frame, FEATURES)
    (work / "profile.json").write_text(json.dumps(profile))
    sample_rows(frame[FEATURES]).to_parquet(work / "sample.parquet", index=False)
    return {"peak_rss_mb": own_peak_rss_mb()}


def run_ours(work: Path) -> dict:
    import_started = time.perf_counter()
    import pandas as pd
    import pyarrow.parquet as pq

    for module in ("numpy", "scipy.stats", "scipy.spatial.distance"):  # column_drift imports them lazily
        importlib.import_module(module)
    from airflow_mlops_provider.core.drift import column_drift
    from airflow_mlops_provider.core.scoring import open_parquet

    import_s = time.perf_counter() - import_started
    current = str(work / "current.parquet")
    started = time.perf_counter()
    profile = json.loads((work / "profile.json").read_text())
    sample = pd.read_parquet(work / "sample.parquet")
    features = list(profile["features"])
    pf = open_parquet(current)
    missing = [c for c in features if c not in pf.schema_arrow.names]
    if missing:
        raise KeyError(f"current data lacks {missing}")
    columns = {}
    for name in features:  # as EvidentlyCheckDriftOperator.execute: one column at a time
        values = pq.read_table(current, columns=[name], pre_buffer=False).column(0).to_pandas()
        result = column_drift(name, profile["columns"][name], values,
                              sample[name] if name in sample.columns else None)
        columns[name] = {"method": result.method, "statistic": result.statistic, "drifted": result.drifted}
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "import_s": import_s, "columns": columns, "peak_rss_mb": own_peak_rss_mb()}


def _evidently_drifted(value: float, method: str, threshold: float) -> bool:
    """Evidently's verdict: p-values drift below the threshold (K-S at or below), distances at or above."""
    if "K-S" in method:
        return value <= threshold
    if "p_value" in method or "chi" in method.lower() or "Z-test" in method:
        return value < threshold
    return value >= threshold


def run_baseline(work: Path) -> dict:
    import_started = time.perf_counter()
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    import_s = time.perf_counter() - import_started
    started = time.perf_counter()
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
    return {"seconds": seconds, "import_s": import_s, "columns": columns, "peak_rss_mb": own_peak_rss_mb()}


def _child(args: list[str]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *args]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, work = args.child[0], Path(args.child[1])
        if mode == "setup":
            emit(setup(work, int(args.child[2]), int(args.child[3])))
        else:
            emit((run_ours if mode == "ours" else run_baseline)(work))
        return

    # The parent imports nothing heavy and holds no data (see the module docstring).
    with tempfile.TemporaryDirectory() as tmp:
        peak_rss_mb_of(_child(["setup", tmp, str(args.rows), str(args.seed)]))
        _, base = peak_rss_mb_of(_child(["baseline", tmp]))
        _, ours = peak_rss_mb_of(_child(["ours", tmp]))

    expected = {name for name, *_, drifted in NUMERIC + CATEGORICAL if drifted}
    missing = [c for c in FEATURES if c not in base["columns"] or c not in ours["columns"]]
    if missing:
        raise RuntimeError(f"no verdict for {missing}")
    detail = {}
    for name in FEATURES:
        o, b = ours["columns"][name], base["columns"][name]
        detail[name] = {
            "ours_method": o["method"], "ours_statistic": None if o["statistic"] is None else round(o["statistic"], 6),
            "evidently_method": b["method"], "evidently_statistic": round(b["statistic"], 6),
            "ours_drifted": o["drifted"], "evidently_drifted": b["drifted"], "expected_drifted": name in expected,
        }
    emit({
        "name": "drift",
        "rows": args.rows,
        "columns": len(FEATURES),
        "ours_s": round(ours["seconds"], 3),
        "baseline_s": round(base["seconds"], 3),
        "ratio": round(base["seconds"] / ours["seconds"], 2),
        "ours_peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "baseline_peak_rss_mb": round(base["peak_rss_mb"], 1),
        "disagreements": sum(d["ours_drifted"] != d["evidently_drifted"] for d in detail.values()),
        "drifted_ours": sum(d["ours_drifted"] for d in detail.values()),
        "drifted_evidently": sum(d["evidently_drifted"] for d in detail.values()),
        "drifted_expected": len(expected),
        "ours_import_s": round(ours["import_s"], 3),
        "baseline_import_s": round(base["import_s"], 3),
        "seed": args.seed,
        "columns_detail": detail,
    })


if __name__ == "__main__":
    main()
