"""Data-triggered retraining through the real scheduler, dag-processor and triggerer on PostgreSQL.

Nothing here calls ``dags test``: the dag-processor parses the shipped DAGs into a PostgreSQL
metadata DB, the triggerer runs mlops_retrain's AssetWatcher (a DvcNewDataVersionTrigger on a
real git + DVC repo), and the scheduler must create an asset-triggered mlops_retrain run when a
new data version is committed — once per version. Skipped when PostgreSQL is not reachable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from airflow_mlops_provider.core.demo_data import generate
from tests.conftest import BIN, REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.xdist_group("postgres")]

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def _pg():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3)
    except psycopg2.OperationalError as err:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {err}")
    conn.autocommit = True
    return conn


@pytest.fixture
def pg_database():
    name = f"mlops_test_{uuid.uuid4().hex[:10]}"
    admin = _pg()
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield name
    admin.cursor().execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def _runs(database: str, dag_id: str) -> list[tuple[str, str]]:
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname=database) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, run_type FROM dag_run WHERE dag_id = %s ORDER BY id", (dag_id,))
        return cur.fetchall()


def _wait(predicate, timeout: float, what: str, logs: Path):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def test_new_dvc_version_schedules_mlops_retrain(pg_database, tmp_path):
    from tests.conftest import _dvc, _git

    home = tmp_path / "mlops"
    repo, remote = home / "data-repo", home / "dvc-remote"
    repo.mkdir(parents=True)
    remote.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _dvc(repo, "init", "-q")
    _dvc(repo, "remote", "add", "-d", "local", str(remote))

    def commit_version(seed: int) -> None:
        generate(600, seed=seed).to_parquet(repo / "transactions.parquet", index=False)
        _dvc(repo, "add", "-q", "transactions.parquet")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", f"data seed {seed}")

    commit_version(1)
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "MLOPS_DVC_WATCH_INTERVAL": "2",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG}/{pg_database}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    }
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        for component in ("dag-processor", "triggerer", "scheduler"):
            out = open(logs / f"{component}.log", "w")
            procs.append(subprocess.Popen([str(BIN / "airflow"), component], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path))
        # The triggerer has started watching when the trigger recorded the version it starts from.
        state = home / "state" / "dvc-watch-transactions.json"
        _wait(state.exists, 240, "the DVC AssetWatcher to start", logs)
        assert not [r for r in _runs(pg_database, "mlops_retrain") if r[1] == "asset_triggered"]

        commit_version(2)
        runs = _wait(lambda: [r for r in _runs(pg_database, "mlops_retrain") if r[1] == "asset_triggered"],
                     180, "an asset-triggered mlops_retrain run", logs)
        assert len(runs) == 1
        # Edge-triggered: the same version never fires again.
        time.sleep(15)
        assert len([r for r in _runs(pg_database, "mlops_retrain") if r[1] == "asset_triggered"]) == 1
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
