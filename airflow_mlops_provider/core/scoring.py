"""Streaming batch scoring: Arrow record batches in, predictions out, one atomic file.

Reading, predicting and writing overlap: a reader thread decodes the next record batches and a
writer thread encodes finished ones while the model predicts (pyarrow and most model libraries
release the GIL), so a partition costs little more than the prediction itself. Memory is
bounded by ``chunk_rows`` times the queue depth, never by the input size. Nothing is visible at
the output path until the whole file is written, fsynced and renamed into place.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops_provider.core.files import atomic_path
from airflow_mlops_provider.exceptions import DataFileError

log = logging.getLogger(__name__)

_DONE = object()


class ScoringInputError(DataFileError):
    """The input cannot be scored: missing or retyped columns, unreadable file."""


@dataclass
class ScoreStats:
    rows: int = 0
    batches: int = 0
    seconds: float = 0.0
    predict_seconds: float = 0.0
    # Where the time went, per stage (the reader and writer threads overlap the prediction):
    read_seconds: float = 0.0  # decoding Parquet into Arrow batches (reader thread)
    convert_seconds: float = 0.0  # Arrow -> pandas
    write_seconds: float = 0.0  # encoding and writing the output (writer thread)
    threads: int | None = None  # the thread limit of the model's libraries, if one was set
    shadow: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def open_parquet(path: Any, *, name: str | None = None) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` for ``path`` (a local path or an open binary file);
    errors name ``name`` (default: the path)."""
    import pyarrow.parquet as pq

    label = name if name is not None else str(path)
    try:
        # pre_buffer=False: with pre-buffering pyarrow keeps every row group it read (RSS grows
        # with the file); without it, memory stays bounded by the batch size.
        pf = pq.ParquetFile(path if hasattr(path, "read") else str(path), pre_buffer=False)
    except FileNotFoundError as err:
        raise ScoringInputError(f"input partition {label!r} does not exist", path=label) from err
    except Exception as err:  # pyarrow raises ArrowInvalid or OSError for a corrupt file
        raise ScoringInputError(f"input partition {label!r} is not a readable Parquet file: {err}",
                                path=label) from err
    names = pf.schema_arrow.names
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise ScoringInputError(f"input partition {label!r} has duplicate column names {repeated}; every "
                                "column must be named once", path=label, columns=repeated)
    return pf


def plan_shards(source: Any, shards: int) -> list[list[int]]:
    """Split a Parquet file's row groups into at most ``shards`` balanced lists.

    ``source``: an open ``ParquetFile`` (as the storage hook opens it) or a local path."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    meta = (source if hasattr(source, "metadata") else open_parquet(source)).metadata
    sizes = [(meta.row_group(g).num_rows, g) for g in range(meta.num_row_groups)]
    plan: list[list[int]] = [[] for _ in range(min(shards, max(len(sizes), 1)))]
    loads = [0] * len(plan)
    for rows, group in sorted(sizes, reverse=True):  # greedy: biggest group to the lightest shard
        i = loads.index(min(loads))
        plan[i].append(group)
        loads[i] += rows
    return [sorted(p) for p in plan]


def check_columns(schema: Any, features: Sequence[str], expected_types: dict[str, str] | None,
                  key_columns: Sequence[str], path: str) -> None:
    """Fail before scoring when a feature or key column is missing or has another type family."""
    import pyarrow as pa

    names = set(schema.names)
    missing = [c for c in [*key_columns, *features] if c not in names]
    if missing:
        raise ScoringInputError(f"input partition {path!r} lacks columns {missing}", path=path, columns=missing)
    for column, expected in (expected_types or {}).items():
        if column not in names:
            continue
        actual = schema.field(column).type
        numeric = pa.types.is_integer(actual) or pa.types.is_floating(actual)
        ok = {
            "string": pa.types.is_string(actual) or pa.types.is_large_string(actual) or pa.types.is_dictionary(actual),
            "double": numeric, "float": numeric, "long": numeric, "integer": numeric,
            "boolean": pa.types.is_boolean(actual) or pa.types.is_integer(actual),
        }.get(expected, True)
        if not ok:
            raise ScoringInputError(f"input partition {path!r}: column {column!r} has type {actual}, "
                                    f"the model expects {expected}", path=path, column=column)


def check_values(batch: Any, expected_types: dict[str, str] | None, path: str, first_row: int) -> None:
    """Refuse a chunk whose values the model's signature cannot hold, naming the column, never a row.

    ±inf in a numeric feature is no measurement (NaN, a missing value, is left to the model), and a
    fractional value in a ``long``/``integer`` column would be truncated or refused by the model.
    The check runs on every chunk: after the first, scikit-learn chunks skip MLflow's enforcement.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for column, expected in (expected_types or {}).items():
        if column not in batch.schema.names:
            continue
        values = batch.column(column)
        if not pa.types.is_floating(values.type):
            continue
        infinite = pc.sum(pc.is_inf(values)).as_py() or 0
        if infinite:
            raise ScoringInputError(
                f"input partition {path!r}: column {column!r} holds {infinite} infinite value(s) (+inf/-inf) in "
                f"rows {first_row}..{first_row + batch.num_rows - 1}; the model needs finite numbers",
                path=path, column=column, reason="non_finite", count=infinite)
        if expected in ("long", "integer"):
            valid = pc.drop_null(values)
            fractional = pc.sum(pc.not_equal(valid, pc.floor(valid))).as_py() or 0
            if fractional:
                raise ScoringInputError(
                    f"input partition {path!r}: column {column!r} holds {fractional} fractional value(s) in rows "
                    f"{first_row}..{first_row + batch.num_rows - 1}; the model's signature says {expected!r} "
                    "(whole numbers)", path=path, column=column, reason="fractional", count=fractional)


def model_error_summary(err: BaseException, limit: int = 300) -> str:
    """What a model's failure says, without the rows it may quote.

    MLflow's schema enforcement wraps the real cause ("Incompatible input types for column amount.
    Can not safely convert float64 to int64.") in a message that begins with the whole input frame;
    its first line is a table header. The cause is the exception it was raised from (or follows
    ``Error:``); other errors keep their first line.
    """
    text = str(err)
    if "Failed to enforce schema" in text:
        cause = err.__cause__ or err.__context__
        reason = str(cause) if cause is not None else text.rsplit("Error: ", 1)[-1]
        return f"the input does not match the model's signature: {(reason.splitlines() or [''])[0][:limit]}"
    return f"{type(err).__name__}: {(text.splitlines() or [''])[0][:limit]}"


def _joined(item: Any, parts: list[tuple[Any, dict[str, Any], Any, float, float]]) -> tuple[Any, dict[str, Any], Any, float, float]:
    """The predictions of a chunk's slices (in order) as those of the whole chunk."""
    import numpy as np

    def concat(outputs: list[dict[str, Any]]) -> dict[str, Any]:
        return {name: np.concatenate([np.asarray(o[name]) for o in outputs]) for name in outputs[0]}

    shadows = [p[2] for p in parts]
    return (item, concat([p[1] for p in parts]), None if shadows[0] is None else concat(shadows),
            sum(p[3] for p in parts), sum(p[4] for p in parts))


def _producer(batches: Iterator[Any], out: queue.Queue, stop: threading.Event, stats: ScoreStats) -> None:
    try:
        while True:
            t0 = time.monotonic()
            batch = next(batches, _DONE)
            stats.read_seconds += time.monotonic() - t0
            if batch is _DONE:
                break
            if stop.is_set():
                return
            out.put(batch)
        out.put(_DONE)
    except BaseException as err:  # noqa: BLE001 - handed to the consumer, which re-raises
        out.put(err)


def score_file(
    input_path: str | Path,
    output_path: str | Path,
    predict: Callable[[Any], Any],
    features: Sequence[str],
    key_columns: Sequence[str] = (),
    *,
    constants: dict[str, Any] | None = None,
    chunk_rows: int = 100_000,
    prediction_column: str = "score",
    expected_types: dict[str, str] | None = None,
    shadow_predict: Callable[[Any], Any] | None = None,
    shadow_threshold: float | None = None,
    shadow_labels: bool = False,
    row_groups: Sequence[int] | None = None,
    progress_every: float = 10.0,
    threads: int | None = None,
) -> ScoreStats:
    """Score ``input_path`` (Parquet) into ``output_path`` (Parquet), atomically.

    ``predict`` takes a pandas DataFrame of ``features`` and returns either one score per row
    (written as ``prediction_column``) or a dict of output columns (see :func:`task_scorer`);
    a scorer's ``columns`` attribute (name -> Arrow type) types the columns of an empty output.
    With ``shadow_predict``, the shadow model's first output column is written as
    ``shadow_<column>`` and compared with the live one: ``mean_abs_diff`` for numbers,
    ``decision_agreement`` for class labels (``shadow_labels``: a class column, even of integers),
    and for scores when ``shadow_threshold`` is set.
    ``constants`` become columns repeated on every row (e.g. the model version).
    ``row_groups`` restricts the work to some row groups (one shard of the file).
    ``threads`` limits the thread pools of the model's libraries while scoring (see
    :mod:`airflow_mlops_provider.core.threads`; None: no limit).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops_provider.core.threads import single_threaded_openmp, thread_limits

    pf = open_parquet(input_path)
    check_columns(pf.schema_arrow, features, expected_types, key_columns, str(input_path))
    groups = list(range(pf.num_row_groups)) if row_groups is None else list(row_groups)
    total = sum(pf.metadata.row_group(g).num_rows for g in groups)
    columns = list(dict.fromkeys([*key_columns, *features]))
    stats = ScoreStats(threads=threads)
    started = last_log = time.monotonic()
    shadow_sum: dict[str, float] = {}

    def as_columns(out: Any) -> dict[str, Any]:
        return out if isinstance(out, dict) else {prediction_column: np.asarray(out, dtype=float).reshape(-1)}

    read_q: queue.Queue = queue.Queue(maxsize=1)
    write_q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    reader = threading.Thread(
        target=_producer,
        args=(pf.iter_batches(batch_size=chunk_rows, row_groups=groups, columns=columns,
                              use_threads=False), read_q, stop, stats),
        daemon=True, name="score-reader")
    writer_error: list[BaseException] = []

    def predict_chunk(item: Any, first_row: int) -> tuple[Any, dict[str, Any], Any, float, float]:
        """Arrow batch -> (batch, output columns, shadow output, convert seconds, predict seconds)."""
        t0 = time.monotonic()
        frame = item.select(list(features)).to_pandas(split_blocks=True)
        t1 = time.monotonic()
        try:
            outputs = as_columns(predict(frame))
        except Exception as err:  # noqa: BLE001 - re-raised, named, without the rows
            # Schema enforcement messages can quote the rows; the task log must not.
            raise ScoringInputError(
                f"the model could not score rows {first_row}..{first_row + item.num_rows - 1} of "
                f"{str(input_path)!r}: {model_error_summary(err)}", path=str(input_path)) from None
        t2 = time.monotonic()
        shadow = as_columns(shadow_predict(frame)) if shadow_predict is not None else None
        return item, outputs, shadow, t1 - t0, t2 - t1

    def finish_chunk(done: tuple[Any, dict[str, Any], Any, float, float]) -> None:
        item, outputs, shadow_outputs, convert_s, predict_s = done
        stats.convert_seconds += convert_s
        stats.predict_seconds += predict_s
        out_cols = {c: item.column(c) for c in key_columns}
        for name, values in outputs.items():
            if len(values) != item.num_rows:
                raise ValueError(f"the model returned {len(values)} values of {name!r} for {item.num_rows} rows")
            out_cols[name] = pa.array(values)
        if shadow_outputs is not None:
            primary, live = next(iter(outputs.items()))
            shadow = shadow_outputs[primary]
            out_cols[f"shadow_{primary}"] = pa.array(shadow)
            for key, value in _shadow_sums(live, shadow, shadow_threshold, shadow_labels).items():
                shadow_sum[key] = shadow_sum.get(key, 0.0) + value
        for name, value in (constants or {}).items():
            out_cols[name] = pa.array([value] * item.num_rows, type=pa.string()).dictionary_encode()
        write_q.put(pa.table(out_cols))
        stats.rows += item.num_rows
        stats.batches += 1

    def concurrent_ok() -> bool:
        return bool(threads and threads > 1 and getattr(predict, "thread_safe", False)
                    and (shadow_predict is None or getattr(shadow_predict, "thread_safe", False)))

    with atomic_path(Path(output_path)) as tmp, contextlib.ExitStack() as limits:
        limits.enter_context(thread_limits(threads))
        writer_holder: dict[str, Any] = {}

        def write_loop() -> None:
            try:
                while (item := write_q.get()) is not _DONE:
                    t0 = time.monotonic()
                    if "w" not in writer_holder:
                        writer_holder["w"] = pq.ParquetWriter(str(tmp), item.schema, compression="zstd")
                    writer_holder["w"].write_table(item)
                    stats.write_seconds += time.monotonic() - t0
            except BaseException as err:  # noqa: BLE001 - re-raised by the main thread
                writer_error.append(err)
                stop.set()
                while write_q.get() is not _DONE:  # drain so the producer never blocks
                    pass

        writer = threading.Thread(target=write_loop, daemon=True, name="score-writer")
        reader.start()
        writer.start()
        pool = None
        offset = 0  # rows handed to the model so far
        try:
            while True:
                item = read_q.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise ScoringInputError(f"cannot read {str(input_path)!r}: {item}", path=str(input_path)) from item
                if writer_error:
                    break
                check_values(item, expected_types, str(input_path), offset)
                if pool is None and concurrent_ok():
                    # The chunk is split between threads that predict side by side, each with one
                    # OpenMP thread: the model's own threads would wait at a barrier after every
                    # tree and idle while the GIL-bound steps of a pipeline (encoders) run; slices
                    # in parallel keep every core busy, with no more rows in memory than one chunk.
                    # BLAS pools are process-wide: one thread each.
                    limits.enter_context(thread_limits(1, user_api="blas"))
                    pool = limits.enter_context(concurrent.futures.ThreadPoolExecutor(
                        threads, thread_name_prefix="score-predict", initializer=single_threaded_openmp))
                if pool is not None and item.num_rows >= 2 * threads:
                    step = -(-item.num_rows // threads)
                    futures = [pool.submit(predict_chunk, item.slice(start, step), offset + start)
                               for start in range(0, item.num_rows, step)]
                    finish_chunk(_joined(item, [future.result() for future in futures]))
                else:
                    finish_chunk(predict_chunk(item, offset))
                offset += item.num_rows
                now = time.monotonic()
                if now - last_log >= progress_every:
                    rate = stats.rows / (now - started)
                    eta = (total - stats.rows) / rate if rate else float("nan")
                    log.info("scored %d / %d rows (%.0f rows/s, ETA %.0fs)", stats.rows, total, rate, eta)
                    last_log = now
        finally:
            stop.set()
            write_q.put(_DONE)
            writer.join()
            while reader.is_alive():  # unblock a reader waiting on a full queue
                try:
                    read_q.get_nowait()
                except queue.Empty:
                    time.sleep(0.01)
            if "w" in writer_holder:
                t0 = time.monotonic()
                writer_holder["w"].close()
                stats.write_seconds += time.monotonic() - t0
        if writer_error:
            raise writer_error[0]
        if "w" not in writer_holder:  # no batch at all: still write a valid, empty file
            # The same columns, in the same order and types, as a file with rows.
            typed = getattr(predict, "columns", None) or {prediction_column: "float64"}
            empty = {c: pa.array([], type=pf.schema_arrow.field(c).type) for c in key_columns}
            empty |= {c: pa.array([], type=pa.type_for_alias(t)) for c, t in typed.items()}
            if shadow_predict is not None:
                primary = next(iter(typed))
                empty[f"shadow_{primary}"] = pa.array([], type=pa.type_for_alias(typed[primary]))
            empty |= {c: pa.array([], type=pa.string()).dictionary_encode() for c in constants or {}}
            pq.write_table(pa.table(empty), str(tmp))
    stats.seconds = time.monotonic() - started
    if shadow_predict is not None and stats.rows:
        names = {"abs_diff": "mean_abs_diff", "agree": "decision_agreement"}
        stats.shadow = {names[key]: value / stats.rows for key, value in shadow_sum.items()}
    log.info("scored %d rows in %.1fs (%.0f rows/s)", stats.rows, stats.seconds, stats.rows_per_second)
    return stats


def merge_files(parts: Sequence[str | Path], output_path: str | Path, metadata: dict[str, str] | None = None) -> int:
    """Concatenate shard outputs into one file, atomically; returns the row count.

    ``metadata`` goes into the output's Parquet footer (key-value metadata), committed with it."""
    import pyarrow.parquet as pq

    rows = 0
    with atomic_path(Path(output_path)) as tmp:
        writer = None
        try:
            for part in parts:
                pf = pq.ParquetFile(str(part))
                if writer is None:
                    schema = pf.schema_arrow
                    if metadata:
                        schema = schema.with_metadata({**(schema.metadata or {}),
                                                       **{k.encode(): v.encode() for k, v in metadata.items()}})
                    writer = pq.ParquetWriter(str(tmp), schema, compression="zstd")
                for batch in pf.iter_batches():
                    writer.write_batch(batch)
                    rows += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
    return rows


def _shadow_sums(live: Any, shadow: Any, threshold: float | None, labels: bool = False) -> dict[str, float]:
    """Per-chunk sums of how the shadow model's primary output differs from the live one."""
    import numpy as np

    live, shadow = np.asarray(live), np.asarray(shadow)
    if not labels and live.dtype.kind in "fiub":
        sums = {"abs_diff": float(np.abs(shadow.astype(float) - live.astype(float)).sum())}
        if threshold is not None:
            sums["agree"] = float(((shadow >= threshold) == (live >= threshold)).sum())
        return sums
    return {"agree": float((shadow == live).sum())}


#: Rows of the first chunk scored both through pyfunc and through the raw estimator to compare them.
CHECK_ROWS = 1000


class TaskScorer:
    """``frame -> {output column: values}`` for a pyfunc model of a task type.

    Output columns per task type (the task type object's ``output_columns``; ``task_type`` is a
    registered name or a :class:`~airflow_mlops_provider.core.task_types.TaskType`): binary
    ``score``; multiclass ``prediction`` + ``proba_<class>``; regression ``prediction``.
    ``columns`` maps each output column to its Arrow type name.

    Every chunk could go through pyfunc (schema enforcement each time). For scikit-learn
    models the first :data:`CHECK_ROWS` rows go through pyfunc, which enforces the signature, and
    are compared with the raw estimator on the same rows; when both agree, every chunk calls the
    estimator directly (about 25% faster; the input contract checks each chunk's types), and
    chunks may be predicted side by side (:attr:`thread_safe`); otherwise pyfunc is kept. Other
    flavors always use pyfunc.
    """

    def __init__(self, model: Any, task_type: Any = "binary", classes: Sequence[Any] | None = None) -> None:
        from airflow_mlops_provider.core.task_types import get_task_type

        self.model = model
        self.task = get_task_type(task_type)
        self.task_type = self.task.name
        self.classes = list(classes) if classes else None
        self.columns = self.task.output_types(self.classes)
        self.raw, self.method = None, self.task.predict_method
        if getattr(model, "loader_module", None) == "mlflow.sklearn":
            candidate = model.get_raw_model()
            if hasattr(candidate, self.method):
                self.raw = candidate
        self.checked = self.fast = False

    def _raw_output(self, frame: Any) -> Any:
        import numpy as np

        if self.fast:
            return getattr(self.raw, self.method)(frame)
        if self.raw is not None and not self.checked:
            self.checked = True
            head = frame.iloc[:CHECK_ROWS]
            via = self.model.predict(head)
            direct = np.asarray(getattr(self.raw, self.method)(head), dtype=float)
            via = np.asarray(getattr(via, "values", via), dtype=float)
            self.fast = direct.shape == via.shape and bool(np.allclose(direct, via, rtol=0, atol=1e-12))
            log.info("scoring path: %s", f"raw estimator (it agreed with pyfunc on the first {len(head)} rows)"
                     if self.fast else "pyfunc for every chunk")
            if self.fast:
                return getattr(self.raw, self.method)(frame)
        return self.model.predict(frame)

    @property
    def thread_safe(self) -> bool:
        """Whether chunks may be predicted side by side: only through the raw scikit-learn
        estimator (its predict methods only read the fitted model); pyfunc models of other
        flavors may keep state per call."""
        return self.fast

    def __call__(self, frame: Any) -> dict[str, Any]:
        return self.task.output_columns(self._raw_output(frame), self.classes)


def task_scorer(model: Any, task_type: Any = "binary", classes: Sequence[Any] | None = None) -> TaskScorer:
    return TaskScorer(model, task_type, classes)
