"""Batch scoring with the model version an alias names, streamed, sharded, committed atomically."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.operators.mixins import ObjectStorageMixin


class MlflowBatchScoreOperator(ObjectStorageMixin):
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
                 row_groups: Sequence[int] | None = None,
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
        from airflow_mlops_provider.core.tasks import TASK_TYPE_TAG, classes_from_tags

        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        # Before anything is read or written: the paths may come from a triggering user's Params.
        self.storage.check(self.input_path, "input_path")
        self.storage.check(self.output_path, "output_path")
        version = self._resolve()
        self.log.info("Scoring with %s v%s (run %s)", self.model_name, version.version, version.run_id)
        task_type = (version.tags or {}).get(TASK_TYPE_TAG) or "binary"
        model = self.hook.load_pyfunc(f"models:/{self.model_name}/{version.version}")
        scorer = task_scorer(model, task_type, classes_from_tags(version.tags))
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
                                             task_type, classes_from_tags(shadow.tags))

        with tempfile.TemporaryDirectory(prefix="mlops-score-") as tmp:
            workdir = Path(tmp)
            local_in = self.storage.local_copy(self.input_path, workdir)
            pf = open_parquet(local_in)
            groups = list(self.row_groups) if self.row_groups is not None else None
            rows = sum(pf.metadata.row_group(g).num_rows for g in (groups if groups is not None
                                                                  else range(pf.num_row_groups)))
            if rows == 0 and groups is None:
                raise AirflowSkipException(f"input partition {self.input_path!r} has 0 rows: nothing to score")
            local_out = self.storage.local_target(self.output_path, workdir, "scored.parquet")
            stats = score_file(
                local_in, local_out, scorer, features, list(self.key_columns),
                constants={"model_version": str(version.version), "model_run_id": version.run_id},
                chunk_rows=self.chunk_rows,
                expected_types=expected, shadow_predict=shadow_predict,
                shadow_threshold=0.5 if task_type == "binary" else None,
                shadow_labels=task_type == "multiclass", row_groups=groups)
            self.storage.publish(local_out, self.output_path)
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
