"""DvcHook on a real git + DVC repository with a local remote."""

from __future__ import annotations

import json
import shutil

import pytest

from airflow_mlops_provider.exceptions import ConnectionConfigError, DataVersionError
from airflow_mlops_provider.hooks.dvc import DvcHook

pytestmark = pytest.mark.integration


@pytest.fixture
def hook(dvc_repo, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DVC_DEFAULT", json.dumps({"conn_type": "dvc", "host": str(dvc_repo.path)}))
    return DvcHook()


def test_two_revs_have_two_versions_and_read_back_exactly(dvc_repo, hook):
    v1_bytes, v2_bytes = b"id,amount\n1,10.5\n2,3.25\n", b"id,amount\n1,10.5\n2,3.25\n3,99.0\n"
    c1 = dvc_repo.commit_file("data/tx.csv", v1_bytes, "v1", tag="v1")
    c2 = dvc_repo.commit_file("data/tx.csv", v2_bytes, "v2", tag="v2")
    v1, v2 = hook.data_version("data/tx.csv", "v1"), hook.data_version("data/tx.csv", "v2")
    assert (v1.commit, v2.commit) == (c1, c2)
    assert v1.md5 != v2.md5 and v1.id != v2.id
    assert v1.size == len(v1_bytes)
    assert hook.data_version("data/tx.csv").commit == c2  # default rev: HEAD
    # Read through the remote only: drop the local cache so DVC has to fetch.
    shutil.rmtree(dvc_repo.path / ".dvc" / "cache")
    assert hook.read_bytes("data/tx.csv", "v1") == v1_bytes
    assert hook.read_bytes("data/tx.csv", c2) == v2_bytes
    assert hook.get_url("data/tx.csv", "v1").startswith(str(dvc_repo.remote))


def test_commit_version_is_idempotent_and_pushes(dvc_repo, hook):
    (dvc_repo.path / "train.csv").write_text("a\n1\n")
    first = hook.commit_version("train.csv", "data v1")
    again = hook.commit_version("train.csv", "data v1 again")
    assert again.commit == first.commit and again.md5 == first.md5
    (dvc_repo.path / "train.csv").write_text("a\n2\n")
    second = hook.commit_version("train.csv", "data v2")
    assert second.commit != first.commit and second.md5 != first.md5
    assert any(dvc_repo.remote.rglob("*")), "push left the remote empty"
    assert hook.test_connection()[0]


def test_bad_input_errors_name_the_value(dvc_repo, hook):
    dvc_repo.commit_file("data/tx.csv", b"x\n1\n", "v1")
    (dvc_repo.path / "README.md").write_text("plain git file\n")
    dvc_repo.git("add", "README.md")
    dvc_repo.git("commit", "-qm", "readme")
    with pytest.raises(DataVersionError, match="'no-such-rev'"):
        hook.data_version("data/tx.csv", "no-such-rev")
    with pytest.raises(DataVersionError, match="'data/missing.csv' does not exist"):
        hook.data_version("data/missing.csv")
    with pytest.raises(DataVersionError, match="'README.md'.*not by DVC"):
        hook.data_version("README.md")
    with pytest.raises(DataVersionError, match="'no-such-rev'"):
        hook.read_bytes("data/tx.csv", "no-such-rev")


def test_not_a_repo_and_bad_connection(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DVC_DEFAULT", json.dumps({"conn_type": "dvc", "host": str(tmp_path)}))
    with pytest.raises(DataVersionError, match="not a DVC repository"):
        DvcHook().data_version("x.csv")
    ok, message = DvcHook().test_connection()
    assert not ok and str(tmp_path) in message
    monkeypatch.setenv("AIRFLOW_CONN_DVC_DEFAULT", json.dumps(
        {"conn_type": "dvc", "host": str(tmp_path), "extra": {"remote_config": "nope"}}))
    with pytest.raises(ConnectionConfigError, match="remote_config"):
        DvcHook().settings  # noqa: B018


def test_remote_credentials_from_the_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_DVC_S3", json.dumps({
        "conn_type": "dvc", "host": "https://example.invalid/repo.git", "schema": "main",
        "login": "AKIAEXAMPLE", "password": "secret-key",
        "extra": {"remote": "storage", "remote_config": {"endpointurl": "http://127.0.0.1:9000"}}}))
    settings = DvcHook("dvc_s3").settings
    assert settings["rev"] == "main" and settings["remote"] == "storage"
    assert settings["remote_config"] == {"endpointurl": "http://127.0.0.1:9000",
                                         "access_key_id": "AKIAEXAMPLE", "secret_access_key": "secret-key"}
    assert not DvcHook("dvc_s3").is_local
