"""Batch scoring benchmark: our streaming scorer vs the plain read → predict_proba → write script.

Side by side in one run, each side in its own fresh process (so peak RSS and CPU time are its
own), same model, same file, for two data shapes:

* ``numeric``: 20 normal columns, a HistGradientBoosting model (the shipped benchmark);
* ``mixed``: shaped like real tabular work: heavy-tailed numerics with NaNs (lognormal, Pareto,
  Student-t), integer counts, a low-cardinality and a ~20k-level categorical, scored by an sklearn
  ``Pipeline`` (one-hot + target encoder + gradient boosting) logged to MLflow.

Both sides load the model before the clock; the clock covers read → predict → write of the whole
file. Ours runs as ``MlflowBatchScoreOperator`` does: :func:`prepare_scoring_threads` before the
model is loaded, then :func:`score_file` with that thread count.

    python benchmarks/scoring.py [--shape numeric|mixed|both] [--rows N] [--busy] [--chunk-rows N]
                                 [--ours-env GOMP_SPINCOUNT=300000 ...]

``--busy`` runs one CPU-bound busy-loop process per core during both sides (the state of a worker
running several tasks). ``--ours-env`` adds environment variables to our side only (e.g. to see
the effect of the OpenMP wait policy; a variable set there overrides what the provider would set).

Prints one JSON line per shape: wall seconds, CPU-seconds (user + system, all threads), peak RSS
(and the RSS with the libraries imported and the model loaded, before the clock) and where the
time went (read, Arrow → pandas, predict, write; ours overlaps read and write with predict in
other threads, and its predict seconds are summed over the threads that predict) for both
sides; ``ratio`` = baseline_s / ours_s, ``cpu_ratio`` = baseline_cpu_s / ours_cpu_s, ``memory_ratio`` = ours / baseline peak RSS, ``identical_scores``,
and the load average before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import current_rss_mb, emit, own_peak_rss_mb, peak_rss_mb_of

N_FEATURES = 20
DEFAULT_ROWS = {"numeric": 5_000_000, "mixed": 3_000_000}
MERCHANTS = 20_000
CHANNELS = ["web", "app", "pos", "atm", "phone", "partner"]
MIXED_NUMERIC = ["amount", "balance", "ratio", "age", "velocity", "external_score"]
MIXED_INTEGER = ["hour", "tx_30d"]
MIXED_CATEGORICAL = ["channel", "merchant"]
CHUNK_ROWS_VAR = "BENCH_CHUNK_ROWS"  # --chunk-rows, handed to our side's process


def numeric_frame(rng, n: int):
    import pandas as pd

    return pd.DataFrame(rng.normal(size=(n, N_FEATURES)), columns=[f"f{i}" for i in range(N_FEATURES)])


def mixed_frame(rng, n: int):
    """Heavy tails, NaNs, counts, a 6-level and a ~20k-level categorical (Zipf-like merchant use)."""
    import numpy as np
    import pandas as pd

    def with_nans(values, share):
        values = values.astype(float)
        values[rng.random(n) < share] = np.nan
        return values

    merchant_ids = np.minimum(rng.zipf(1.3, size=n), MERCHANTS) - 1
    merchant_ids = (merchant_ids * 7919) % MERCHANTS  # popular merchants spread over the id space
    return pd.DataFrame({
        "amount": with_nans(rng.lognormal(3.0, 1.5, n), 0.03),
        "balance": with_nans((rng.pareto(1.5, n) + 1) * 1000, 0.05),
        "ratio": with_nans(rng.standard_t(2, n), 0.02),
        "age": with_nans(np.clip(np.round(rng.normal(42, 14, n)), 18, 95), 0.01),
        "velocity": with_nans(rng.exponential(2.0, n), 0.04),
        "external_score": rng.beta(2, 5, n),
        "hour": rng.integers(0, 24, n, dtype=np.int64),
        "tx_30d": rng.negative_binomial(2, 0.2, n).astype(np.int64),
        "channel": rng.choice(CHANNELS, n, p=[0.4, 0.3, 0.15, 0.07, 0.05, 0.03]),
        "merchant": np.char.add("m", merchant_ids.astype(str)).astype(object),
    })


def mixed_label(rng, frame):
    import numpy as np

    merchant_effect = (frame["merchant"].map(hash).to_numpy() % 97) / 97.0 - 0.5
    logit = (0.6 * np.log1p(frame["amount"].fillna(20).to_numpy()) - 2.5
             + 0.8 * (frame["channel"] == "phone").to_numpy() + 1.2 * merchant_effect
             + 0.15 * np.nan_to_num(frame["ratio"].to_numpy()).clip(-5, 5)
             + 0.05 * frame["tx_30d"].to_numpy() - 0.5 * frame["external_score"].to_numpy())
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)


def make_data(path: Path, shape: str, rows: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    step = 500_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        frame = numeric_frame(rng, n) if shape == "numeric" else mixed_frame(rng, n)
        frame.insert(0, "id", np.arange(start, start + n, dtype=np.int64))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table, row_group_size=250_000)
    writer.close()


def make_model(workdir: Path, shape: str) -> str:
    import mlflow
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, TargetEncoder

    from airflow_mlops_provider.operators.training import DEFAULT_TRUSTED_PREFIXES, resolve_trusted_types

    rng = np.random.default_rng(1)
    if shape == "numeric":
        X = numeric_frame(rng, 50_000)
        y = ((X["f0"] + X["f1"] * X["f2"] + rng.normal(size=len(X))) > 0).astype(int)
        model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X, y)
    else:
        X = mixed_frame(rng, 200_000)
        y = mixed_label(rng, X)
        encode = ColumnTransformer([
            ("channel", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["channel"]),
            ("merchant", TargetEncoder(target_type="binary", random_state=0), ["merchant"]),
        ], remainder="passthrough")
        model = Pipeline([("encode", encode),
                          ("model", HistGradientBoostingClassifier(max_iter=100, random_state=0))]).fit(X, y)
    trusted = resolve_trusted_types(model, None, DEFAULT_TRUSTED_PREFIXES)
    # MLflow's hint about integer columns would interleave with the JSON lines on stdout.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("bench")
    exp = experiment.experiment_id if experiment else mlflow.create_experiment(
        "bench", artifact_location=(workdir / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.sklearn.log_model(model, name=f"model-{shape}", input_example=X.head(3),
                                        pyfunc_predict_fn="predict_proba", serialization_format="skops",
                                        skops_trusted_types=trusted, pip_requirements=["scikit-learn"])
    return info.model_uri


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_ours(data: str, out: str, model_uri: str, tracking: str) -> dict:
    from airflow_mlops_provider.core.threads import prepare_scoring_threads

    threads = prepare_scoring_threads()  # as the operator does: before the model (and OpenMP) is loaded
    import mlflow

    from airflow_mlops_provider.core.scoring import score_file, task_scorer

    mlflow.set_tracking_uri(tracking)
    model = mlflow.pyfunc.load_model(model_uri)  # as the operator does, once, before the clock
    features = model.metadata.get_input_schema().input_names()
    loaded_rss = current_rss_mb()
    cpu0, started = _cpu_seconds(), time.perf_counter()
    stats = score_file(data, out, task_scorer(model, "binary"), features, ["id"],
                       constants={"model_version": "1"}, chunk_rows=int(os.environ.get(CHUNK_ROWS_VAR, 100_000)),
                       threads=threads)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu0
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": stats.rows, "peak_rss_mb": own_peak_rss_mb(),
            "loaded_rss_mb": loaded_rss,
            "breakdown": {"read": stats.read_seconds, "to_pandas": stats.convert_seconds,
                          "predict": stats.predict_seconds, "write": stats.write_seconds},
            "threads": threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def run_baseline(data: str, out: str, model_uri: str, tracking: str) -> dict:
    """The ten lines a team would write: read the partition, predict_proba, write."""
    import mlflow
    import pandas as pd
    import pyarrow.parquet as pq

    mlflow.set_tracking_uri(tracking)
    model = mlflow.sklearn.load_model(model_uri)
    features = list(model.feature_names_in_)
    loaded_rss = current_rss_mb()
    cpu0, started = _cpu_seconds(), time.perf_counter()
    table = pq.read_table(data)  # pd.read_parquet, split in its two steps to time them
    t_read = time.perf_counter()
    frame = table.to_pandas()
    del table
    t_pandas = time.perf_counter()
    scores = model.predict_proba(frame[features])[:, 1]
    t_predict = time.perf_counter()
    pd.DataFrame({"id": frame["id"], "score": scores, "model_version": "1"}).to_parquet(out, index=False)
    ended = time.perf_counter()
    return {"seconds": ended - started, "cpu_seconds": _cpu_seconds() - cpu0, "rows": len(frame),
            "peak_rss_mb": own_peak_rss_mb(), "loaded_rss_mb": loaded_rss,
            "breakdown": {"read": t_read - started, "to_pandas": t_pandas - t_read,
                          "predict": t_predict - t_pandas, "write": ended - t_predict}}


def start_busy(n: int) -> list[subprocess.Popen]:
    """One CPU-bound busy loop per core: the competing work of a shared worker."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait()


def compare(shape: str, rows: int, work: Path, tracking: str, busy: bool, ours_env: dict[str, str]) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    model_uri = make_model(work, shape)
    data = work / f"data-{shape}.parquet"
    make_data(data, shape, rows)
    cores = len(os.sched_getaffinity(0))
    results, load_before = {}, os.getloadavg()
    busy_procs = start_busy(cores) if busy else []
    try:
        for mode in ("baseline", "ours"):
            out = work / f"out-{shape}-{mode}.parquet"
            env = {**os.environ, **(ours_env if mode == "ours" else {})}
            cmd = [sys.executable, __file__, "--child", mode, str(data), str(out), model_uri, tracking]
            _, results[mode] = peak_rss_mb_of(cmd, env=env)
    finally:
        stop_busy(busy_procs)
    load_after = os.getloadavg()
    ours_scores = pq.read_table(work / f"out-{shape}-ours.parquet", columns=["id", "score"])
    base_scores = pq.read_table(work / f"out-{shape}-baseline.parquet", columns=["id", "score"])
    same_ids = ours_scores.column("id").equals(base_scores.column("id"))
    o, b = ours_scores.column("score").to_numpy(), base_scores.column("score").to_numpy()
    max_diff = float(np.abs(o - b).max()) if len(o) == len(b) and len(o) else float("inf")
    data.unlink()
    ours, base = results["ours"], results["baseline"]
    r = lambda v: round(v, 3)  # noqa: E731
    return {
        "name": "batch_scoring", "shape": shape, "rows": rows, "busy": busy, "cores": cores,
        "busy_processes": len(busy_procs), "ours_env": ours_env,
        "load_avg_1m_before": r(load_before[0]), "load_avg_1m_after": r(load_after[0]),
        "ours_s": r(ours["seconds"]), "baseline_s": r(base["seconds"]),
        "ratio": r(base["seconds"] / ours["seconds"]),
        "ours_cpu_s": r(ours["cpu_seconds"]), "baseline_cpu_s": r(base["cpu_seconds"]),
        "cpu_ratio": r(base["cpu_seconds"] / ours["cpu_seconds"]),
        "ours_peak_rss_mb": round(ours["peak_rss_mb"], 1), "baseline_peak_rss_mb": round(base["peak_rss_mb"], 1),
        "memory_ratio": r(ours["peak_rss_mb"] / base["peak_rss_mb"]),
        # RSS with the libraries imported and the model loaded, before the clock: the floor of both.
        "ours_loaded_rss_mb": round(ours["loaded_rss_mb"], 1), "baseline_loaded_rss_mb": round(base["loaded_rss_mb"], 1),
        "ours_breakdown_s": {k: r(v) for k, v in ours["breakdown"].items()},
        "baseline_breakdown_s": {k: r(v) for k, v in base["breakdown"].items()},
        "ours_threads": ours["threads"], "ours_omp_wait_policy": ours["omp_wait_policy"],
        "identical_scores": bool(same_ids and len(o) == len(b) == rows and np.array_equal(o, b)),
        "max_abs_diff": max_diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=["numeric", "mixed", "both"], default="both")
    parser.add_argument("--rows", type=int, default=None,
                        help=f"rows per shape (default: {DEFAULT_ROWS})")
    parser.add_argument("--busy", action="store_true", help="one busy-loop process per core during both sides")
    parser.add_argument("--chunk-rows", type=int, default=100_000,
                        help="rows per chunk of our side (MlflowBatchScoreOperator's chunk_rows; default 100,000)")
    parser.add_argument("--ours-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for our side only (repeatable)")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "DATA", "OUT", "MODEL", "TRACKING"))
    args = parser.parse_args()
    if args.child:
        mode, data, out, model_uri, tracking = args.child
        emit((run_ours if mode == "ours" else run_baseline)(data, out, model_uri, tracking))
        return
    ours_env = dict(item.split("=", 1) for item in args.ours_env)
    os.environ[CHUNK_ROWS_VAR] = str(args.chunk_rows)  # read by our side's child
    shapes = ["numeric", "mixed"] if args.shape == "both" else [args.shape]
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tracking = f"sqlite:///{work / 'mlflow.db'}"
        for shape in shapes:
            result = compare(shape, args.rows or DEFAULT_ROWS[shape], work, tracking, args.busy, ours_env)
            emit(result)
            failed |= result["max_abs_diff"] > 1e-12
    if failed:
        sys.exit("the two sides' scores differ")


if __name__ == "__main__":
    main()
