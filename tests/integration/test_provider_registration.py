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
