"""Allowed roots for input and output paths (core.paths, with the roots Airflow is configured with)."""

from __future__ import annotations

import os

import pytest

from airflow_mlops_provider.exceptions import PathNotAllowedError
from airflow_mlops_provider.paths import allowed_roots, check_path


def test_mlops_home_stays_allowed_beside_configured_roots(mlops_home, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", str(tmp_path / "data"))
    assert check_path(str(mlops_home / "outputs" / "staging" / "shard-0.parquet"), "output_path")
    assert check_path(str(tmp_path / "data" / "x.parquet"), "input_path")


@pytest.mark.parametrize("bad", [" {home}/x.parquet", "{home}/x.parquet\n", "{home}/a\tb.parquet",
                                 "s3://ml/scores#/../../k", "s3://ml/scores/x?versionId=1"])
def test_blanks_control_characters_and_url_tricks_are_refused(mlops_home, monkeypatch, bad):
    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", "s3://ml/scores")
    with pytest.raises(PathNotAllowedError):
        check_path(bad.format(home=mlops_home), "output_path")


def test_default_root_is_mlops_home(mlops_home, monkeypatch):
    monkeypatch.delenv("MLOPS_ALLOWED_ROOTS", raising=False)
    assert [str(r) for r in allowed_roots()] == [os.path.realpath(mlops_home)]
    inside = mlops_home / "outputs" / "scores" / "date=2026-11-01.parquet"
    assert check_path(str(inside), "output_path") == str(inside)
    assert check_path(f"file://{inside}", "output_path")


@pytest.mark.parametrize("bad", ["/etc/cron.d/x", "{home}/../../../../etc/cron.d/x", "relative/out.parquet",
                                 "{home}-evil/x.parquet", "s3://bucket/x.parquet"])
def test_paths_outside_the_roots_are_refused_naming_path_and_roots(mlops_home, bad):
    path = bad.format(home=mlops_home)
    with pytest.raises(PathNotAllowedError) as err:
        check_path(path, "output_path")
    message = str(err.value)
    assert "output_path" in message and repr(path) in message
    assert os.path.realpath(mlops_home) in message and "AIRFLOW__MLOPS__ALLOWED_ROOTS" in message


def test_a_symlink_inside_the_home_pointing_out_is_refused(mlops_home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (mlops_home / "link").symlink_to(outside)
    with pytest.raises(PathNotAllowedError, match="resolved"):
        check_path(str(mlops_home / "link" / "x.parquet"), "output_path")


def test_object_store_roots_by_scheme_bucket_and_prefix(mlops_home, monkeypatch):
    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", f"{mlops_home}, s3://ml/scores, gs://landing")
    assert check_path("s3://ml/scores/date=1.parquet", "output_path")
    assert check_path("gs://landing/any/where.csv", "input_path")
    for bad in ("s3://ml/scores-other/x", "s3://ml/x", "s3://other/scores/x", "gs://landing/a/../../x",
                "https://ml/scores/x"):
        with pytest.raises(PathNotAllowedError):
            check_path(bad, "output_path")


def test_roots_from_airflow_config(mlops_home, tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_ALLOWED_ROOTS", raising=False)
    monkeypatch.setenv("AIRFLOW__MLOPS__ALLOWED_ROOTS", str(tmp_path / "data"))
    assert check_path(str(tmp_path / "data" / "x.parquet"), "input_path")
    with pytest.raises(PathNotAllowedError):
        check_path(str(tmp_path / "elsewhere" / "x.parquet"), "input_path")


def test_a_relative_root_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", "data/")
    with pytest.raises(PathNotAllowedError, match="not an absolute path"):
        allowed_roots()
