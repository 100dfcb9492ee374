"""Batch scoring with the model version an alias names, streamed, sharded, committed atomically."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_mlops_provider.operators.mixins import MlflowHookMixin, ObjectStorageMixin
from airflow_mlops_provider.results import CommitResult, PartitionResult, ScoreResult


class MlflowBatchScoreOperator(MlflowHookMixin, ObjectStorageMixin):
    """Score a Parquet partition with a registered model, streaming Arrow record batches.

    The version is resolved once, at the start (``alias`` unless ``model_version`` pins it),
    and recorded in the output rows and the return value. The output holds the key columns,
    the outputs of the version's task type (binary: ``score``; multiclass: ``prediction`` and
    ``proba_<class>`` per class; regression: ``prediction``), ``model_version`` and
    ``model_run_id``; it appears at ``output_path`` only when complete (temp file + rename),
    and a rerun replaces it. Any MLflow flavor is scored through pyfunc.

    :param row_groups: score only these row groups (one shard); see :func:`airflow_mlops_provider.core.scoring.plan_shards`.
    :param shadow_alias: also score with this alias (e.g. ``challenger``) and record agreement.
    :param scoring_threads: threads the model's libraries may use in this task (OpenMP, BLAS); None:
        ``MLOPS_SCORING_THREADS``, else ``[mlops] scoring_threads``, else the cores this task may run
        on (its CPU affinity and quota). See :mod:`airflow_mlops_provider.core.threads`. (templated)
    :param scoring_backend: the registered scoring backend that scores the file
        (:mod:`airflow_mlops_provider.scoring`; ``local``: streamed Arrow batches on this worker;
        ``spark``: ``mlflow.pyfunc.spark_udf`` on a Spark Connect session, :mod:`airflow_mlops_provider.scoring.spark`).
    :param backend_config: the backend's own settings (``spark``: ``spark_conn_id``, ``master``,
        ``spark_staging_path``, ``spark_input_path``). (templated)
    :param conn_id: the object store's connection for ``input_path`` and ``output_path``. (templated)
    :param explain_top_k: with k >= 1, each row also gets its k most important features and their signed
        contributions, ``reason_<i>_feature`` / ``reason_<i>_contribution`` (i = 1..k, most important
        first; k capped at the number of features), computed per chunk
        (:class:`airflow_mlops_provider.core.explain.ReasonCodeScorer`) against a background sample of the
        version's holdout (or, for a version without one, of the input). Needs the ``explain`` extra.
        0 (default): no reason columns. (templated)
    """

    template_fields: Sequence[str] = ("model_name", "alias", "model_version", "input_path", "output_path",
                                      "key_columns", "shadow_alias", "row_groups", "scoring_threads", "explain_top_k",
                                      "backend_config", "mlflow_conn_id", "conn_id")
    ui_color = "#5ec8e5"

    def __init__(self, *, model_name: str, input_path: str, output_path: str, key_columns: Sequence[str] = (),
                 alias: str = "champion", model_version: str | None = None, shadow_alias: str | None = None,
                 chunk_rows: int = 100_000,
                 row_groups: Sequence[int] | None = None, scoring_backend: str = "local",
                 scoring_threads: int | None = None, explain_top_k: int | str = 0,
                 backend_config: dict[str, Any] | None = None, **kwargs: Any) -> None:
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
        self.scoring_backend = scoring_backend
        self.scoring_threads = scoring_threads
        self.explain_top_k = explain_top_k
        self.backend_config = backend_config

    def _resolve(self) -> Any:
        return self.hook.resolve_version(self.model_name, self.model_version, alias=self.alias)

    def execute(self, context: Any) -> ScoreResult:
        from airflow_mlops_provider.core.contract import signature_inputs
        from airflow_mlops_provider.core.scoring import task_scorer
        from airflow_mlops_provider.core.task_types import task_type_of_version
        from airflow_mlops_provider.core.tasks import classes_from_tags
        from airflow_mlops_provider.core.threads import prepare_scoring_threads
        from airflow_mlops_provider.scoring import ScoringJob, get_scoring_backend

        backend = get_scoring_backend(self.scoring_backend)
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        # Before the model is loaded: the OpenMP runtime reads its wait policy once, when it loads.
        threads = prepare_scoring_threads(self.scoring_threads)
        # Before anything is read or written: the paths may come from a triggering user's Params.
        self.storage.check(self.input_path, "input_path")
        self.storage.check(self.output_path, "output_path")
        version = self._resolve()
        self.log.info("Scoring with %s v%s (run %s)", self.model_name, version.version, version.run_id)
        task = task_type_of_version(self.model_name, version)  # refused when the version lacks its tag
        task_type = task.name
        model = self.hook.load_pyfunc(f"models:/{self.model_name}/{version.version}")
        scorer = task_scorer(model, task, classes_from_tags(version.tags))
        features = model.metadata.get_input_schema().input_names()
        expected = dict(signature_inputs(model.metadata.get_input_schema()))
        top_k = int(self.explain_top_k or 0)
        if top_k < 0:
            raise ValueError(f"explain_top_k must be >= 0, got {top_k}")
        if top_k:
            scorer = self._reason_scorer(scorer, model, version, features, top_k)
        shadow_predict, shadow_version = None, None
        if self.shadow_alias:
            shadow = self.hook.get_version_by_alias(self.model_name, self.shadow_alias, required=False)
            if shadow is None:
                self.log.warning("No %r version: shadow scoring skipped", self.shadow_alias)
            else:
                shadow_version = str(shadow.version)
                shadow_predict = task_scorer(self.hook.load_pyfunc(f"models:/{self.model_name}/{shadow_version}"),
                                             task, classes_from_tags(shadow.tags))

        stats = backend.score(ScoringJob(
            model_name=self.model_name, model_version=str(version.version), model_run_id=version.run_id,
            task_type=task_type, scorer=scorer, features=features, input_path=str(self.input_path),
            output_path=str(self.output_path), key_columns=list(self.key_columns), expected_types=expected,
            row_groups=list(self.row_groups) if self.row_groups is not None else None, chunk_rows=self.chunk_rows,
            threads=threads,
            shadow_scorer=shadow_predict, shadow_threshold=task.shadow_threshold,
            shadow_labels=task.categorical_output,
            extra={**(self.backend_config or {}), "shadow_version": shadow_version}), self.storage)
        self._lineage_state = {"registry_uri": self.hook.registry_uri, "version": str(version.version),
                               "run_id": version.run_id, "shadow_version": shadow_version}
        result: ScoreResult = {
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
        if top_k:
            result["reason_codes"] = {"top_k": scorer.top_k, "method": scorer.explainer.method,
                                      "seconds": round(scorer.explain_seconds, 3)}
        if getattr(stats, "summary", None):  # a backend that summarised its predictions (spark)
            result["summary"] = stats.summary
        if shadow_version:
            result["shadow"] = {"alias": self.shadow_alias, "version": shadow_version, **stats.shadow}
            for key, value in stats.shadow.items():
                self.log.info("shadow %s v%s: %s = %.6f", self.shadow_alias, shadow_version, key, value)
        return result

    def _reason_scorer(self, scorer: Any, model: Any, version: Any, features: Sequence[str], top_k: int) -> Any:
        """The scorer plus per-row reason codes, explained against the version's holdout rows."""
        from airflow_mlops_provider.core.explain import Explainer, ReasonCodeScorer

        try:
            background = self.hook.load_holdout(version.run_id)
        except Exception as err:  # noqa: BLE001 - a version trained elsewhere has no holdout: use the input
            self.log.info("No holdout for v%s (%s): reason codes explained against the input's first rows",
                          version.version, type(err).__name__)
            with self.storage.parquet(self.input_path) as pf:
                background = next(pf.iter_batches(batch_size=1000, columns=list(features))).to_pandas()
        explainer = Explainer(model, background, features=features, scorer=scorer)
        self.log.info("Reason codes: top %d features per row by %s", top_k, explainer.method)
        return ReasonCodeScorer(scorer, explainer, top_k)

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


class ParquetInspectPartitionOperator(ObjectStorageMixin):
    """Row count, row groups and columns of a Parquet partition, from its footer; 0 rows is an explicit skip.

    ``output_path`` (where the scores will go) is checked against the allowed roots here, before
    any scoring. Returns :class:`~airflow_mlops_provider.results.PartitionResult`.
    """

    template_fields: Sequence[str] = ("path", "output_path", "conn_id")
    ui_color = "#d6c8ff"

    def __init__(self, *, path: str, output_path: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.path = path
        self.output_path = output_path

    def execute(self, context: Any) -> PartitionResult:
        from airflow.sdk.exceptions import AirflowSkipException

        self.storage.check(self.path, "input_path")
        if self.output_path not in (None, "", "None"):
            self.storage.check(self.output_path, "output_path")
        with self.storage.parquet(self.path) as pf:
            rows, groups, columns = pf.metadata.num_rows, pf.num_row_groups, list(pf.schema_arrow.names)
        if rows == 0:
            raise AirflowSkipException(f"input partition {self.path!r} has 0 rows: nothing to score")
        return {"path": str(self.path), "rows": rows, "row_groups": groups, "columns": columns}


class ParquetPlanShardsOperator(ObjectStorageMixin):
    """Row groups per scoring task, balanced by rows (:func:`airflow_mlops_provider.core.scoring.plan_shards`):
    a list of at most ``shards`` lists, the input of a mapped scoring task."""

    template_fields: Sequence[str] = ("path", "shards", "conn_id")
    ui_color = "#d6c8ff"

    def __init__(self, *, path: str, shards: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.shards = shards

    def execute(self, context: Any) -> list[list[int]]:
        from airflow_mlops_provider.core.scoring import plan_shards

        shards = int(self.shards)
        self.storage.check(self.path, "input_path")
        with self.storage.parquet(self.path) as pf:
            return plan_shards(pf, shards)


class MlflowBuildInputContractOperator(MlflowHookMixin):
    """A model version's input contract as a Great Expectations suite: its signature (columns and
    types) plus the value ranges of its training baseline; the id columns must be present.

    Returns the suite as a dict (the ``suite`` of ``GreatExpectationsValidateDataOperator``).
    """

    template_fields: Sequence[str] = ("model_name", "model_version", "key_columns", "mlflow_conn_id")
    ui_color = "#43b1f0"

    def __init__(self, *, model_name: str, model_version: str, key_columns: Sequence[str] = (),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.model_version = model_version
        self.key_columns = key_columns

    def execute(self, context: Any) -> dict[str, Any]:
        import mlflow

        from airflow_mlops_provider.core.contract import contract_suite, signature_inputs

        name, version = self.model_name, str(self.model_version)
        self.hook.activate()
        schema = mlflow.models.get_model_info(f"models:/{name}/{version}").signature.inputs
        profile = self.hook.load_baseline(name, version).profile
        return contract_suite(f"{name}_v{version}_input", signature_inputs(schema), profile, list(self.key_columns))


class ParquetCommitShardsOperator(ObjectStorageMixin):
    """Merge scored shards into the output partition in one atomic step, with the scoring manifest.

    Refuses shards scored by different model versions, and an output whose row count differs from
    the input's (``expected_rows``): the output is withdrawn. The manifest
    (:class:`~airflow_mlops_provider.results.ScoringManifest`) is written into the output's Parquet
    footer (key ``mlops.manifest``), so it is committed with the rows. Local staging shards are
    removed afterwards. Returns :class:`~airflow_mlops_provider.results.CommitResult`.

    :param shards: the scoring tasks' results (:class:`~airflow_mlops_provider.results.ScoreResult`). (templated)
    """

    template_fields: Sequence[str] = ("shards", "expected_rows", "input_path", "output_path", "conn_id")
    ui_color = "#5ec8e5"

    def __init__(self, *, shards: Any, expected_rows: int | str, output_path: str, input_path: str = "",
                 scoring_backend: str = "local", **kwargs: Any) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.shards = shards
        self.expected_rows = expected_rows
        self.input_path = input_path
        self.output_path = output_path
        self.scoring_backend = scoring_backend

    def execute(self, context: Any) -> CommitResult:
        import json
        import shutil

        from airflow_mlops_provider.core.scoring import merge_files
        from airflow_mlops_provider.hooks.storage import is_remote
        from airflow_mlops_provider.scoring import MANIFEST_KEY

        shards = sorted(self.shards, key=lambda s: s["output_path"])
        versions = {s["model_version"] for s in shards}
        if len(versions) != 1:
            raise RuntimeError(f"shards were scored by different model versions: {sorted(versions)}")
        target = self.storage.check(self.output_path, "output_path")
        expected = int(self.expected_rows)
        first = shards[0]
        manifest = {"model_name": first["model_name"], "model_version": first["model_version"],
                    "model_run_id": first["model_run_id"], "task_type": first.get("task_type"),
                    "output_columns": first.get("output_columns"), "input_path": str(self.input_path),
                    "output_path": str(target), "rows": expected, "shards": len(shards),
                    "scoring_backend": self.scoring_backend}
        with tempfile.TemporaryDirectory(prefix="mlops-commit-") as tmp:
            workdir = Path(tmp)
            parts = []
            for i, shard in enumerate(shards):
                (workdir / str(i)).mkdir()
                parts.append(self.storage.local_copy(shard["output_path"], workdir / str(i)))
            local_out = self.storage.local_target(str(target), workdir, "merged.parquet")
            rows = merge_files(parts, local_out, metadata={MANIFEST_KEY: json.dumps(manifest, sort_keys=True)})
            if rows != expected:
                local_out.unlink(missing_ok=True)
                raise RuntimeError(f"scored {rows} rows for {expected} input rows; output withdrawn")
            self.storage.publish(local_out, str(target))
        self._lineage_state = {"inputs": [s["output_path"] for s in shards], "output": str(target)}
        if not is_remote(first["output_path"]):
            shutil.rmtree(Path(first["output_path"]).parent, ignore_errors=True)
        result: CommitResult = {"output_path": str(target), "rows": rows, "model_version": first["model_version"],
                                "model_run_id": first["model_run_id"], "shards": len(shards),
                                "output_columns": first.get("output_columns"), "manifest": manifest}
        shadowed = [s for s in shards if s.get("shadow") and s["rows"]]
        if shadowed:
            keys = sorted({k for s in shadowed for k, v in s["shadow"].items() if isinstance(v, float)})
            result["shadow"] = {"version": shadowed[0]["shadow"]["version"]}
            for key in keys:  # row-weighted over the shards that scored rows
                weighted = [(s["shadow"][key], s["rows"]) for s in shadowed if key in s["shadow"]]
                result["shadow"][key] = sum(v * r for v, r in weighted) / sum(r for _, r in weighted)
        # The demo and `airflow dags test` users read this line on stdout.
        print(f"output partition {target}: {rows} rows scored by v{result['model_version']}")
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: the scored shards. Output: the partition they were merged into."""
        from airflow_mlops_provider.core.lineage import storage_dataset
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        state = getattr(self, "_lineage_state", None)
        if not state:
            return operator_lineage(outputs=[storage_dataset(str(self.output_path))])
        return operator_lineage(inputs=[storage_dataset(p) for p in state["inputs"]],
                                outputs=[storage_dataset(state["output"])])
