"""A promotion that would wait on a missing pool fails the run at its start, naming the pool and the fix.

A real scheduler (its own AIRFLOW_HOME and SQLite DB) starts a triggered run of a DAG whose
promote task names a pool that does not exist; the provider's listener fails the run at once
instead of leaving the task in ``scheduled`` forever. With the pool created, the run starts.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import BIN

pytestmark = pytest.mark.integration

DAG_FILE = textwrap.dedent('''
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_mlops_provider.operators.registry import MlflowPromoteModelOperator

    for dag_id, pool in (("guard_missing_pool", "no_such_promotion_pool"), ("guard_pool_ok", "mlops_promotion")):
        with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, is_paused_upon_creation=False):
            MlflowPromoteModelOperator(task_id="promote", name="m", decision={"verdict": "reject"}, pool=pool)
''')


def airflow(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"airflow {' '.join(args)}: {proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    return proc.stdout


def run_row(db: Path, dag_id: str) -> tuple[str, str | None] | None:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("SELECT dr.state, n.content FROM dag_run dr LEFT JOIN dag_run_note n "
                            "ON n.dag_run_id = dr.id WHERE dr.dag_id = ?", (dag_id,)).fetchone()


def test_a_run_whose_promotion_pool_is_missing_fails_at_start(tmp_path):
    home, dags = tmp_path / "airflow", tmp_path / "dags"
    dags.mkdir()
    (dags / "guard_dags.py").write_text(DAG_FILE)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "2",
           "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1", "MLOPS_HOME": str(tmp_path / "mlops")}
    airflow(env, "db", "migrate")
    airflow(env, "pools", "set", "mlops_promotion", "1", "promotions")
    airflow(env, "dags", "reserialize")
    airflow(env, "dags", "trigger", "guard_missing_pool")
    airflow(env, "dags", "trigger", "guard_pool_ok")

    db = home / "airflow.db"
    log = open(tmp_path / "scheduler.log", "w")
    proc = subprocess.Popen([str(BIN / "airflow"), "scheduler"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            missing, ok = run_row(db, "guard_missing_pool"), run_row(db, "guard_pool_ok")
            if missing and missing[0] == "failed" and ok and ok[0] != "queued":
                break
            assert proc.poll() is None, (tmp_path / "scheduler.log").read_text()[-4000:]
            time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()

    state, note = run_row(db, "guard_missing_pool")
    assert state == "failed", (tmp_path / "scheduler.log").read_text()[-4000:]
    assert "'no_such_promotion_pool' does not exist" in note and "airflow-mlops init" in note, note
    assert "airflow pools set no_such_promotion_pool 1" in note
    # The same DAG shape with an existing pool starts normally: the guard only stops missing pools.
    state, note = run_row(db, "guard_pool_ok")
    assert state in ("running", "success", "failed") and note is None, (state, note)
