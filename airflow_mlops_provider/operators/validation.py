"""Great Expectations 1.x quality gate for a CSV or Parquet file, with optional row quarantine."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_mlops_provider.core.settings import mlops_home
from airflow_mlops_provider.exceptions import DataValidationError
from airflow_mlops_provider.links.validation import GreatExpectationsDataDocsLink
from airflow_mlops_provider.operators.mixins import ObjectStorageMixin
from airflow_mlops_provider.results import ValidationResult

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context


class GreatExpectationsValidateDataOperator(ObjectStorageMixin):
    """Validate a data file against a Great Expectations suite; fail on critical failures.

    The file is read into pandas and validated in an ephemeral GE context. The full result is
    written to ``MLOPS_HOME/reports/validation/<result_id>.json``, data docs (optionally) under
    ``MLOPS_HOME/reports/data_docs``, and a summary is pushed to XCom (key
    ``validation_result``) *before* the gate decides, so a failed run still explains itself.

    Severity is each expectation's GE ``severity``: ``critical`` failures fail the task with
    :class:`~airflow.sdk.exceptions.AirflowFailException` (no retry: the data will not change);
    ``warning`` and ``info`` failures are logged and recorded, never fail.

    With ``quarantine=True`` rows flagged by failed critical row-level expectations are written
    to ``quarantine_path`` and the others to ``valid_output_path`` (each written completely or
    not at all), and the task succeeds unless every row failed or a critical expectation that
    names no rows failed (row count, column mean, missing column, ...).

    :param path: Data file: a local path or an object storage URI (``s3://bucket/key.parquet``),
        read through ``airflow.sdk.ObjectStoragePath``. (templated)
    :param suite: GE suite as a dict in GE's JSON shape, a path to such a JSON file, or an
        ``ExpectationSuite``. (templated)
    :param file_format: ``csv`` or ``parquet``; inferred from the suffix (``.csv``, ``.csv.gz``,
        ``.parquet``, ``.pq``) when None.
    :param quarantine: Split failing rows out instead of failing the task.
    :param quarantine_path: Where the failing rows go (local path or URI), with a
        ``_failed_expectations`` column; default ``<result_id>.quarantine.<fmt>`` beside the
        result JSON. (templated)
    :param valid_output_path: Where the passing rows go; default
        ``MLOPS_HOME/data/validated/<result_id>/<file name>``. (templated)
    :param data_docs: Build the GE data docs page for this result.
    :param result_name: Label for the result id and GE data asset; default the file's stem.
        (templated)
    :param conn_id: Airflow connection for the object storage of ``path`` and the outputs.
        (templated)
    :return: ``{"success", "result_id", "path", "rows", "failed", "warnings", "result_uri",
        "data_docs_uri", "quarantine"}``; ``success`` is the input's verdict (false when rows
        were quarantined), ``failed``/``warnings`` are the summary items of
        :func:`~airflow_mlops_provider.core.validation.summarize`, ``quarantine`` is None or
        ``{"path", "rows", "valid_path", "valid_rows"}``.
    """

    template_fields: Sequence[str] = ("path", "suite", "quarantine_path", "valid_output_path", "conn_id",
                                      "result_name")
    template_fields_renderers: ClassVar[dict[str, str]] = {"suite": "json"}
    ui_color = "#ffb545"
    operator_extra_links = (GreatExpectationsDataDocsLink(),)

    def __init__(
        self,
        *,
        path: str | os.PathLike[str],
        suite: Any,
        file_format: str | None = None,
        quarantine: bool = False,
        quarantine_path: str | None = None,
        valid_output_path: str | None = None,
        data_docs: bool = True,
        result_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.suite = suite
        self.file_format = file_format
        self.quarantine = quarantine
        self.quarantine_path = quarantine_path
        self.valid_output_path = valid_output_path
        self.data_docs = data_docs
        self.result_name = result_name

    # -- execute ---------------------------------------------------------------------------
    def execute(self, context: Context) -> ValidationResult:
        from airflow_mlops_provider.core import validation as v

        path, fmt, compression = self._check_arguments()
        suite = v.load_suite(self.suite)
        df = self._read(path, fmt, compression)

        home = mlops_home()
        stem = _stem(path)
        result_id = _result_id(self.result_name or stem)
        run = v.run_suite(
            df, suite, result_format="COMPLETE" if self.quarantine else "SUMMARY",
            data_docs_dir=home.reports_dir / "data_docs" if self.data_docs else None,
            run_name=result_id, asset_name=v.safe_name(self.result_name or stem))
        summary = v.summarize(run.result)
        result_file = home.reports_dir / "validation" / f"{result_id}.json"
        run.result.setdefault("meta", {})["mlops"] = {
            "result_id": result_id, "path": path, "rows": len(df), "file_format": fmt,
            "success": summary["success"]}
        v.write_json_atomic(result_file, run.result)
        summary.update(result_id=result_id, path=path, rows=len(df), result_uri=result_file.as_uri(),
                       data_docs_uri=run.data_docs_uri)

        # The gate's record goes out before the gate decides.
        context["ti"].xcom_push(key="validation_result", value=summary)
        if run.data_docs_uri:
            GreatExpectationsDataDocsLink.persist(context, v.data_docs_path(run.data_docs_uri), home.reports_dir)
        self.log.info("Validated %d rows of %s against suite %r: %d/%d expectations passed; result %s",
                      len(df), path, summary["suite_name"], summary["successful"], summary["evaluated"],
                      summary["result_uri"])
        for item in summary["warnings"]:
            self.log.warning("Data validation %s (not failing): %s", item["severity"], v.describe_failure(item))

        quarantine_info = None
        if summary["failed"]:
            if not self.quarantine:
                self._fail(summary, summary["failed"], "critical expectation(s) failed")
            dataset_level = v.unsplittable_failures(run.result)
            if dataset_level:
                self._fail(summary, dataset_level, "critical expectation(s) failed that name no rows, "
                           "so quarantine cannot isolate them")
        if self.quarantine:
            quarantine_info = self._quarantine(df, run.result, summary, path, fmt, stem, result_id)
        self._lineage_state = {"path": path, "quarantine": quarantine_info}

        return {
            "success": summary["success"],
            "result_id": result_id,
            "path": path,
            "rows": len(df),
            "failed": summary["failed"],
            "warnings": summary["warnings"],
            "result_uri": summary["result_uri"],
            "data_docs_uri": summary["data_docs_uri"],
            "quarantine": quarantine_info,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input: the validated file. Outputs: the quarantined and the kept rows, when split."""
        from airflow_mlops_provider.core.lineage import storage_dataset
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        state = getattr(self, "_lineage_state", None) or {"path": str(self.path), "quarantine": None}
        split = state["quarantine"] or {}
        return operator_lineage(inputs=[storage_dataset(state["path"])],
                                outputs=[storage_dataset(split[k]) for k in ("path", "valid_path") if split.get(k)])

    # -- steps -----------------------------------------------------------------------------
    def _check_arguments(self) -> tuple[str, str, str | None]:
        from airflow_mlops_provider.core.tables import infer_format

        path = str(self.path).strip() if self.path is not None else ""
        if not path:
            raise ValueError(f"Task {self.task_id!r}: path is empty")
        fmt, compression = infer_format(path, self.file_format)
        extra = [name for name in ("quarantine_path", "valid_output_path") if getattr(self, name)]
        if extra and not self.quarantine:
            raise ValueError(f"Task {self.task_id!r}: {' and '.join(extra)} only apply with quarantine=True")
        for name in extra:
            infer_format(str(getattr(self, name)))  # fail now, not after validating
        self.storage.check(path, "path")
        for name in extra:
            self.storage.check(getattr(self, name), name)
        return path, fmt, compression

    def _read(self, path: str, fmt: str, compression: str | None) -> pd.DataFrame:
        return self.storage.read_frame(path, fmt, compression)

    def _write(self, df: pd.DataFrame, target: str, fmt: str, compression: str | None) -> str:
        """Publish ``df`` at ``target`` whole: temp file + rename locally, one upload remotely."""
        from airflow_mlops_provider.core.tables import frame_to_bytes

        return self.storage.publish_bytes(frame_to_bytes(df, fmt, compression=compression), str(target))

    def _quarantine(self, df: pd.DataFrame, result: dict[str, Any], summary: dict[str, Any], path: str,
                    fmt: str, stem: str, result_id: str) -> dict[str, Any]:
        from airflow_mlops_provider.core.tables import infer_format
        from airflow_mlops_provider.core.validation import split_failing_rows

        split = split_failing_rows(df, result)
        home = mlops_home()
        suffix = ".csv" if fmt == "csv" else ".parquet"
        q_target = str(self.quarantine_path or home.reports_dir / "validation" / f"{result_id}.quarantine{suffix}")
        v_target = str(self.valid_output_path or home.data_dir / "validated" / result_id / f"{stem}{suffix}")
        quarantined = split.quarantined.assign(**{split.reasons.name: split.reasons})
        q_uri = self._write(quarantined, q_target, *infer_format(q_target))
        info = {"path": q_uri, "rows": len(split.quarantined), "valid_path": None,
                "valid_rows": len(split.kept)}
        if split.kept.empty and not split.quarantined.empty:
            self._fail(summary, summary["failed"], f"all {len(df)} rows failed (quarantined in {q_uri})")
        info["valid_path"] = self._write(split.kept, v_target, *infer_format(v_target))
        self.log.info("Quarantine: %d of %d rows failed critical expectations -> %s; %d valid rows -> %s",
                      info["rows"], len(df), q_uri, info["valid_rows"], info["valid_path"])
        return info

    def _fail(self, summary: dict[str, Any], items: list[dict[str, Any]], what: str) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_mlops_provider.core.validation import describe_failure

        lines = "\n".join(f"  - {describe_failure(item)}" for item in items)
        message = (f"Data validation of {summary['path']!r} against suite {summary['suite_name']!r} failed: "
                   f"{len(items)} {what}:\n{lines}\nResult: {summary['result_uri']}"
                   + (f"\nData docs: {summary['data_docs_uri']}" if summary.get("data_docs_uri") else ""))
        raise AirflowFailException(message) from DataValidationError(message, **summary)


def _stem(path: str) -> str:
    """The file name without format or compression suffixes: ``s3://b/tx.csv.gz`` -> ``tx``."""
    name = PurePosixPath(path.rstrip("/")).name
    for _ in range(2):
        base, dot, ext = name.rpartition(".")
        if dot and base and ext.lower() in ("csv", "parquet", "pq", "gz", "bz2", "zip", "xz", "zst"):
            name = base
    return name or "data"


def _result_id(label: str) -> str:
    """Sortable and unique: ``<label>-<UTC time>-<8 hex>``; recorded in XCom and the result."""
    from airflow_mlops_provider.core.validation import safe_name

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{safe_name(label)}-{stamp}-{uuid.uuid4().hex[:8]}"

