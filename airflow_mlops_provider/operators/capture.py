"""Captured online traffic to a day's scored partition, which the drift and decay checks read."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from airflow_mlops_provider.operators.mixins import MlflowHookMixin, ObjectStorageMixin


class CapturedTrafficToPartitionOperator(MlflowHookMixin, ObjectStorageMixin):
    """Turn one day of captured request/response payloads into a scored partition.

    ``capture_path`` is the folder (local or any ``ObjectStoragePath`` store) the serving side
    writes to: for ``capture_format="sagemaker"`` the Data Capture destination (files under
    ``…/<endpoint>/<variant>/yyyy/mm/dd/hh/``; the day is read from that path), for
    ``"cloudevents"`` a sink's folder with one sub-folder per day, ``date=<YYYY-MM-DD>/``
    (KServe's inference logger, the local target's capture). Files are JSON Lines
    (:mod:`airflow_mlops_provider.core.capture` documents both formats).

    The partition at ``output_path`` has the model's input columns, the task type's output columns
    as batch scoring writes them, ``model_version``, ``request_id`` and ``captured_at``: the drift
    check reads it as an input and predictions partition, the performance check joins late labels
    to it by ``request_id``. The version of each row is the one the capture names (a ``v<N>``
    folder of the path, which the SageMaker target's capture prefix has; a CloudEvent's
    ``modelversion``; a V2 response's ``model_version``), else the version the audit ledger says
    ``deploy_target`` served at the row's time. Rows are read with the signature and the classes
    of their own version.

    Written whole or not at all; a rerun of the day replaces the partition. A malformed record
    fails the task naming the file, the line and why; requests without a response are counted.
    No captured call on the day skips the task (and the checks after it).
    """

    template_fields: Sequence[str] = ("model_name", "capture_path", "output_path", "day", "deploy_target",
                                      "mlflow_conn_id", "conn_id")
    ui_color = "#b4d9f0"

    def __init__(self, *, model_name: str, capture_format: str, capture_path: str, output_path: str,
                 day: str = "{{ ds }}", deploy_target: str | None = None, **kwargs: Any) -> None:
        from airflow_mlops_provider.core.capture import FORMATS

        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        if capture_format not in FORMATS:
            raise ValueError(f"capture_format must be one of {list(FORMATS)}, got {capture_format!r}")
        self.model_name = model_name
        self.capture_format = capture_format
        self.capture_path = capture_path
        self.output_path = output_path
        self.day = day
        self.deploy_target = deploy_target

    # -- files -----------------------------------------------------------------------------
    def _files(self, day: date) -> list[tuple[str, str]]:
        """``(uri, path relative to capture_path)`` of the day's capture files, sorted."""
        from airflow_mlops_provider.core.capture import sagemaker_day_of
        from airflow_mlops_provider.hooks.storage import is_remote, local_file

        root = str(self.capture_path).rstrip("/")
        base = self.storage.path(root) if is_remote(root) else local_file(root)
        if self.capture_format == "cloudevents":
            base = base / f"date={day.isoformat()}"
        with self.storage.errors(root):
            if not base.exists():
                return []
            found = [p for p in base.rglob("*") if p.is_file() and p.name.endswith((".jsonl", ".json"))]
        out = []
        for p in found:
            rel = str(p)[len(str(base)):].lstrip("/")
            if self.capture_format == "sagemaker" and sagemaker_day_of(rel) != day:
                continue
            uri = f"{root}/{(f'date={day.isoformat()}/' if self.capture_format == 'cloudevents' else '')}{rel}"
            out.append((uri, rel))
        return sorted(out)

    # -- facts of a version ----------------------------------------------------------------
    def _version_facts(self, version: str) -> dict[str, Any]:
        if version not in self._facts:
            import mlflow

            from airflow_mlops_provider.core.task_types import task_type_of_version
            from airflow_mlops_provider.core.tasks import classes_from_tags

            mv = self.hook.resolve_version(self.model_name, version)
            self.hook.activate()
            info = mlflow.models.get_model_info(f"models:/{self.model_name}/{version}")
            schema = info.signature.inputs if info.signature is not None else None
            if schema is None or not schema.has_input_names():
                raise ValueError(f"{self.model_name} v{version} has no input signature with column names: its "
                                 "captured requests cannot be read as rows")
            self._facts[version] = {"features": schema.input_names(), "classes": classes_from_tags(mv.tags),
                                    "task": task_type_of_version(self.model_name, mv)}
        return self._facts[version]

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops_provider.core import ledger
        from airflow_mlops_provider.core.capture import (
            CaptureCounts,
            CaptureError,
            calls_frame,
            cloudevent_calls,
            sagemaker_calls,
            version_of_path,
        )
        from airflow_mlops_provider.core.history import live_at
        from airflow_mlops_provider.core.settings import mlops_home

        self.storage.check(self.capture_path, "capture_path")
        target = self.storage.check(self.output_path, "output_path")
        day = date.fromisoformat(str(self.day)[:10])
        self._facts: dict[str, dict[str, Any]] = {}
        records = ledger.read(mlops_home().ledger_path)

        served_by = None if str(self.deploy_target or "") in ("", "None", "none", "auto") else str(self.deploy_target)

        def version_at(at: datetime) -> str | None:
            # What the target served then; without a target, what @champion named then.
            return live_at(records, self.model_name, at, target=served_by)["version"]

        counts = CaptureCounts()
        calls = []
        files = self._files(day)
        for uri, rel in files:
            counts.files += 1
            with self.storage.open(uri, "rb") as fh:
                lines = fh.read().decode("utf-8").splitlines()
            if self.capture_format == "sagemaker":
                version = version_of_path(rel)
                features = self._features_for(version, lines, version_at)
                calls.extend(sagemaker_calls(lines, features, name=uri, version=version, counts=counts))
            else:
                # A file may hold calls of several versions: each request is read with the
                # signature of the version that answered it (one signature per model is usual).
                features = self._features_for(None, lines, version_at)
                calls.extend(cloudevent_calls(lines, features, name=uri, counts=counts))
        task = None
        for call in calls:  # the task type of the model (every version of one model has the same)
            known = call.version or version_at(call.at)
            if known:
                task = self._version_facts(known)["task"]
                break
        if calls and task is None:
            raise CaptureError(f"{len(calls)} captured calls of {self.model_name} on {day}: none names its model "
                               "version, and the audit ledger names no version live at their times "
                               f"(deploy_target {self.deploy_target!r})", model=self.model_name, day=str(day))
        frame = None if task is None else calls_frame(
            calls, task_type=task, classes_of=lambda v: self._version_facts(v)["classes"], version_at=version_at,
            day=day, counts=counts)
        summary = counts.to_dict()
        self.log.info("Captured traffic of %s on %s under %s: %s", self.model_name, day, self.capture_path, summary)
        if frame is None or not len(frame):
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"no answered call of {self.model_name} captured on {day} under "
                                       f"{self.capture_path} ({summary})")
        self._write(frame, str(target))
        versions = counts.versions
        main_version = max(versions, key=lambda v: (versions[v], int(v) if v.isdigit() else 0))
        print(f"online partition {target}: {len(frame)} rows from {counts.calls} calls, versions {versions}")
        return {"output_path": str(target), "model_version": main_version, **summary}

    def _features_for(self, version: str | None, lines: list[str], version_at: Any) -> list[str]:
        """The signature's columns for the version a file's calls were answered by (its path's, or
        the one live at its first record's time, or the champion's)."""
        if version is None:
            version = self._first_version(lines, version_at)
        if version is None:
            champion = self.hook.get_version_by_alias(self.model_name, "champion", required=False)
            version = str(champion.version) if champion is not None else None
        if version is None:
            raise ValueError(f"{self.model_name}: no version names the captured calls and none is @champion")
        return self._version_facts(str(version))["features"]

    @staticmethod
    def _first_version(lines: list[str], version_at: Any) -> str | None:
        import json

        from airflow_mlops_provider.core.capture import parse_time

        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                return None
            if not isinstance(event, dict):
                return None
            if event.get("modelversion"):
                return str(event["modelversion"])
            when = event.get("time") or (event.get("eventMetadata") or {}).get("inferenceTime")
            try:
                return version_at(parse_time(when, "capture")) if when else None
            except ValueError:
                return None
        return None

    def _write(self, frame: Any, uri: str) -> None:
        """The partition, published whole (the storage hook's temp-and-rename, or one PUT)."""
        with tempfile.TemporaryDirectory(prefix="mlops-capture-") as workdir:
            local = Path(workdir) / "online.parquet"
            frame.to_parquet(local, index=False)
            self.storage.publish(local, uri)
