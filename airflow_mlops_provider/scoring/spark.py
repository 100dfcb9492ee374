"""The ``spark`` scoring backend: one partition scored by Spark with ``mlflow.pyfunc.spark_udf``.

In a DAG: ``score`` (one ``MlflowBatchScoreOperator`` with ``scoring_backend="spark"``) → ``commit``
(the same :class:`~airflow_mlops_provider.operators.batch.ParquetCommitShardsOperator` as the local
path: row-count check against the input's footer, the manifest in the Parquet footer, one atomic
publish). Inside ``score``:

* the session is Spark Connect: ``spark_conn_id`` names an Airflow connection of the Spark
  provider (type ``spark_connect``, :class:`~airflow.providers.apache.spark.hooks.spark_connect.SparkConnectHook`);
  without one, a local Spark with a Spark Connect server on a free loopback port is started in the
  task's process (the laptop path; needs the full ``pyspark`` package and a Java 17 runtime);
* the model is ``mlflow.pyfunc.spark_udf`` on ``models:/<name>/<version>``, the version the run
  pinned when it started (never the alias again);
* the task type's output columns come from the same
  :meth:`~airflow_mlops_provider.core.task_types.TaskType.output_columns` as the local path, applied
  by Spark to the UDF's raw output, so both backends write the same values;
* input checks as in the local path: missing or retyped columns (from the footer), ±inf in a
  numeric feature, fractional values in a ``long`` column — counted by Spark, named by column;
* Spark writes part files to a staging folder; they are merged, in partition order and with the
  local path's column types, into ``output_path``; a row count that differs from the input's fails;
* the shadow comparison (``mean_abs_diff``, ``decision_agreement``) and the prediction summary
  (per output column: count, mean, std, min, max; class counts for a label column) are Spark
  aggregations: no row is collected to the driver.

The executors load the model themselves (``env_manager="local"``: the executors' Python must have
the model's libraries and this package's ``core``) from the MLflow tracking URI of the task.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops_provider.core.scoring import (
    ScoreStats,
    ScoringInputError,
    check_columns,
    model_error_summary,
)
from airflow_mlops_provider.scoring import ScoringJob, ScoringTasks

#: The scored file ``score`` writes for ``commit`` (on the worker's disk, like the local shards).
STAGING_PATH = ("{{ mlops_home() }}/outputs/staging/{{ dag.dag_id }}/{{ run_id | replace(':', '_') }}"
                "/spark.parquet")
#: Arrow type names (``TaskType.output_types``) as Spark DDL types.
SPARK_TYPES = {"float64": "double", "double": "double", "float32": "float", "float": "float", "int64": "bigint",
               "int32": "int", "string": "string", "large_string": "string", "bool": "boolean"}
_RAW, _SHADOW_RAW = "__mlops_raw", "__mlops_shadow_raw"
_LOCK = threading.Lock()
_LOCAL: dict[str, Any] = {}


@dataclass
class SparkScoreStats(ScoreStats):
    """:class:`~airflow_mlops_provider.core.scoring.ScoreStats` plus the prediction summary Spark computed."""

    summary: dict[str, Any] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_connect_url(master: str = "local[*]") -> str:
    """Start, once per process, a local Spark with a Spark Connect server on a free loopback port; its URL.

    The executors' Python is this interpreter (``spark.pyspark.python``), so they import the same
    model libraries as the task. Needs the full ``pyspark`` package (its jars) and ``java`` 17+.
    """
    with _LOCK:
        if "url" in _LOCAL:
            return _LOCAL["url"]
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise RuntimeError("a local Spark session needs a Java 17+ runtime (`java` on PATH or JAVA_HOME); "
                               "install Debian's openjdk-17-jre-headless (scripts/install_system_packages.sh) "
                               "or set spark_conn_id to a Spark Connect server")
        from pyspark.sql import SparkSession

        port = _free_port()
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        classic = (SparkSession.builder.master(master).appName("airflow-mlops-provider scoring")
                   .config("spark.api.mode", "classic")
                   .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
                   .config("spark.connect.grpc.binding.address", "127.0.0.1")
                   .config("spark.connect.grpc.binding.port", str(port))
                   .config("spark.pyspark.python", sys.executable)
                   .config("spark.ui.enabled", "false")
                   .config("spark.sql.shuffle.partitions", "4")
                   .getOrCreate())
        _LOCAL.update(classic=classic, url=f"sc://127.0.0.1:{port}")
        return _LOCAL["url"]


def spark_session(spark_conn_id: str | None = None, *, master: str = "local[*]") -> Any:
    """A Spark Connect session: through the Spark provider's ``spark_connect`` connection
    ``spark_conn_id``, or (None) a local Spark started in this process (:func:`local_connect_url`)."""
    if spark_conn_id:
        from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

        url = SparkConnectHook(conn_id=spark_conn_id).get_connection_url()
    else:
        url = local_connect_url(master)
    with _LOCK:
        # pyspark.sql.functions (and mlflow's spark_udf, through pandas_udf) build Connect columns
        # only in Connect mode: the flag pyspark's own remote("local") sets beside its local server.
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
        session = _LOCAL.get(("session", url))
        if session is None or session.is_stopped:
            from pyspark.sql.connect.session import SparkSession as ConnectSession

            session = ConnectSession.builder.remote(url).create()
            _LOCAL[("session", url)] = session
        return session


def _output_schema(key_fields: Sequence[Any], outputs: dict[str, str], shadow: str | None) -> str:
    cols = [f"`{f.name}` {f.dataType.simpleString()}" for f in key_fields]
    cols += [f"`{name}` {SPARK_TYPES[t]}" for name, t in outputs.items()]
    if shadow:
        cols.append(f"`shadow_{shadow}` {SPARK_TYPES[outputs[shadow]]}")
    return ", ".join(cols)


def _task_outputs(task: Any, classes: Sequence[Any] | None, shadow_classes: Sequence[Any] | None,
                  keys: Sequence[str], shadow: str | None) -> Any:
    """The ``mapInPandas`` function: the UDF's raw output -> the task type's columns (the local path's code)."""

    def convert(frames: Any) -> Any:
        import numpy as np
        import pandas as pd

        for frame in frames:
            raw = np.vstack(frame[_RAW].to_numpy()) if frame[_RAW].dtype == object else frame[_RAW].to_numpy()
            out = {k: frame[k] for k in keys}
            for name, values in task.output_columns(raw, classes).items():
                out[name] = values
            if shadow:
                sraw = frame[_SHADOW_RAW]
                sraw = np.vstack(sraw.to_numpy()) if sraw.dtype == object else sraw.to_numpy()
                out[f"shadow_{shadow}"] = task.output_columns(sraw, shadow_classes)[shadow]
            yield pd.DataFrame(out, index=frame.index)

    return convert


def _check_values(df: Any, expected: dict[str, str] | None, path: str) -> None:
    """±inf in a floating feature, fractional values in a ``long``/``integer`` one: counted by Spark."""
    from pyspark.sql.connect import functions as F

    floating = {f.name for f in df.schema.fields if f.dataType.typeName() in ("double", "float")}
    aggs = []
    for column, kind in (expected or {}).items():
        if column not in floating:
            continue
        c = F.col(f"`{column}`")
        aggs.append(F.sum(F.when(F.isnan(c) | c.isNull(), 0).when(c.isin(float("inf"), float("-inf")), 1)
                          .otherwise(0)).alias(f"inf:{column}"))
        if kind in ("long", "integer"):
            aggs.append(F.sum(F.when(F.isnan(c) | c.isNull() | c.isin(float("inf"), float("-inf")), 0)
                              .when(c != F.floor(c), 1).otherwise(0)).alias(f"frac:{column}"))
    if not aggs:
        return
    counts = df.agg(*aggs).first().asDict()
    for name, count in counts.items():
        if not count:
            continue
        reason, column = name.split(":", 1)
        if reason == "inf":
            raise ScoringInputError(f"input partition {path!r}: column {column!r} holds {count} infinite value(s) "
                                    "(+inf/-inf); the model needs finite numbers", path=path, column=column,
                                    reason="non_finite", count=count)
        raise ScoringInputError(f"input partition {path!r}: column {column!r} holds {count} fractional value(s); "
                                f"the model's signature says {expected[column]!r} (whole numbers)", path=path,
                                column=column, reason="fractional", count=count)


def _summary(df: Any, outputs: dict[str, str], categorical: bool, primary: str, shadow: str | None,
             threshold: float | None) -> tuple[dict[str, Any], dict[str, float]]:
    """The prediction summary and the shadow comparison, as Spark aggregations over the scored rows."""
    from pyspark.sql.connect import functions as F

    numeric = [c for c, t in outputs.items() if t in ("float64", "double", "float32", "float")
               and not (categorical and c == primary)]
    aggs = [F.count(F.lit(1)).alias("rows")]
    for c in numeric:
        col = F.col(f"`{c}`")
        aggs += [F.mean(col).alias(f"{c}|mean"), F.stddev_samp(col).alias(f"{c}|std"),
                 F.min(col).alias(f"{c}|min"), F.max(col).alias(f"{c}|max")]
    if shadow:
        live, other = F.col(f"`{primary}`"), F.col(f"`shadow_{primary}`")
        if categorical or outputs[primary] not in ("float64", "double", "float32", "float"):
            aggs.append(F.mean((live == other).cast("double")).alias("|decision_agreement"))
        else:
            aggs.append(F.mean(F.abs(other - live)).alias("|mean_abs_diff"))
            if threshold is not None:
                aggs.append(F.mean(((other >= threshold) == (live >= threshold)).cast("double"))
                            .alias("|decision_agreement"))
    row = df.agg(*aggs).first().asDict()
    summary: dict[str, Any] = {"rows": int(row.pop("rows"))}
    shadow_stats: dict[str, float] = {}
    for key, value in row.items():
        column, stat = key.split("|", 1)
        if not column:
            shadow_stats[stat] = float(value) if value is not None else float("nan")
        else:
            summary.setdefault(column, {})[stat] = float(value) if value is not None else None
    if categorical:
        counts = df.groupBy(F.col(f"`{primary}`").alias("c")).count().limit(1000).collect()  # one row per class
        summary[primary] = {"counts": {str(r["c"]): int(r["count"]) for r in counts}}
    return summary, shadow_stats


def _merge_parts(parts: Sequence[Path], target: Path, job: ScoringJob, input_schema: Any,
                 outputs: dict[str, str], shadow: str | None) -> int:
    """Spark's part files, in partition order, into one Parquet file with the local path's column types."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops_provider.core.files import atomic_path

    fields = [input_schema.field(k) for k in job.key_columns]
    fields += [pa.field(n, pa.type_for_alias(t)) for n, t in outputs.items()]
    if shadow:
        fields.append(pa.field(f"shadow_{shadow}", pa.type_for_alias(outputs[shadow])))
    dictionary = pa.dictionary(pa.int32(), pa.string())
    fields += [pa.field(c, dictionary) for c in job.constants]
    schema = pa.schema(fields)
    rows = 0
    with atomic_path(target) as tmp, pq.ParquetWriter(str(tmp), schema, compression="zstd") as writer:
        for part in parts:
            pf = pq.ParquetFile(str(part))
            for batch in pf.iter_batches(batch_size=100_000):
                columns = [batch.column(f.name).cast(f.type) for f in schema if f.name not in job.constants]
                columns += [pa.array([value] * batch.num_rows, type=pa.string()).dictionary_encode()
                            for value in job.constants.values()]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                rows += batch.num_rows
    return rows


class SparkScoringBackend:
    name = "spark"

    def tasks(self, *, model_name: str, model_version: Any, input_path: str, output_path: str,
              expected_rows: Any, key_columns: Sequence[str], shadow_alias: str, shards: Any,
              config: dict[str, Any] | None = None) -> ScoringTasks:
        """``score`` → ``commit``; ``config``: the model's ``scoring_config`` (``spark_conn_id``,
        ``master``, ``spark_staging_path``, ``spark_input_path``), handed to the scoring task."""
        from airflow_mlops_provider.operators.batch import (
            MlflowBatchScoreOperator,
            ParquetCommitShardsOperator,
        )

        score = MlflowBatchScoreOperator(
            task_id="score", model_name=model_name, model_version=model_version, input_path=input_path,
            output_path=STAGING_PATH, key_columns=list(key_columns), shadow_alias=shadow_alias,
            scoring_backend=self.name, backend_config=dict(config or {}))
        commit = ParquetCommitShardsOperator(task_id="commit", shards=[score.output], expected_rows=expected_rows,
                                             input_path=input_path, output_path=output_path,
                                             scoring_backend=self.name)
        score >> commit
        return ScoringTasks(first=score, score=score, commit=commit)

    def score(self, job: ScoringJob, storage: Any) -> SparkScoreStats:
        import mlflow.pyfunc
        from pyspark.sql.connect import functions as F

        started = time.monotonic()
        config = dict(job.extra or {})
        task = job.scorer.task
        classes = getattr(job.scorer, "classes", None)
        outputs = dict(job.scorer.columns)
        primary = next(iter(outputs))
        with storage.parquet(job.input_path) as pf:  # the footer: the local path's column checks, same words
            input_schema = pf.schema_arrow
            total = pf.metadata.num_rows
        check_columns(input_schema, job.features, job.expected_types, job.key_columns, job.input_path)
        spark = spark_session(config.get("spark_conn_id"), master=config.get("master") or "local[*]")
        df = spark.read.parquet(config.get("spark_input_path") or str(job.input_path))
        _check_values(df, job.expected_types, job.input_path)
        result_type = "array<double>" if task.predict_method == "predict_proba" else "double"
        uri = f"models:/{job.model_name}/{job.model_version}"  # the pinned version, never the alias
        # MLflow's UDF hands the executors the driver's tracking URI, not its registry URI: an executor
        # resolves models:/ against its own environment's MLFLOW_REGISTRY_URI (whatever the Spark
        # server was started with) unless it is given this connection's.
        registry = {"MLFLOW_REGISTRY_URI": mlflow.get_registry_uri(), "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
        model = mlflow.pyfunc.spark_udf(spark, uri, result_type=result_type, env_manager="local", extra_env=registry)
        features = [F.col(f"`{c}`") for c in job.features]
        scored = df.select(*[F.col(f"`{k}`") for k in job.key_columns], model(*features).alias(_RAW))
        shadow = None
        if job.shadow_scorer is not None and config.get("shadow_version"):
            shadow = primary
            shadow_model = mlflow.pyfunc.spark_udf(spark, f"models:/{job.model_name}/{config['shadow_version']}",
                                                   result_type=result_type, env_manager="local", extra_env=registry)
            scored = df.select(*[F.col(f"`{k}`") for k in job.key_columns], model(*features).alias(_RAW),
                               shadow_model(*features).alias(_SHADOW_RAW))
        key_fields = [f for f in df.schema.fields if f.name in set(job.key_columns)]
        key_fields.sort(key=lambda f: list(job.key_columns).index(f.name))
        out = scored.mapInPandas(
            _task_outputs(task, classes, getattr(job.shadow_scorer, "classes", None), list(job.key_columns), shadow),
            _output_schema(key_fields, outputs, shadow))
        staging = config.get("spark_staging_path") or tempfile.mkdtemp(prefix="mlops-spark-")
        staging = f"{staging.rstrip('/')}/{uuid.uuid4().hex}"
        t0 = time.monotonic()
        try:
            try:
                out.write.mode("overwrite").option("compression", "zstd").parquet(staging)
            except Exception as err:  # noqa: BLE001 - re-raised, named, without the rows
                raise ScoringInputError(f"the model could not score {job.input_path!r} on Spark: "
                                        f"{model_error_summary(_root_cause(err))}", path=job.input_path) from None
            predict_seconds = time.monotonic() - t0
            written = spark.read.parquet(staging)
            summary, shadow_stats = _summary(written, outputs, task.categorical_output, primary, shadow,
                                             job.shadow_threshold)
            with tempfile.TemporaryDirectory(prefix="mlops-spark-merge-") as tmp:
                workdir = Path(tmp)
                parts = sorted(p for p in storage.path(staging).iterdir() if p.name.endswith(".parquet"))
                local_parts = []
                for i, part in enumerate(parts):
                    (workdir / str(i)).mkdir()
                    local_parts.append(storage.local_copy(str(part), workdir / str(i)))
                local_out = storage.local_target(job.output_path, workdir, "scored.parquet")
                rows = _merge_parts(local_parts, local_out, job, input_schema, outputs, shadow)
                if rows != total:
                    raise RuntimeError(f"Spark scored {rows} rows of {job.input_path!r}, which has {total}; "
                                       "output withdrawn")
                storage.publish(local_out, job.output_path)
        finally:
            _remove(storage, staging)
        stats = SparkScoreStats(rows=rows, batches=len(parts), seconds=time.monotonic() - started,
                                predict_seconds=predict_seconds, summary=summary)
        if shadow:
            stats.shadow = shadow_stats
        return stats


def _root_cause(err: BaseException) -> BaseException:
    """Spark Connect wraps the Python worker's error: the message after the last ``Error:`` line
    is the model's own."""
    text = str(err)
    for marker in ("MlflowException: ", "ValueError: ", "KeyError: ", "TypeError: "):
        if marker in text:
            tail = text.rsplit(marker, 1)[1].strip().splitlines()
            return type(err)(f"{marker.rstrip(': ')}: {tail[0] if tail else ''}")
    return err


def _remove(storage: Any, uri: str) -> None:
    from airflow_mlops_provider.hooks.storage import is_remote

    if not is_remote(uri):
        shutil.rmtree(uri, ignore_errors=True)
        return
    try:
        path = storage.path(uri)
        path.fs.rm(path.path, recursive=True)
    except Exception:  # noqa: BLE001 - best effort: a staging folder left behind holds no output
        pass


__all__ = ["SPARK_TYPES", "STAGING_PATH", "SparkScoreStats", "SparkScoringBackend", "local_connect_url",
           "spark_session"]
