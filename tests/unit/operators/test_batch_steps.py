"""The batch pipeline's steps as operators: inspect the partition, plan shards, commit the shards
(atomic, with the manifest), on real Parquet files under MLOPS_HOME."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_mlops_provider.core.scoring import ScoringInputError
from airflow_mlops_provider.operators.batch import (
    ParquetCommitShardsOperator,
    ParquetInspectPartitionOperator,
    ParquetPlanShardsOperator,
)
from airflow_mlops_provider.scoring import MANIFEST_KEY


def partition(path, rows: int, group: int = 4):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": list(range(rows)), "x": [float(i) for i in range(rows)]}), path,
                   row_group_size=group)
    return path


def shard(path, ids: list[int], version: str = "3", shadow: dict | None = None) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": ids, "score": [i / 100 for i in ids],
                             "model_version": [version] * len(ids), "model_run_id": ["r1"] * len(ids)}), path)
    result = {"output_path": str(path), "rows": len(ids), "model_name": "fraud", "model_version": version,
              "model_run_id": "r1", "task_type": "binary", "output_columns": ["score"]}
    if shadow:
        result["shadow"] = shadow
    return result


def test_inspect_reads_the_footer_and_checks_both_paths(mlops_home, tmp_path):
    src = partition(mlops_home / "in" / "day.parquet", 10)
    op = ParquetInspectPartitionOperator(task_id="inspect_partition", path=str(src),
                                         output_path=str(mlops_home / "out" / "day.parquet"))
    assert op.execute({}) == {"path": str(src), "rows": 10, "row_groups": 3, "columns": ["id", "x"]}
    outside = ParquetInspectPartitionOperator(task_id="i", path=str(src), output_path=str(tmp_path / "x.parquet"))
    with pytest.raises(AirflowFailException, match="output_path"):
        outside.execute({})


def test_inspect_skips_an_empty_partition_and_names_a_corrupt_one(mlops_home):
    empty = partition(mlops_home / "in" / "empty.parquet", 0)
    with pytest.raises(AirflowSkipException, match="has 0 rows: nothing to score"):
        ParquetInspectPartitionOperator(task_id="i", path=str(empty)).execute({})
    bad = mlops_home / "in" / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ScoringInputError, match="is not a readable Parquet file"):
        ParquetInspectPartitionOperator(task_id="i", path=str(bad)).execute({})


def test_plan_balances_row_groups_over_at_most_the_shards_asked(mlops_home):
    src = partition(mlops_home / "in" / "day.parquet", 10)  # row groups of 4, 4, 2 rows
    assert ParquetPlanShardsOperator(task_id="p", path=str(src), shards="2").execute({}) == [[1, 2], [0]]
    assert ParquetPlanShardsOperator(task_id="p", path=str(src), shards=8).execute({}) == [[1], [0], [2]]
    with pytest.raises(ValueError, match="shards must be >= 1"):
        ParquetPlanShardsOperator(task_id="p", path=str(src), shards=0).execute({})


def test_commit_merges_the_shards_whole_with_the_manifest_in_the_footer(mlops_home):
    staging = mlops_home / "outputs" / "staging" / "dag" / "run"
    shards = [shard(staging / "shard-1.parquet", [3, 4], shadow={"version": "4", "decision_agreement": 0.5}),
              shard(staging / "shard-0.parquet", [0, 1, 2], shadow={"version": "4", "decision_agreement": 1.0})]
    target = mlops_home / "outputs" / "scores" / "date=2026-01-01.parquet"
    op = ParquetCommitShardsOperator(task_id="commit", shards=shards, expected_rows=5,
                                     input_path="/in/day.parquet", output_path=str(target))
    result = op.execute({})
    assert pq.read_table(target).column("id").to_pylist() == [0, 1, 2, 3, 4]  # shard order, one row each
    manifest = json.loads(pq.read_schema(target).metadata[MANIFEST_KEY.encode()])
    assert manifest == result["manifest"] == {
        "model_name": "fraud", "model_version": "3", "model_run_id": "r1", "task_type": "binary",
        "output_columns": ["score"], "input_path": "/in/day.parquet", "output_path": str(target), "rows": 5,
        "shards": 2, "scoring_backend": "local"}
    assert (result["rows"], result["model_version"], result["shards"]) == (5, "3", 2)
    assert result["shadow"] == {"version": "4", "decision_agreement": pytest.approx((1.0 * 3 + 0.5 * 2) / 5)}
    assert not staging.exists()  # the staging shards are cleaned up
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_commit_withdraws_an_output_with_the_wrong_row_count(mlops_home):
    staging = mlops_home / "staging"
    target = mlops_home / "scores" / "date=1.parquet"
    op = ParquetCommitShardsOperator(task_id="commit", shards=[shard(staging / "s0.parquet", [0, 1])],
                                     expected_rows=3, output_path=str(target))
    with pytest.raises(RuntimeError, match="scored 2 rows for 3 input rows; output withdrawn"):
        op.execute({})
    assert not target.exists()


def test_commit_refuses_shards_of_different_versions(mlops_home):
    shards = [shard(mlops_home / "s0.parquet", [0], "3"), shard(mlops_home / "s1.parquet", [1], "4")]
    op = ParquetCommitShardsOperator(task_id="commit", shards=shards, expected_rows=2,
                                     output_path=str(mlops_home / "out.parquet"))
    with pytest.raises(RuntimeError, match=r"different model versions: \['3', '4'\]"):
        op.execute({})
    assert not (mlops_home / "out.parquet").exists()
