"""Batch scoring with the model version an alias names, streamed, sharded, committed atomically."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.version_compat import BaseOperator


def _is_remote(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def _local_input(path: str, conn_id: str | None, workdir: Path) -> Path:
    """A local file for ``path``: itself when local, else a download through ObjectStoragePath."""
    if not _is_remote(path):
        return Path(str(path).removeprefix("file://"))
    from airflow.sdk import ObjectStoragePath

    from airflow_mlops_provider.core.storage import storage_errors

    src = ObjectStoragePath(path, conn_id=conn_id)
    target = workdir / Path(src.path).name
    with storage_errors(path, conn_id), src.open("rb") as fh, open(target, "wb") as out:
        shutil.copyfileobj(fh, out, 8 << 20)
    return target


class MlflowBatchScoreOperator(BaseOperator):
    """Score a Parquet partition with a registered model, streaming Arrow record batches.

    The version is resolved once, at the start (``alias`` unless ``model_version`` pins it),
    and recorded in the output rows and the return value. The output holds the key columns,
    the outputs of the version's task type (binary: ``score``; multiclass: ``prediction`` and
    ``proba_<class>`` per class; regression: ``prediction``), ``model_version`` and
    ``model_run_id``; it appears at ``output_path`` only when complete (temp file + rename),
    and a rerun replaces it. Any MLflow flavor is scored through pyfunc.

    :param row_groups: score only these row groups (one shard); see :func:`airflow_mlops_provider.core.scoring.plan_shards`.
    :param shadow_alias: also score with this alias (e.g. ``challenger``) and record agreement.
    """

    template_fields: Sequence[str] = ("model_name", "alias", "model_version", "input_path", "output_path",
                                      "key_columns", "shadow_alias", "row_groups", "mlflow_conn_id", "conn_id")
    ui_color = "#5ec8e5"

    def __init__(self, *, model_name: str, input_path: str, output_path: str, key_columns: Sequence[str] = (),
                 alias: str = "champion", model_version: str | None = None, shadow_alias: str | None = None,
                 chunk_rows: int = 100_000,
                 row_groups: Sequence[int] | None = None, conn_id: str | None = None,
                 mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.model_name = model_name
        self.input_path = input_path
        self.output_path = output_path
        self.key_columns = key_columns
        self.alias = alias
        self.model_version = model_version
        self.shadow_alias = shadow_alias
        self.chunk_rows = chunk_rows
        self.row_groups = row_groups
        self.conn_id = conn_id
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def _resolve(self) -> Any:
        return self.hook.resolve_version(self.model_name, self.model_version, alias=self.alias)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops_provider.core.contract import signature_inputs
        from airflow_mlops_provider.core.scoring import open_parquet, score_file, task_scorer
        from airflow_mlops_provider.core.task_types import task_type_of_version
        from airflow_mlops_provider.core.tasks import classes_from_tags
        from airflow_mlops_provider.paths import require_allowed

        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        # Before anything is read or written: the paths may come from a triggering user's Params.
        require_allowed(self.input_path, "input_path")
        require_allowed(self.output_path, "output_path")
        version = self._resolve()
        self.log.info("Scoring with %s v%s (run %s)", self.model_name, version.version, version.run_id)
        task = task_type_of_version(self.model_name, version)  # refused when the version lacks its tag
        task_type = task.name
        model = self.hook.load_pyfunc(f"models:/{self.model_name}/{version.version}")
        scorer = task_scorer(model, task, classes_from_tags(version.tags))
        features = model.metadata.get_input_schema().input_names()
        expected = dict(signature_inputs(model.metadata.get_input_schema()))
        shadow_predict, shadow_version = None, None
        if self.shadow_alias:
            shadow = self.hook.get_version_by_alias(self.model_name, self.shadow_alias, required=False)
            if shadow is None:
                self.log.warning("No %r version: shadow scoring skipped", self.shadow_alias)
            else:
                shadow_version = str(shadow.version)
                shadow_predict = task_scorer(self.hook.load_pyfunc(f"models:/{self.model_name}/{shadow_version}"),
                                             task, classes_from_tags(shadow.tags))

        with tempfile.TemporaryDirectory(prefix="mlops-score-") as tmp:
            workdir = Path(tmp)
            local_in = _local_input(self.input_path, self.conn_id, workdir)
            pf = open_parquet(local_in)
            groups = list(self.row_groups) if self.row_groups is not None else None
            rows = sum(pf.metadata.row_group(g).num_rows for g in (groups if groups is not None
                                                                  else range(pf.num_row_groups)))
            if rows == 0 and groups is None:
                raise AirflowSkipException(f"input partition {self.input_path!r} has 0 rows: nothing to score")
            remote_out = _is_remote(self.output_path)
            local_out = workdir / "scored.parquet" if remote_out else Path(self.output_path)
            stats = score_file(
                local_in, local_out, scorer, features, list(self.key_columns),
                constants={"model_version": str(version.version), "model_run_id": version.run_id},
                chunk_rows=self.chunk_rows,
                expected_types=expected, shadow_predict=shadow_predict,
                shadow_threshold=task.shadow_threshold,
                shadow_labels=task.categorical_output, row_groups=groups)
            if remote_out:
                from airflow.sdk import ObjectStoragePath

                from airflow_mlops_provider.core.storage import storage_errors

                # One PUT: an object store shows the object whole or not at all.
                with storage_errors(self.output_path, self.conn_id):
                    ObjectStoragePath(local_out.as_uri()).copy(ObjectStoragePath(self.output_path,
                                                                                 conn_id=self.conn_id))
        self._lineage_state = {"registry_uri": self.hook.registry_uri, "version": str(version.version),
                               "run_id": version.run_id, "shadow_version": shadow_version}
        result = {
            "model_name": self.model_name, "model_version": str(version.version), "model_run_id": version.run_id,
            "task_type": task_type, "output_columns": list(scorer.columns),
            "alias": None if self.model_version not in (None, "", "None") else self.alias,
            "input_path": str(self.input_path), "output_path": str(self.output_path), "rows": stats.rows,
            "seconds": round(stats.seconds, 3), "rows_per_second": round(stats.rows_per_second, 1),
        }
        from airflow_mlops_provider.hooks.prometheus import push_task_metrics

        push_task_metrics(context, model=self.model_name, version=str(version.version), metrics={
            "rows_scored": stats.rows, "scoring_rows_per_second": stats.rows_per_second,
            "scoring_seconds": stats.seconds})
        if shadow_version:
            result["shadow"] = {"alias": self.shadow_alias, "version": shadow_version, **stats.shadow}
            for key, value in stats.shadow.items():
                self.log.info("shadow %s v%s: %s = %.6f", self.shadow_alias, shadow_version, key, value)
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: the model version it scored with (and the shadow's) and the input partition.
        Output: the scored file (``output_path``: the partition, or a shard the batch pipeline's
        ``commit`` step merges into it)."""
        from airflow_mlops_provider.core.lineage import model_version_dataset, storage_dataset
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        state = getattr(self, "_lineage_state", None)
        if not state:
            return operator_lineage(inputs=[storage_dataset(str(self.input_path))])
        uri = state["registry_uri"]
        models = [model_version_dataset(uri, self.model_name, state["version"], state["run_id"])]
        if state.get("shadow_version"):
            models.append(model_version_dataset(uri, self.model_name, state["shadow_version"]))
        return operator_lineage(inputs=[*models, storage_dataset(str(self.input_path))],
                                outputs=[storage_dataset(str(self.output_path))])
