"""Batch scoring benchmark: our streaming scorer vs a plain read → predict → write.

Side by side in one run, each measured in its own fresh process (so peak RSS is its own):
5M rows x 20 features scored by a HistGradientBoosting model logged to MLflow. Both sides load
the model first; the clock covers read -> predict -> write of the whole file.

    python benchmarks/scoring.py [--rows 5000000] [--small-rows 500000]

Prints one JSON object: name, rows, ours_s, baseline_s, ratio (baseline_s / ours_s),
ours_peak_rss_mb, baseline_peak_rss_mb, plus our peak RSS at the small size and the
memory growth factor (goal: <= 1.5).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, own_peak_rss_mb, peak_rss_mb_of

N_FEATURES = 20


def make_data(path: Path, rows: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    step = 500_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        cols = {"id": pa.array(np.arange(start, start + n, dtype=np.int64))}
        for i in range(N_FEATURES):
            cols[f"f{i}"] = pa.array(rng.normal(size=n))
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table, row_group_size=250_000)
    writer.close()


def make_model(workdir: Path) -> str:
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(50_000, N_FEATURES)), columns=[f"f{i}" for i in range(N_FEATURES)])
    y = ((X["f0"] + X["f1"] * X["f2"] + rng.normal(size=len(X))) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X, y)
    from airflow_mlops_provider.operators.training import DEFAULT_TRUSTED_PREFIXES, resolve_trusted_types

    trusted = resolve_trusted_types(model, None, DEFAULT_TRUSTED_PREFIXES)
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = mlflow.create_experiment("bench", artifact_location=(workdir / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(3),
                                        pyfunc_predict_fn="predict_proba", serialization_format="skops",
                                        skops_trusted_types=trusted)
    return info.model_uri


def run_ours(data: str, out: str, model_uri: str, tracking: str) -> dict:
    import mlflow

    from airflow_mlops_provider.core.scoring import score_file, task_scorer

    mlflow.set_tracking_uri(tracking)
    model = mlflow.pyfunc.load_model(model_uri)  # as the operator does, once, before the clock
    features = model.metadata.get_input_schema().input_names()
    started = time.perf_counter()
    stats = score_file(data, out, task_scorer(model, "binary"), features, ["id"],
                       constants={"model_version": "1"}, chunk_rows=100_000)
    return {"seconds": time.perf_counter() - started, "rows": stats.rows, "peak_rss_mb": own_peak_rss_mb()}


def run_baseline(data: str, out: str, model_uri: str, tracking: str) -> dict:
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(tracking)
    model = mlflow.sklearn.load_model(model_uri)
    started = time.perf_counter()
    frame = pd.read_parquet(data)
    features = [f"f{i}" for i in range(N_FEATURES)]
    scores = model.predict_proba(frame[features])[:, 1]
    pd.DataFrame({"id": frame["id"], "score": scores, "model_version": "1"}).to_parquet(out, index=False)
    return {"seconds": time.perf_counter() - started, "rows": len(frame), "peak_rss_mb": own_peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--small-rows", type=int, default=500_000)
    parser.add_argument("--child", nargs=5, metavar=("MODE", "DATA", "OUT", "MODEL", "TRACKING"))
    args = parser.parse_args()
    if args.child:
        mode, data, out, model_uri, tracking = args.child
        emit((run_ours if mode == "ours" else run_baseline)(data, out, model_uri, tracking))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_uri = make_model(work)
        tracking = f"sqlite:///{work / 'mlflow.db'}"
        results = {}
        for label, rows in (("small", args.small_rows), ("large", args.rows)):
            data = work / f"data-{rows}.parquet"
            make_data(data, rows)
            for mode in ("baseline", "ours"):
                out = work / f"out-{mode}-{rows}.parquet"
                _, payload = peak_rss_mb_of([sys.executable, __file__, "--child", mode, str(data), str(out),
                                             model_uri, tracking])
                results[(label, mode)] = payload
            import pyarrow.parquet as pq

            ours_out = pq.read_table(work / f"out-ours-{rows}.parquet", columns=["score"]).column(0).to_numpy()
            base_out = pq.read_table(work / f"out-baseline-{rows}.parquet", columns=["score"]).column(0).to_numpy()
            assert len(ours_out) == len(base_out) == rows and (abs(ours_out - base_out) < 1e-12).all()
            data.unlink()
        large_o, large_b = results[("large", "ours")], results[("large", "baseline")]
        emit({
            "name": "batch_scoring",
            "rows": args.rows,
            "features": N_FEATURES,
            "ours_s": round(large_o["seconds"], 2),
            "baseline_s": round(large_b["seconds"], 2),
            "ratio": round(large_b["seconds"] / large_o["seconds"], 3),
            "ours_peak_rss_mb": round(large_o["peak_rss_mb"], 1),
            "baseline_peak_rss_mb": round(large_b["peak_rss_mb"], 1),
            "small_rows": args.small_rows,
            "ours_small_peak_rss_mb": round(results[("small", "ours")]["peak_rss_mb"], 1),
            "ours_rss_growth": round(large_o["peak_rss_mb"] / results[("small", "ours")]["peak_rss_mb"], 3),
            "identical_scores": True,
        })


if __name__ == "__main__":
    main()
