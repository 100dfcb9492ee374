"""Where MLOPS_HOME defaults to: never inside site-packages or a virtualenv, one folder per deployment."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from airflow_mlops_provider.core import settings


def make_tree(root: Path, *, git: bool = True, name: str = "airflow-mlops-provider") -> Path:
    """A folder holding ``airflow_mlops_provider/`` beside a pyproject.toml; returns the package dir."""
    package = root / "airflow_mlops_provider"
    package.mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[build-system]\nrequires = ["hatchling"]\n\n[project]\nname = "{name}"\n')
    if git:
        (root / ".git").mkdir()
    return package


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("MLOPS_HOME", "AIRFLOW__MLOPS__HOME", "AIRFLOW_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow-home"))
    return monkeypatch


def test_a_source_checkout_keeps_its_state_at_the_repo_root(tmp_path):
    package = make_tree(tmp_path / "repo")
    assert settings.source_checkout(package) == tmp_path / "repo"


def test_a_git_worktree_counts_as_a_checkout(tmp_path):
    package = make_tree(tmp_path / "wt", git=False)
    (tmp_path / "wt" / ".git").write_text("gitdir: /elsewhere/.git/worktrees/wt\n")
    assert settings.source_checkout(package) == tmp_path / "wt"


def test_a_pyproject_left_in_site_packages_is_not_a_checkout(tmp_path):
    # kubernetes_asyncio leaves a pyproject.toml in site-packages; even one naming this project
    # (and a stray .git) does not make an installed package a checkout.
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    package = make_tree(site)
    assert settings.source_checkout(package) is None


def test_another_projects_checkout_or_no_git_is_not_ours(tmp_path):
    assert settings.source_checkout(make_tree(tmp_path / "other", name="kubernetes_asyncio")) is None
    assert settings.source_checkout(make_tree(tmp_path / "nogit", git=False)) is None


def test_a_package_inside_the_running_virtualenv_is_installed(tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    package = make_tree(venv / "src")
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path / "python"))
    assert settings.source_checkout(package) is None


def test_installed_default_is_under_airflow_home_not_the_working_directory(clean_env, tmp_path):
    clean_env.setattr(settings, "_PACKAGE_DIR", make_tree(tmp_path / "venv" / "lib" / "site-packages"))
    clean_env.chdir(tmp_path)
    assert settings.mlops_home().root == (tmp_path / "airflow-home" / "mlops").resolve()
    clean_env.delenv("AIRFLOW_HOME")
    clean_env.setenv("HOME", str(tmp_path / "user"))
    assert settings.mlops_home().root == (tmp_path / "user" / "airflow" / "mlops").resolve()


def test_checkout_default_is_dot_mlops_at_the_root(clean_env, tmp_path):
    clean_env.setattr(settings, "_PACKAGE_DIR", make_tree(tmp_path / "repo"))
    assert settings.mlops_home().root == (tmp_path / "repo" / ".mlops").resolve()


def test_airflow_config_file_overrides_the_default(clean_env, tmp_path):
    clean_env.setattr(settings, "_PACKAGE_DIR", make_tree(tmp_path / "repo"))
    cfg = tmp_path / "airflow-home" / "airflow.cfg"
    cfg.parent.mkdir()
    cfg.write_text(f"[core]\ndags_folder = /x\n\n[mlops]\nhome = {tmp_path / 'from-cfg'}\n")
    assert settings.mlops_home().root == (tmp_path / "from-cfg").resolve()
    other = tmp_path / "other.cfg"
    other.write_text(f"[mlops]\nhome = {tmp_path / 'from-airflow-config'}\n")
    clean_env.setenv("AIRFLOW_CONFIG", str(other))
    assert settings.mlops_home().root == (tmp_path / "from-airflow-config").resolve()


def test_environment_overrides_config_and_mlops_home_overrides_all(clean_env, tmp_path):
    cfg = tmp_path / "airflow-home" / "airflow.cfg"
    cfg.parent.mkdir()
    cfg.write_text(f"[mlops]\nhome = {tmp_path / 'from-cfg'}\n")
    clean_env.setenv("AIRFLOW__MLOPS__HOME", str(tmp_path / "from-env-config"))
    assert settings.resolve_home() == (tmp_path / "from-env-config", "Airflow config [mlops] home")
    clean_env.setenv("MLOPS_HOME", str(tmp_path / "explicit"))
    assert settings.mlops_home().root == (tmp_path / "explicit").resolve()


def test_the_home_in_use_is_logged_once(clean_env, tmp_path, caplog):
    clean_env.setenv("MLOPS_HOME", str(tmp_path / "logged-home"))
    with caplog.at_level(logging.INFO, logger=settings.__name__):
        for _ in range(3):
            settings.mlops_home()
    lines = [r.getMessage() for r in caplog.records if "logged-home" in r.getMessage()]
    assert lines == [f"MLOPS_HOME is {(tmp_path / 'logged-home').resolve()} (the MLOPS_HOME environment variable)"]
