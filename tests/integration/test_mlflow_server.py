"""MlflowHook against a real ``mlflow server`` started by the harness."""

from __future__ import annotations

import json
import time

import pytest

from airflow_mlops_provider.hooks.mlflow import MlflowHook
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("mlflow_server")]


def test_run_metric_round_trip_through_a_real_server(mlflow_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT",
                       json.dumps({"conn_type": "mlflow", "host": mlflow_server, "password": "any-token"}))
    hook = MlflowHook()
    ok, message = hook.test_connection()
    assert ok, message
    exp = hook.get_or_create_experiment("server-roundtrip")
    assert hook.get_or_create_experiment("server-roundtrip") == exp  # idempotent
    run = hook.client.create_run(exp)
    hook.client.log_metric(run.info.run_id, "rmse", 0.125, step=3)
    hook.client.set_terminated(run.info.run_id)
    fetched = hook.client.get_run(run.info.run_id)
    assert fetched.data.metrics["rmse"] == 0.125
    assert fetched.info.status == "FINISHED"
    history = hook.client.get_metric_history(run.info.run_id, "rmse")
    assert [(m.value, m.step) for m in history] == [(0.125, 3)]


def test_test_connection_reports_a_dead_url_quickly(monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": dead}))
    started = time.time()
    ok, message = MlflowHook().test_connection()
    assert not ok
    assert dead in message and "not reachable" in message
    assert time.time() - started < 30
