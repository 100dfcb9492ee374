"""Reason-code benchmark: batch scoring rows/s with and without ``explain_top_k``.

Side by side in one run and one process: the demo fraud data, scored by models logged to MLflow
(sqlite store) and loaded through pyfunc as the operator does; both sides go through
:func:`airflow_mlops_provider.core.scoring.score_file` with the same chunks, one with the plain
task scorer, one wrapped in :class:`airflow_mlops_provider.core.explain.ReasonCodeScorer` (top 3).

    python benchmarks/explain.py [--rows 100000] [--agnostic-rows 300]

Prints one JSON line per model: name, model, method, rows, top_k, plain_rows_per_s,
explain_rows_per_s, slowdown (explain seconds / plain seconds), process_peak_rss_mb. The model-agnostic method
(``shap.permutation``) is measured on ``--agnostic-rows`` rows only: it costs about
(2 × features + 1) × background rows predictions a row.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, own_peak_rss_mb

TOP_K = 3


def models(X, y):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from dags.fraud_model import train_fraud_model

    numeric = [c for c in X.columns if X[c].dtype != object]
    categorical = [c for c in X.columns if X[c].dtype == object]
    linear = Pipeline([("pre", ColumnTransformer([("num", StandardScaler(), numeric),
                                                  ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)])),
                       ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    return {"hgb_pipeline": train_fraud_model(X, y, max_iter=100), "logistic_pipeline": linear}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--agnostic-rows", type=int, default=300)
    parser.add_argument("--chunk-rows", type=int, default=20_000)
    args = parser.parse_args()

    import mlflow
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mlflow.models import infer_signature

    from airflow_mlops_provider.core.demo_data import TARGET, generate
    from airflow_mlops_provider.core.explain import Explainer, ReasonCodeScorer
    from airflow_mlops_provider.core.scoring import score_file, task_scorer

    train = generate(20_000, seed=0)
    X, y = train.drop(columns=[TARGET, "transaction_id"]), train[TARGET]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
        exp = mlflow.create_experiment("bench", artifact_location=(work / "artifacts").as_uri())
        data = work / "in.parquet"
        pq.write_table(pa.Table.from_pandas(generate(args.rows, seed=5).drop(columns=[TARGET]), preserve_index=False),
                       data, row_group_size=50_000)
        small = work / "small.parquet"
        pq.write_table(pq.read_table(data).slice(0, args.agnostic_rows), small)
        features = list(X.columns)
        for name, est in models(X, y).items():
            with mlflow.start_run(experiment_id=exp):
                info = mlflow.sklearn.log_model(est, name="model", pyfunc_predict_fn="predict_proba",
                                                signature=infer_signature(X, est.predict_proba(X.head(5))),
                                                serialization_format="cloudpickle",
                                                pip_requirements=["scikit-learn"])  # no slow inference
            model = mlflow.pyfunc.load_model(info.model_uri)
            cases = [("auto", data)] + [("shap.permutation", small)]
            for method, path in cases:
                scorer = task_scorer(model, "binary")
                started = time.perf_counter()
                plain = score_file(path, work / "plain.parquet", scorer, features, ["transaction_id"],
                                   chunk_rows=args.chunk_rows)
                plain_s = time.perf_counter() - started
                explainer = Explainer(model, X, features=features, scorer=task_scorer(model, "binary"),
                                      method=method)
                reasons = ReasonCodeScorer(task_scorer(model, "binary"), explainer, TOP_K)
                started = time.perf_counter()
                explained = score_file(path, work / "explained.parquet", reasons, features, ["transaction_id"],
                                       chunk_rows=args.chunk_rows)
                explain_s = time.perf_counter() - started
                assert pq.read_metadata(work / "explained.parquet").num_rows == explained.rows == plain.rows
                emit({"name": "explain_top_k", "model": name, "method": explainer.method, "rows": plain.rows,
                      "top_k": TOP_K, "plain_rows_per_s": round(plain.rows / plain_s, 1),
                      "explain_rows_per_s": round(explained.rows / explain_s, 1),
                      "slowdown": round(explain_s / plain_s, 2), "process_peak_rss_mb": round(own_peak_rss_mb(), 1)})


if __name__ == "__main__":
    main()
