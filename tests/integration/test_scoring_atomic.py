"""The output partition is all or nothing: a crash or a kill mid-write leaves readers the old file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops_provider.core.scoring import ScoringInputError, merge_files, score_file
from airflow_mlops_provider.exceptions import DataFileError

pytestmark = pytest.mark.integration


def write_input(path: Path, rows: int = 20_000, groups: int = 10_000) -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"id": np.arange(rows), "a": rng.normal(size=rows), "b": rng.normal(size=rows),
                      "c": rng.choice(["x", "y"], size=rows)})
    pq.write_table(table, path, row_group_size=groups)


def predict(frame):
    return 1 / (1 + np.exp(-(frame["a"].to_numpy() + frame["b"].to_numpy())))


def test_scores_every_row_once_with_constants(tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    write_input(src)
    stats = score_file(src, out, predict, ["a", "b"], ["id"], constants={"model_version": "7"}, chunk_rows=3000)
    table = pq.read_table(out)
    assert stats.rows == table.num_rows == 20_000
    assert table.column("id").to_pylist() == list(range(20_000))
    assert set(table.column("model_version").to_pylist()) == {"7"}
    expected = predict(pq.read_table(src).to_pandas())
    assert np.allclose(table.column("score").to_numpy(), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]


def test_a_failure_mid_stream_leaves_the_previous_output_untouched(tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    write_input(src)
    out.write_bytes(b"previous complete partition")
    calls = {"n": 0}

    def flaky(frame):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("model crashed on chunk 3")
        return predict(frame)

    with pytest.raises(DataFileError, match=r"could not score rows 4000\.\.5999 of .*RuntimeError: model crashed on chunk 3"):
        score_file(src, out, flaky, ["a", "b"], ["id"], chunk_rows=2000)
    assert out.read_bytes() == b"previous complete partition"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]  # no temp left


def test_a_killed_process_leaves_no_partial_output(tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    write_input(src, rows=200_000)
    code = f"""
import time, numpy as np
from airflow_mlops_provider.core.scoring import score_file
def slow(frame):
    time.sleep(0.3)
    return np.zeros(len(frame))
score_file({str(src)!r}, {str(out)!r}, slow, ["a", "b"], ["id"], chunk_rows=5000)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.time() + 60
    while not any(p.name.endswith(".tmp") and p.stat().st_size > 0 for p in tmp_path.iterdir()):
        assert proc.poll() is None, "the scorer finished before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a partial output became visible"
    # Readers only look at the final name; a rerun replaces whatever the kill left behind.
    orphans = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert orphans, "the kill should have left the writer's temp file behind"
    score_file(src, out, predict, ["a", "b"], ["id"], chunk_rows=50_000)
    assert pq.read_metadata(out).num_rows == 200_000
    # The rerun removed the killed writer's temp file (its flock died with it).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]


def test_bad_inputs_name_the_file_and_column(tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    write_input(src)
    with pytest.raises(ScoringInputError, match=r"lacks columns \['missing'\]"):
        score_file(src, out, predict, ["a", "missing"], ["id"])
    with pytest.raises(ScoringInputError, match="column 'c' has type string, the model expects double"):
        score_file(src, out, predict, ["a", "c"], ["id"], expected_types={"c": "double"})
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ScoringInputError, match="is not a readable Parquet file"):
        score_file(corrupt, out, predict, ["a"], ["id"])
    with pytest.raises(ScoringInputError, match="does not exist"):
        score_file(tmp_path / "nope.parquet", out, predict, ["a"], ["id"])
    assert not out.exists()


def test_shards_merge_into_one_partition(tmp_path):
    src = tmp_path / "in.parquet"
    write_input(src, rows=30_000, groups=5_000)
    from airflow_mlops_provider.core.scoring import plan_shards

    plan = plan_shards(str(src), 4)
    assert sorted(g for shard in plan for g in shard) == list(range(6)) and len(plan) == 4
    parts = []
    for i, groups in enumerate(plan):
        part = tmp_path / f"shard-{i}.parquet"
        score_file(src, part, predict, ["a", "b"], ["id"], row_groups=groups)
        parts.append(part)
    final = tmp_path / "final.parquet"
    assert merge_files(parts, final) == 30_000
    assert sorted(pq.read_table(final).column("id").to_pylist()) == list(range(30_000))
