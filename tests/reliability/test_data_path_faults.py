"""Bad values and broken storage on the data path, each run through the real operators or hook.

Each case names what is wrong (the column, the remote, the path) and the real cause, and leaves
nothing partial: a previous output stays byte-for-byte as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import numpy as np
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops_provider.exceptions import DataFileError, DataVersionError, OutputSpaceError
from tests.reliability.conftest import incoming
from tests.reliability.test_bad_inputs import drift, partition, score, uint64_partition, validate

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability")]


def test_infinite_values_are_refused_by_the_scoring_operator_on_its_own(env, champion, previous):
    """Without the batch DAG's contract in front of it, scoring still refuses ±inf, on any chunk."""
    from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator

    frame = partition(3000)
    frame.loc[2500, "distance_km"] = -np.inf  # past the first (pyfunc-checked) chunk
    src = incoming(env, "inf-only-scoring.parquet", frame)
    out = env.outputs_dir / "scores" / "date=inf.parquet"
    op = MlflowBatchScoreOperator(task_id="score", model_name="corpus-fraud", input_path=str(src),
                                  output_path=str(out), key_columns=["transaction_id"], chunk_rows=1000)
    from tests.reliability.conftest import context

    with pytest.raises(DataFileError, match=r"column 'distance_km' holds 1 infinite value\(s\) .* rows 2000..2999"):
        op.execute(context("score"))
    assert not out.exists()


def test_schema_enforcement_names_the_column_and_the_reason_without_rows(env, champion, previous, caplog):
    frame = uint64_partition()
    frame.loc[0, "tx_count_24h"] = np.uint64(7)  # in range: only MLflow's type enforcement refuses it
    src = incoming(env, "uint64-in-range.parquet", frame)
    out = env.outputs_dir / "scores" / "date=uint64.parquet"
    with pytest.raises(DataFileError) as err:
        score(env, src, out)
    message = str(err.value)
    assert "does not match the model's signature" in message
    assert "column tx_count_24h" in message and "uint64" in message, message
    # No row of the partition, nor the frame's table header, reaches the message.
    assert "amount" not in message and "customer_age" not in message
    assert not out.exists()


def test_fractional_values_in_a_long_column_are_refused_by_contract_and_scoring(env, champion, suite, previous):
    frame = partition()
    frame["tx_count_24h"] = frame["tx_count_24h"].astype(float)
    frame.loc[4, "tx_count_24h"] = 2.5
    src = incoming(env, "fractional-long.parquet", frame)
    with pytest.raises(AirflowFailException, match=r"column 'tx_count_24h' must hold whole numbers in an integer "
                                                   r"type \(the model's signature says 'long'\)"):
        validate(src, suite)
    out = env.outputs_dir / "scores" / "date=fractional.parquet"
    with pytest.raises(DataFileError, match=r"column 'tx_count_24h' holds 1 fractional value\(s\) in rows 0..399; "
                                            r"the model's signature says 'long'"):
        score(env, src, out)
    assert not out.exists()


def test_an_all_null_feature_gets_a_verdict_naming_it_and_a_report(env, champion):
    frame = partition()
    frame["amount"] = np.nan
    result = drift(incoming(env, "all-null-amount.parquet", frame), champion["version"], log_to_mlflow=False)
    assert result["not_tested"] == {"amount": "column 'amount' has no non-null finite value in the current data; "
                                              "not tested"}
    assert "amount" not in result["drifted_features"]
    assert os.path.getsize(result["report_path"]) > 0


@pytest.fixture
def small_disk(env):
    """A 2 MiB tmpfs under the outputs folder: a real full disk (ENOSPC), no quota tricks."""
    mount = env.outputs_dir / f"small-disk-{uuid.uuid4().hex[:8]}"
    mount.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        # A failed test's traceback may still hold a writer open on it: detach lazily then.
        subprocess.run(["umount", "--lazy", str(mount)], check=True)
        mount.rmdir()


def test_a_full_disk_names_the_output_and_keeps_the_previous_one(env, champion, small_disk):
    out = small_disk / "scores" / "date=2026-11-20.parquet"
    out.parent.mkdir()
    out.write_bytes(b"yesterday's complete partition")
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to the last byte
        while os.write(fd, b"\0" * 65536):
            pass
    except OSError as err:
        assert err.errno == 28, err
    finally:
        os.close(fd)
    src = incoming(env, "disk-full.parquet", partition(20_000))
    with pytest.raises(OutputSpaceError) as err:
        score(env, src, out)
    assert f"No space left on device while writing {str(out)!r}" in str(err.value)
    assert "the previous file there is unchanged" in str(err.value)
    assert out.read_bytes() == b"yesterday's complete partition"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name], "a temporary file was left behind"


@pytest.fixture
def tracked_not_pushed(dvc_repo, monkeypatch):
    """A file tracked by DVC (its md5 resolves) whose data is in neither the cache nor the remote."""
    path = dvc_repo.path / "tx.parquet"
    path.write_bytes(b"PAR1 transactions")
    subprocess.run(["dvc", "add", "-q", "tx.parquet"], cwd=dvc_repo.path, check=True)
    dvc_repo.git("add", "-A")
    dvc_repo.git("commit", "-qm", "data")
    shutil.rmtree(dvc_repo.path / ".dvc" / "cache")
    path.unlink()
    monkeypatch.setenv("AIRFLOW_CONN_DVC_DEFAULT", json.dumps({"conn_type": "dvc", "host": str(dvc_repo.path)}))
    from airflow_mlops_provider.hooks.dvc import DvcHook

    return DvcHook()


def test_dvc_data_missing_from_the_remote_names_the_remote_and_the_md5(dvc_repo, tracked_not_pushed):
    md5 = tracked_not_pushed.data_version("tx.parquet").md5
    with pytest.raises(DataVersionError) as err:
        tracked_not_pushed.read_bytes("tx.parquet")
    message = str(err.value)
    assert f"(md5 {md5}) is not in the local DVC cache nor in remote 'local' ({dvc_repo.remote})" in message
    assert "which does not hold it (was `dvc push` run?)" in message
    assert "neither as a DVC output nor as a Git-tracked file" not in message  # DVC's false cause


def test_an_unreachable_dvc_remote_is_named_as_such(dvc_repo, tracked_not_pushed):
    shutil.rmtree(dvc_repo.remote)
    with pytest.raises(DataVersionError, match=r"nor in remote 'local' \(.*\), which does not exist or cannot be "
                                               r"reached"):
        tracked_not_pushed.read_bytes("tx.parquet")
