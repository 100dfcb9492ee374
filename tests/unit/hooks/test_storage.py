"""The storage hook on real files: local paths in place, and a real fsspec store (``memory://``)
registered with Airflow's ObjectStoragePath for the remote paths."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops_provider.core.scoring import ScoringInputError
from airflow_mlops_provider.hooks.storage import LocalCopyTooLargeError, ObjectStorageHook, is_remote


@pytest.fixture
def memory_store():
    """``memory://`` served by fsspec's in-memory filesystem, as a provider would register a scheme."""
    from airflow.sdk.io import fs
    from fsspec.implementations.memory import MemoryFileSystem

    store = MemoryFileSystem()
    store.store.clear()
    registered = fs._register_filesystems()
    registered["memory"] = lambda conn_id: store
    yield store
    registered.pop("memory", None)
    store.store.clear()
    store.pseudo_dirs[:] = [""]


def table(rows: int) -> pa.Table:
    return pa.table({"id": list(range(rows)), "x": [float(i) for i in range(rows)]})


def put(store, key: str, data: bytes) -> str:
    with store.open(key, "wb") as fh:
        fh.write(data)
    return f"memory://{key.lstrip('/')}"


def parquet_bytes(rows: int, tmp_path) -> bytes:
    path = tmp_path / "t.parquet"
    pq.write_table(table(rows), path, row_group_size=4)
    return path.read_bytes()


def test_remote_and_local_are_told_apart():
    assert is_remote("s3://b/k") and is_remote("memory://b/k")
    assert not is_remote("/data/x.parquet") and not is_remote("file:///data/x.parquet")


def test_a_local_file_is_used_in_place_and_its_status_read(tmp_path):
    hook = ObjectStorageHook()
    path = tmp_path / "p.parquet"
    pq.write_table(table(10), path, row_group_size=4)
    assert hook.local_copy(str(path), tmp_path / "nowhere") == path
    assert hook.local_copy(path.as_uri(), tmp_path / "nowhere") == path
    assert hook.status(str(path)) == {"path": str(path), "size": path.stat().st_size}
    assert hook.status(str(tmp_path / "missing.parquet")) is None
    with hook.parquet(str(path)) as pf:
        assert (pf.metadata.num_rows, pf.num_row_groups) == (10, 3)
    assert hook.parquet_columns(str(path)) == ["id", "x"]


def test_a_remote_parquet_file_is_streamed_through_the_connection(memory_store, tmp_path):
    uri = put(memory_store, "/lake/in/day=1.parquet", parquet_bytes(10, tmp_path))
    hook = ObjectStorageHook(conn_id="lake")
    assert hook.status(uri)["size"] == len(memory_store.cat_file("/lake/in/day=1.parquet"))
    with hook.parquet(uri) as pf:
        assert pf.num_row_groups == 3
        assert pf.read(columns=["x"]).column(0).to_pylist() == [float(i) for i in range(10)]
    with pytest.raises(ScoringInputError, match="'memory://lake/in/nope.parquet' does not exist"):
        with hook.parquet("memory://lake/in/nope.parquet"):
            pass
    bad = put(memory_store, "/lake/in/bad.parquet", b"not parquet")
    with pytest.raises(ScoringInputError, match="'memory://lake/in/bad.parquet' is not a readable Parquet file"):
        with hook.parquet(bad):
            pass


def test_a_local_copy_is_bounded_and_says_by_what(memory_store, tmp_path):
    data = parquet_bytes(10, tmp_path)
    uri = put(memory_store, "/lake/in/day=2.parquet", data)
    work = tmp_path / "work"
    work.mkdir()
    copy = ObjectStorageHook(max_local_copy_bytes=len(data)).local_copy(uri, work)
    assert copy.parent == work and copy.read_bytes() == data
    with pytest.raises(LocalCopyTooLargeError, match=rf"is {len(data)} bytes, more than the local-copy limit of "
                                                     rf"{len(data) - 1} bytes; raise \[mlops\] max_local_copy_bytes"):
        ObjectStorageHook(max_local_copy_bytes=len(data) - 1).local_copy(uri, work)


def test_the_copy_limit_comes_from_the_environment(memory_store, tmp_path, monkeypatch):
    uri = put(memory_store, "/lake/x.bin", b"x" * 100)
    monkeypatch.setenv("MLOPS_MAX_LOCAL_COPY_BYTES", "99")
    with pytest.raises(LocalCopyTooLargeError, match="limit of 99 bytes"):
        ObjectStorageHook().local_copy(uri, tmp_path)
    monkeypatch.setenv("MLOPS_MAX_LOCAL_COPY_BYTES", "lots")
    with pytest.raises(ValueError, match="max_local_copy_bytes must be a whole number of bytes, got 'lots'"):
        ObjectStorageHook().local_copy(uri, tmp_path)


def test_publish_is_whole_locally_and_remotely(memory_store, tmp_path):
    hook = ObjectStorageHook()
    src = tmp_path / "scored.parquet"
    src.write_bytes(b"complete")
    final = tmp_path / "out" / "date=1.parquet"
    assert hook.publish(src, str(final)) == str(final)
    assert final.read_bytes() == b"complete"
    assert sorted(p.name for p in final.parent.iterdir()) == ["date=1.parquet"]  # no temp left
    # Written in place by an atomic writer: publishing is a no-op.
    assert hook.local_target(str(final), tmp_path) == final
    assert hook.publish(final, str(final)) == str(final) and final.read_bytes() == b"complete"
    remote = "memory://lake/out/date=1.parquet"
    assert hook.local_target(remote, tmp_path, "x.parquet") == tmp_path / "x.parquet"
    assert hook.publish(src, remote) == remote
    assert memory_store.cat_file("/lake/out/date=1.parquet") == b"complete"
    assert hook.publish_bytes(b"abc", "memory://lake/r.csv") == "memory://lake/r.csv"
    assert memory_store.cat_file("/lake/r.csv") == b"abc"
    assert hook.publish_bytes(b"abc", str(tmp_path / "r.csv")) == (tmp_path / "r.csv").resolve().as_uri()
    hook.remove(remote)
    hook.remove(str(final))
    assert hook.status(remote) is None and not final.exists()


def test_read_frame_names_a_missing_file(memory_store, tmp_path):
    hook = ObjectStorageHook()
    uri = put(memory_store, "/lake/t.csv", b"a,b\n1,2\n")
    assert hook.read_frame(uri, "csv").to_dict("records") == [{"a": 1, "b": 2}]
    for missing in ("memory://lake/none.csv", str(tmp_path / "none.csv")):
        with pytest.raises(FileNotFoundError, match=f"Data file '{missing}' does not exist"):
            hook.read_frame(missing, "csv")


def test_paths_outside_the_allowed_roots_are_refused(tmp_path, mlops_home):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="input_path"):
        ObjectStorageHook.check(str(tmp_path / "elsewhere.parquet"), "input_path")
    inside = str(mlops_home / "x.parquet")
    assert ObjectStorageHook.check(inside, "input_path")
