"""The provider is registered with Airflow: providers list, connection types, form fields."""

from __future__ import annotations

import json
import subprocess

import pytest

from airflow_mlops_provider import __version__
from tests.conftest import BIN

pytestmark = pytest.mark.integration


def airflow(*args: str) -> str:
    proc = subprocess.run([str(BIN / "airflow"), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_providers_list_and_hooks(airflow_db):
    providers = json.loads(airflow("providers", "list", "--output", "json"))
    ours = [p for p in providers if p["package_name"] == "airflow-mlops-provider"]
    assert ours and ours[0]["version"] == __version__
    hooks = json.loads(airflow("providers", "hooks", "--output", "json"))
    by_type = {h["connection_type"]: h for h in hooks}
    assert by_type["mlflow"]["class"] == "airflow_mlops_provider.hooks.mlflow.MlflowHook"
    assert by_type["dvc"]["class"] == "airflow_mlops_provider.hooks.dvc.DvcHook"
    assert by_type["pushgateway"]["class"] == "airflow_mlops_provider.hooks.prometheus.PushgatewayHook"


def test_connection_form_metadata_is_valid_for_the_ui():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    hooks = pm.hooks
    assert hooks["mlflow"].connection_type == "mlflow" and hooks["dvc"].connection_type == "dvc"
    behaviours = pm.field_behaviours
    assert behaviours["mlflow"]["relabeling"]["host"] == "Tracking URI"
    assert "port" in behaviours["dvc"]["hidden_fields"]
    assert behaviours["pushgateway"]["relabeling"]["host"] == "Pushgateway URL"


def test_missing_optional_dependency_names_the_extra():
    from airflow_mlops_provider.core.optional import require
    from airflow_mlops_provider.exceptions import MissingDependencyError

    with pytest.raises(MissingDependencyError, match=r"pip install 'airflow-mlops-provider\[evidently\]'"):
        require("evidently.no_such_submodule")
    with pytest.raises(MissingDependencyError, match=r"\[kubernetes\]"):
        require("airflow.providers.cncf.kubernetes.no_such_module")


def test_the_models_view_plugin_is_registered_once_with_the_repository_plugins_folder(airflow_db):
    # The entry point registers the plugin; the plugins/ shim (make ui, docker-compose) must not
    # register it a second time, which Airflow reports as an import error.
    import os

    from tests.conftest import REPO_ROOT

    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins")}
    proc = subprocess.run([str(BIN / "airflow"), "plugins", "--output", "json"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plugins = json.loads(proc.stdout[proc.stdout.index("["):])
    ours = [p for p in plugins if p["name"] == "mlops_models"]
    assert len(ours) == 1 and "airflow-mlops-provider" in str(ours[0]["source"]), ours
    assert "already registered" not in proc.stdout + proc.stderr


def test_init_creates_the_pool_and_doctor_names_the_fix_for_what_is_missing(airflow_db, tmp_path):
    import os

    env = {**os.environ, "MLOPS_HOME": str(tmp_path / "home")}
    out = subprocess.run([str(BIN / "airflow-mlops"), "init", "--pool", "doctor_pool"], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0 and "pool 'doctor_pool' created (1 slot)" in out.stdout, out.stdout + out.stderr
    assert (tmp_path / "home" / "ledger").is_dir()
    pools = json.loads(airflow("pools", "list", "--output", "json"))
    assert {"pool": "doctor_pool", "slots": "1"}.items() <= {k: str(v) for k, v in next(
        p for p in pools if p["pool"] == "doctor_pool").items()}.items()
    doctor = subprocess.run([str(BIN / "airflow"), "mlops", "doctor", "--pool", "no_such_pool"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "[FAIL] promotion pool: pool 'no_such_pool' does not exist" in doctor.stdout
    assert "fix: airflow-mlops init" in doctor.stdout
    assert "[  ok] Models view plugin" in doctor.stdout and "[  ok] provider" in doctor.stdout
