"""The hook plumbing is declared once: every MLflow operator (deploy operators aside) takes its
connection from MlflowHookMixin, templated, and from the DAG's default_args."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from datetime import datetime

import pytest

import airflow_mlops_provider.operators as operators_pkg
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.hooks.storage import ObjectStorageHook
from airflow_mlops_provider.operators.mixins import MlflowHookMixin, ObjectStorageMixin


def provider_operators() -> list[type]:
    found = {}
    for module in pkgutil.iter_modules(operators_pkg.__path__):
        if module.name.startswith("deploy"):  # the deploy targets' own base declares theirs
            continue
        loaded = importlib.import_module(f"{operators_pkg.__name__}.{module.name}")
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if cls.__module__ == loaded.__name__ and cls.__name__.endswith("Operator"):
                found[cls.__name__] = cls
    return list(found.values())


def test_every_operator_with_an_mlflow_connection_gets_it_from_the_mixin():
    with_mlflow = [cls for cls in provider_operators() if "mlflow_conn_id" in inspect.signature(cls).parameters
                   or "mlflow_conn_id" in getattr(cls, "template_fields", ())]
    assert len(with_mlflow) >= 10
    for cls in with_mlflow:
        assert issubclass(cls, MlflowHookMixin), cls.__name__
        assert "mlflow_conn_id" in cls.template_fields, cls.__name__
        assert "hook" not in vars(cls) and "mlflow_conn_id" not in inspect.signature(cls.__init__).parameters, \
            f"{cls.__name__} redeclares the MLflow hook plumbing"
    for cls in provider_operators():
        if "conn_id" in getattr(cls, "template_fields", ()):
            assert issubclass(cls, ObjectStorageMixin), cls.__name__


def test_the_connection_comes_from_default_args_and_the_hook_is_built_once():
    from airflow.sdk import DAG

    from airflow_mlops_provider.operators.batch import MlflowBuildInputContractOperator
    from airflow_mlops_provider.operators.drift import EvidentlyCheckDriftOperator

    with DAG("conns", schedule=None, start_date=datetime(2026, 1, 1),
             default_args={"mlflow_conn_id": "mlflow_prod", "conn_id": "lake"}):
        contract = MlflowBuildInputContractOperator(task_id="build_contract", model_name="m", model_version="1")
        drift = EvidentlyCheckDriftOperator(task_id="check_drift", model_name="m", model_version="1",
                                            data_path="/d.parquet", mlflow_conn_id="mlflow_other")
    assert contract.mlflow_conn_id == "mlflow_prod"
    assert (drift.mlflow_conn_id, drift.conn_id) == ("mlflow_other", "lake")
    assert isinstance(contract.hook, MlflowHook) and contract.hook is contract.hook
    assert contract.hook.mlflow_conn_id == "mlflow_prod"
    assert isinstance(drift.storage, ObjectStorageHook) and drift.storage.conn_id == "lake"


@pytest.mark.parametrize("cls_name", ["MlflowBatchScoreOperator", "EvidentlyCheckDriftOperator",
                                      "MlflowCheckPerformanceDecayOperator"])
def test_operators_that_read_storage_and_mlflow_have_both_connections(cls_name):
    cls = {c.__name__: c for c in provider_operators()}[cls_name]
    assert {"mlflow_conn_id", "conn_id"} <= set(cls.template_fields)
