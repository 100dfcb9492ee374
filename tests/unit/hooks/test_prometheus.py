"""PushgatewayHook without a gateway: disabled when unset, one warning when down, never raises."""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from airflow_mlops_provider.hooks import prometheus
from airflow_mlops_provider.hooks.prometheus import PushgatewayHook


class _Ti:
    dag_id, task_id, run_id, map_index = "mlops_batch_inference", "score", "manual__1", 3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(prometheus, "_warned", set())
    monkeypatch.delenv("AIRFLOW_CONN_PUSHGATEWAY_DEFAULT", raising=False)


def test_without_the_connection_nothing_is_pushed_and_nothing_is_said(caplog):
    caplog.set_level(logging.INFO)
    assert PushgatewayHook().push({"drift_share": 0.5}, labels={"model": "m"}, grouping={"model": "m"}) is False
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_a_gateway_that_is_down_is_one_warning_and_never_an_error(monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_PUSHGATEWAY_DEFAULT",
                       json.dumps({"conn_type": "pushgateway", "host": f"http://127.0.0.1:{_closed_port()}"}))
    for _ in range(3):
        assert prometheus.push_task_metrics({"ti": _Ti()}, model="m", version="2", metrics={"rows_scored": 10}) is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is unavailable; metrics are not pushed" in warnings[0].getMessage()


def test_what_is_pushed_carries_model_version_and_dag_labels_per_shard(monkeypatch):
    """A stand-in HTTP endpoint records the request (the real gateway is in the batch DAG test)."""
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen["path"] = self.path
            seen["auth"] = self.headers.get("Authorization")
            seen["body"] = self.rfile.read(int(self.headers["Content-Length"])).decode()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    monkeypatch.setenv("AIRFLOW_CONN_PUSHGATEWAY_DEFAULT", json.dumps(
        {"conn_type": "pushgateway", "host": f"http://127.0.0.1:{server.server_port}", "login": "pusher", "password": "push-secret"}))
    assert prometheus.push_task_metrics({"ti": _Ti()}, model="fraud", version="7",
                                        metrics={"rows_scored": 1200, "skipped": None}) is True
    server.server_close()
    assert seen["path"] == "/metrics/job/mlops/dag_id/mlops_batch_inference/map_index/3/model/fraud/task_id/score"
    assert seen["auth"].startswith("Basic ")
    assert 'mlops_rows_scored{dag_id="mlops_batch_inference",map_index="3",model="fraud",run_id="manual__1",' \
           'task_id="score",version="7"} 1200.0' in seen["body"]
    assert "skipped" not in seen["body"]
