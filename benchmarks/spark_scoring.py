"""Spark vs local scoring: rows/s of each backend on the same partition, and whether the scores are identical.

    uv run --locked --all-extras --no-sync python benchmarks/spark_scoring.py --rows 200000

One process: trains the fraud demo model (binary, scikit-learn) into a throwaway MLOPS_HOME, writes
one partition, then scores it with ``MlflowBatchScoreOperator`` twice — ``scoring_backend="local"``
and ``"spark"`` (a local Spark with a Spark Connect server, started once; its start-up is reported
apart and not counted in the Spark rows/s) — and compares the outputs value for value. Prints one
JSON line per backend and a final comparison line. Figures depend on the machine's load: run both
sides in the same invocation and compare them there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class _TI:
    dag_id, run_id, task_id, try_number, map_index = "bench", "bench", "score", 1, -1

    def xcom_push(self, key, value):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--train-rows", type=int, default=3000)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--repeat", type=int, default=2, help="runs per backend (the best is reported)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="mlops-bench-spark-")) / "mlops"
    os.environ["MLOPS_HOME"] = str(home)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "AIRFLOW_CONN_MLFLOW_DEFAULT"):
        os.environ.pop(name, None)

    import pyarrow.parquet as pq

    from airflow_mlops_provider.core.demo_data import TARGET, generate
    from airflow_mlops_provider.core.settings import mlops_home
    from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator
    from airflow_mlops_provider.operators.registry import MlflowRegisterModelOperator
    from airflow_mlops_provider.operators.training import MlflowTrainModelOperator
    from airflow_mlops_provider.scoring.spark import local_connect_url, spark_session
    from dags.fraud_model import train_fraud_model

    ctx = {"ti": _TI(), "dag_run": None, "dag": None}
    data = mlops_home().ensure().data_dir / "train.parquet"
    generate(args.train_rows, seed=1).to_parquet(data, index=False)
    trained = MlflowTrainModelOperator(task_id="train", train_callable=train_fraud_model, data_path=str(data),
                                       target=TARGET, experiment_name="bench", id_columns=["transaction_id"],
                                       train_params={"max_iter": 30},
                                       pip_requirements=["scikit-learn", "skops"]).execute(ctx)
    MlflowRegisterModelOperator(task_id="register", name="bench-fraud", run_id=trained["run_id"],
                                alias="champion").execute(ctx)
    src = home / "data" / "partition.parquet"
    generate(args.rows, seed=7).drop(columns=[TARGET]).to_parquet(src, index=False, row_group_size=100_000)

    t0 = time.monotonic()
    local_connect_url(args.master)
    spark_session(None, master=args.master).range(1).count()
    print(json.dumps({"bench": "spark_scoring", "step": "spark_start", "seconds": round(time.monotonic() - t0, 2),
                      "master": args.master}), flush=True)

    outputs, best = {}, {}
    for backend in ("local", "spark"):
        out = home / "outputs" / f"{backend}.parquet"
        for _ in range(args.repeat):
            started = time.monotonic()
            result = MlflowBatchScoreOperator(
                task_id="score", model_name="bench-fraud", input_path=str(src), output_path=str(out),
                key_columns=["transaction_id"], scoring_backend=backend,
                backend_config={"master": args.master} if backend == "spark" else None).execute(ctx)
            seconds = time.monotonic() - started
            if backend not in best or seconds < best[backend]:
                best[backend] = seconds
        outputs[backend] = pq.read_table(out)
        print(json.dumps({"bench": "spark_scoring", "backend": backend, "rows": result["rows"],
                          "seconds": round(best[backend], 3), "rows_per_second": round(result["rows"] / best[backend]),
                          "task_seconds_incl_model_load": round(best[backend], 3)}), flush=True)
    a, b = outputs["local"], outputs["spark"]
    identical = a.schema == b.schema and all(a.column(c).to_pylist() == b.column(c).to_pylist()
                                             for c in a.column_names)
    print(json.dumps({"bench": "spark_scoring", "compare": "spark_vs_local", "rows": a.num_rows,
                      "identical_scores": identical, "same_schema": a.schema == b.schema,
                      "spark_over_local_rows_per_second": round(best["local"] / best["spark"], 3),
                      "cores": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
