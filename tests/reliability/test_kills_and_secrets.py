"""Processes killed mid-way, object-store refusals, memory on a large partition, and the secret scan."""

from __future__ import annotations

import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import types

import pandas as pd
import pytest

from airflow_mlops_provider.core.demo_data import TARGET, generate
from tests.reliability.conftest import CONN_ID, MODEL, PASSWORD, conn_json, context, incoming

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability")]


def test_kill_9_mid_promotion_then_rerun_leaves_aliases_and_ledger_consistent(env, champion, secure_mlflow):
    """The promoting process dies right after moving ``champion``, before writing the ledger."""
    from airflow_mlops_provider.core import ledger
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.operators.registry import MlflowPromoteModelOperator

    name = "corpus-promo"
    client = MlflowHook().client
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, f"models:/{MODEL}/{champion['version']}")
    client.set_registered_model_alias(name, "champion", "1")
    decision = {"verdict": "promote", "challenger_version": "2", "champion_version": "1", "reasons": ["better"]}
    code = f"""
import os, signal, types
from mlflow import MlflowClient
real = MlflowClient.set_registered_model_alias
def dying(self, name, alias, version):
    real(self, name, alias, version)
    if alias == "champion":
        os.kill(os.getpid(), signal.SIGKILL)  # after the alias moved, before the ledger line
MlflowClient.set_registered_model_alias = dying
from airflow_mlops_provider.operators.registry import MlflowPromoteModelOperator
ctx = {{"ti": types.SimpleNamespace(dag_id="corpus", run_id="r1", task_id="promote", try_number=1)}}
MlflowPromoteModelOperator(task_id="promote", name={name!r}, decision={decision!r}).execute(ctx)
"""
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert str(client.get_model_version_by_alias(name, "previous").version) == "1"
    promoted = [r for r in ledger.read(env.ledger_path) if r.get("model") == name and r["event"] == "promoted"]
    assert promoted == []  # the kill landed between the alias and the ledger line
    op = MlflowPromoteModelOperator(task_id="promote", name=name, decision=decision)
    retried = op.execute({"ti": types.SimpleNamespace(dag_id="corpus", run_id="r1", task_id="promote",
                                                      try_number=2)})
    assert retried == {"name": name, "champion": "2", "previous": "1", "changed": True}
    again = op.execute(context("promote"))
    assert again["changed"] is False
    promoted = [r for r in ledger.read(env.ledger_path) if r.get("model") == name and r["event"] == "promoted"]
    assert len(promoted) == 1 and promoted[0]["recovered"] is True and promoted[0]["previous_champion"] == "1"
    assert len(client.search_model_versions(f"name = '{name}'")) == 2  # no duplicate versions


class _DenyingS3(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that refuses every request with AccessDenied (the stand-in for a bucket policy)."""

    def _deny(self):
        body = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                b"<Message>Access Denied</Message></Error>")
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _deny

    def log_message(self, *args):
        pass


def test_s3_access_denied_is_named_as_such(env, monkeypatch):
    from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DenyingS3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DENIED", json.dumps({
            "conn_type": "aws", "login": "AKIAEXAMPLE", "password": "not-a-real-key",
            "extra": {"endpoint_url": f"http://127.0.0.1:{server.server_port}", "region_name": "us-east-1"}}))
        monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", f"{env.root}, s3://landing")
        op = GreatExpectationsValidateDataOperator(task_id="validate", path="s3://landing/daily/tx.csv",
                                                   suite={"expectations": [{"type": "expect_column_to_exist",
                                                                            "kwargs": {"column": "amount"}}]},
                                                   conn_id="aws_denied")
        with pytest.raises(PermissionError, match=r"access to 's3://landing/daily/tx.csv' was denied"):
            op.execute(context("validate"))
    finally:
        server.shutdown()


def test_a_partition_ten_times_larger_is_scored_in_bounded_memory(env, champion, tmp_path):
    """Peak RSS of the real scoring operator on 10x the rows grows far less than 10x."""
    base = generate(20_000, seed=9).drop(columns=[TARGET])
    small = incoming(env, "usual.parquet", base)
    big = env.data_dir / "incoming" / "ten-times.parquet"
    pd.concat([base.assign(transaction_id=base["transaction_id"].astype(str) + f"-{i}") for i in range(10)],
              ignore_index=True).to_parquet(big, index=False, row_group_size=20_000)
    # One process scores the usual partition, then the 10x one: ru_maxrss is the process's peak
    # so far, so the second reading shows what the 10x partition added on top.
    code = """
import json, resource, sys, types
from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator
ctx = {"ti": types.SimpleNamespace(dag_id="corpus", run_id="r", task_id="score", try_number=1)}
peaks = {}
for label, src in (("usual", sys.argv[1]), ("ten_times", sys.argv[2])):
    result = MlflowBatchScoreOperator(task_id="score", model_name=sys.argv[3], input_path=src,
                                      output_path=f"{sys.argv[4]}/{label}.parquet", key_columns=["transaction_id"],
                                      chunk_rows=20_000).execute(ctx)
    peaks[label] = {"rows": result["rows"], "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
print(json.dumps(peaks))
"""
    out = env.outputs_dir / "memory"
    proc = subprocess.run([sys.executable, "-c", code, str(small), str(big), MODEL, str(out)], capture_output=True,
                          text=True, timeout=600, env={**os.environ})
    assert proc.returncode == 0, proc.stderr[-3000:]
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    assert peaks["usual"]["rows"] == 20_000 and peaks["ten_times"]["rows"] == 200_000
    # 10x the rows; memory is bounded by chunk_rows, not by the partition.
    assert peaks["ten_times"]["peak_mb"] < peaks["usual"]["peak_mb"] * 1.25, peaks


def test_no_secret_in_logs_xcom_rendered_fields_ledger_files_or_mlflow(env, champion, secure_mlflow, caplog,
                                                                      capfd):
    """Run the scoring, drift, validation and promotion paths with a password-protected MLflow,
    then look for the password everywhere the provider writes."""
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator
    from airflow_mlops_provider.operators.drift import EvidentlyCheckDriftOperator
    from airflow_mlops_provider.operators.registry import (
        MlflowGetModelVersionOperator,
        MlflowPromoteModelOperator,
    )

    caplog.set_level(logging.DEBUG)
    src = incoming(env, "scan.parquet", generate(500, seed=13).drop(columns=[TARGET]))
    ops = [
        MlflowGetModelVersionOperator(task_id="resolve", name=MODEL),
        MlflowBatchScoreOperator(task_id="score", model_name=MODEL, input_path=str(src),
                                 output_path=str(env.outputs_dir / "scan.parquet"), key_columns=["transaction_id"]),
        EvidentlyCheckDriftOperator(task_id="drift", model_name=MODEL, model_version=champion["version"],
                                    data_path=str(src)),
        MlflowPromoteModelOperator(task_id="promote", name=MODEL, decision={
            "verdict": "promote", "challenger_version": champion["version"],
            "champion_version": champion["version"], "reasons": []}),
    ]
    outputs, pushed = [], []
    for op in ops:
        ctx = context(op.task_id)
        outputs.append(op.execute(ctx))
        pushed.append(ctx["ti"].pushed)
        outputs.append({f: repr(getattr(op, f)) for f in op.template_fields})  # what the UI renders
    assert MlflowHook().test_connection()[0]
    printed = capfd.readouterr()
    places = {
        "logs": caplog.text + printed.out + printed.err,
        "return values and XCom": json.dumps([outputs, pushed], default=str),
        "environment (besides the connection Airflow was given)": json.dumps(
            {k: v for k, v in os.environ.items() if k != f"AIRFLOW_CONN_{CONN_ID.upper()}"}),
    }
    for path in env.root.rglob("*"):
        if path.is_file():
            places[f"file {path.relative_to(env.root)}"] = path.read_bytes().decode("latin-1")
    client = MlflowHook().client
    for run in client.search_runs([champion["experiment_id"]]):
        places[f"MLflow run {run.info.run_id}"] = json.dumps([run.data.params, run.data.tags])
    leaked = [where for where, text in places.items() if PASSWORD in text]
    assert not leaked, f"the MLflow password appears in: {leaked}"
    assert any(name.startswith("file ledger") for name in places), "the ledger was scanned"
    assert conn_json(secure_mlflow.url)  # the secret was real and in use (the calls above needed it)


def test_the_local_scoring_server_holds_no_mlflow_credentials(env, champion):
    """The local target serves a copy the task downloaded with the connection's credentials; the
    long-lived server process has neither the password nor the tracking URI in its environment."""
    import time
    from pathlib import Path

    from airflow_mlops_provider.core.local_serving import is_healthy, log_tail
    from airflow_mlops_provider.hooks.mlflow_serving import MlflowServingHook

    hook = MlflowServingHook()
    server = hook.start(MODEL, champion["version"])
    try:
        deadline = time.time() + 120
        while not is_healthy(server):
            assert time.time() < deadline, log_tail(server)
            time.sleep(0.5)
        environ = Path(f"/proc/{server.pid}/environ").read_bytes()
        assert PASSWORD.encode() not in environ and b"MLFLOW_TRACKING_URI" not in environ
        assert (env.root / "serving" / "models" / MODEL / f"v{champion['version']}" / "MLmodel").is_file()
    finally:
        hook.stop(server)
