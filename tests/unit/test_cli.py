"""airflow-mlops init / doctor: the arguments, and the checks that need no Airflow DB or service."""

from __future__ import annotations

from importlib import metadata

import pytest

from airflow_mlops_provider import cli
from airflow_mlops_provider.cli import commands


def test_both_doors_take_the_same_commands_and_arguments():
    args = cli.build_parser().parse_args(["init", "--pool", "promos", "--allowed-roots", "/data", "--data-repo"])
    assert (args.command, args.pool, args.allowed_roots, args.data_repo) == ("init", "promos", "/data", True)
    doctor = cli.build_parser().parse_args(["doctor"])
    assert (doctor.mlflow_conn_id, doctor.dvc_conn_id, doctor.storage_conn_id) == ("mlflow_default", "dvc_default",
                                                                                    None)
    (group,) = cli.get_cli_commands()
    assert group.name == "mlops"
    flags = {c.name: sorted(a.flags[0] for a in c.args) for c in group.subcommands}
    assert flags == {"init": ["--allowed-roots", "--data-repo", "--pool"],
                     "doctor": ["--dvc-conn-id", "--mlflow-conn-id", "--pool", "--storage-conn-id"],
                     "history": ["--alias", "--at", "--compare", "--json", "--mlflow-conn-id", "--model", "--target"],
                     "webhook": ["--mlflow-conn-id", "--url"]}


def test_the_provider_info_lists_the_cli_and_the_plugin():
    from airflow_mlops_provider.get_provider_info import get_provider_info

    info = get_provider_info()
    assert info["cli"] == ["airflow_mlops_provider.cli.get_cli_commands"]
    assert info["plugins"] == [{"name": "mlops_models",
                                "plugin-class": "airflow_mlops_provider.ui.plugin.MlopsModelsPlugin"}]
    assert set(info["config"]["mlops"]["options"]) == {"home", "allowed_roots", "mlflow_webhook_secret"}
    assert info["config"]["mlops"]["options"]["mlflow_webhook_secret"]["sensitive"] is True  # masked by Airflow


def test_home_inside_an_installation_fails_naming_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "venv" / "lib" / "site-packages" / ".mlops"))
    check = commands.check_home()
    assert check.status == commands.FAIL and "inside an installation" in check.detail
    assert "[mlops] home" in check.fix


def test_a_missing_home_fails_with_init_as_the_fix_then_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    check = commands.check_home()
    assert check.status == commands.FAIL and "does not exist" in check.detail and "airflow-mlops init" in check.fix
    (tmp_path / "home").mkdir()
    assert commands.check_home().status == commands.OK


def test_bad_allowed_roots_fail_naming_the_config_key(mlops_home, monkeypatch):
    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", "relative/folder")
    check = commands.check_allowed_roots()
    assert check.status == commands.FAIL and "relative/folder" in check.detail
    assert "AIRFLOW__MLOPS__ALLOWED_ROOTS" in check.fix
    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", "/data/ml, s3://bucket/scores")
    check = commands.check_allowed_roots()
    assert check.status == commands.OK and "s3://bucket/scores" in check.detail


@pytest.mark.parametrize(("roots", "status"), [("s3://bucket/scores", commands.FAIL), ("", commands.WARN)])
def test_an_old_s3fs_is_named_with_the_extra_that_fixes_it(mlops_home, monkeypatch, roots, status):
    real = metadata.version
    monkeypatch.setattr(commands.metadata, "version", lambda d: "0.4.2" if d == "s3fs" else real(d))
    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", roots)
    (check,) = commands.check_object_store(None)
    assert check.status == status and "s3fs 0.4.2 is older than 2023.10.0" in check.detail
    assert check.fix == "pip install 'airflow-mlops-provider[s3]'"


def test_versions_are_reported_with_the_extra_of_what_is_missing(monkeypatch):
    real = metadata.version

    def version(dist):
        if dist == "fairlearn":
            raise metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(commands.metadata, "version", version)
    check = commands.check_versions()
    assert check.status == commands.INFO
    assert f"apache-airflow {real('apache-airflow')}" in check.detail and "fairlearn ([fairness])" in check.detail


def test_a_failed_check_renders_its_fix():
    text = commands.Check("promotion pool", commands.FAIL, "pool 'p' does not exist", commands.pool_fix("p")).render()
    assert text == ("[FAIL] promotion pool: pool 'p' does not exist\n"
                    "       fix: airflow-mlops init (or: airflow pools set p 1 \"champion promotions, one at a time "
                    "(mlops)\")")
