"""The ``local`` scoring backend: Arrow record batches streamed on Airflow workers, sharded by row group.

In a DAG: ``plan_shards`` (row groups balanced by rows) → ``score`` (one mapped
``MlflowBatchScoreOperator`` per shard, each writing a staging file) → ``commit`` (the shards
merged into the output partition in one atomic step, with the manifest in its Parquet footer,
exactly one row per input row). Inside a task: the input is read in place (or copied, bounded,
from an object store), scored by :func:`airflow_mlops_provider.core.scoring.score_file` and
published whole.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_mlops_provider.scoring import ScoringJob, ScoringTasks

STAGING_PATH = ("{{ mlops_home() }}/outputs/staging/{{ dag.dag_id }}/{{ run_id | replace(':', '_') }}"
                "/shard-{{ ti.map_index }}.parquet")


class LocalScoringBackend:
    name = "local"

    def tasks(self, *, model_name: str, model_version: Any, input_path: str, output_path: str,
              expected_rows: Any, key_columns: Sequence[str], shadow_alias: str, shards: Any,
              explain_top_k: Any = 0) -> ScoringTasks:
        from airflow_mlops_provider.operators.batch import (
            MlflowBatchScoreOperator,
            ParquetCommitShardsOperator,
            ParquetPlanShardsOperator,
        )

        plan = ParquetPlanShardsOperator(task_id="plan_shards", path=input_path, shards=shards)
        scores = MlflowBatchScoreOperator.partial(
            task_id="score", model_name=model_name, model_version=model_version, input_path=input_path,
            output_path=STAGING_PATH, key_columns=list(key_columns), shadow_alias=shadow_alias,
            scoring_backend=self.name, explain_top_k=explain_top_k,
        ).expand(row_groups=plan.output)
        commit = ParquetCommitShardsOperator(task_id="commit", shards=scores.output, expected_rows=expected_rows,
                                             input_path=input_path, output_path=output_path,
                                             scoring_backend=self.name)
        return ScoringTasks(first=plan, score=scores, commit=commit)

    def score(self, job: ScoringJob, storage: Any) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops_provider.core.scoring import open_parquet, score_file

        with tempfile.TemporaryDirectory(prefix="mlops-score-") as tmp:
            workdir = Path(tmp)
            local_in = storage.local_copy(job.input_path, workdir)
            pf = open_parquet(local_in, name=job.input_path)
            groups = list(job.row_groups) if job.row_groups is not None else None
            rows = sum(pf.metadata.row_group(g).num_rows for g in (groups if groups is not None
                                                                  else range(pf.num_row_groups)))
            if rows == 0 and groups is None:
                raise AirflowSkipException(f"input partition {job.input_path!r} has 0 rows: nothing to score")
            local_out = storage.local_target(job.output_path, workdir, "scored.parquet")
            stats = score_file(
                local_in, local_out, job.scorer, job.features, list(job.key_columns), constants=job.constants,
                chunk_rows=job.chunk_rows, expected_types=job.expected_types, shadow_predict=job.shadow_scorer,
                shadow_threshold=job.shadow_threshold, shadow_labels=job.shadow_labels, row_groups=groups,
                threads=job.threads)
            storage.publish(local_out, job.output_path)
        return stats
