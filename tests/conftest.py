"""Test harness: an isolated Airflow home, MLflow stores and servers, git + DVC repos.

Everything here is real: Airflow runs through its own CLI against a migrated SQLite DB, MLflow
through its sqlite store or a real ``mlflow server`` on loopback, DVC through real git repos
with a local remote folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Isolate Airflow before anything imports it (conftest is imported first by pytest).
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ["MLOPS_HOME"] = str(_SESSION_DIR / "mlops-default")
os.environ.setdefault("GIT_AUTHOR_NAME", "mlops-tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "mlops-tests@example.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "mlops-tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "mlops-tests@example.invalid")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- Airflow ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in this session's isolated AIRFLOW_HOME."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True, timeout=300)
    return home / "airflow.db"


class DagRunResult:
    def __init__(self, proc: subprocess.CompletedProcess, states: dict[str, str], run_id: str | None):
        self.returncode = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.states = states
        self.run_id = run_id

    def __repr__(self) -> str:  # shown by pytest on failure
        return f"DagRunResult(rc={self.returncode}, states={self.states})\n{self.output[-6000:]}"


@pytest.fixture
def run_dag(airflow_db: Path, mlops_home: Path):
    """Run ``airflow dags test`` for real and return its exit code, output and task states."""

    def _run(dag_id: str, logical_date: str | None = None, conf: dict | None = None,
             dags_folder: Path | None = None, env: dict | None = None, timeout: int = 900) -> DagRunResult:
        cmd = [str(BIN / "airflow"), "dags", "test", dag_id]
        if logical_date:
            cmd.append(logical_date)
        if conf:
            cmd += ["--conf", json.dumps(conf)]
        full_env = {**os.environ, "MLOPS_HOME": str(mlops_home), **(env or {})}
        if dags_folder:
            full_env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
        started = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout,
                              cwd=str(mlops_home))
        with sqlite3.connect(airflow_db) as db:
            row = db.execute(
                "SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
            run_id = row[0] if row else None
            states = dict(db.execute(
                "SELECT task_id || CASE WHEN map_index >= 0 THEN '[' || map_index || ']' ELSE '' END, "
                "state FROM task_instance WHERE dag_id=? AND run_id=?", (dag_id, run_id)
            ).fetchall()) if run_id else {}
        print(f"airflow dags test {dag_id}: rc={proc.returncode} in {time.time() - started:.1f}s")
        return DagRunResult(proc, states, run_id)

    return _run


# -- MLOPS_HOME / MLflow ---------------------------------------------------------------------
@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mlops"
    home.mkdir()
    monkeypatch.setenv("MLOPS_HOME", str(home))
    return home


@pytest.fixture
def mlflow_sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``mlflow server`` on a free loopback port; yields its URL."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield url
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
    log.close()


# -- git + DVC -------------------------------------------------------------------------------
def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _dvc(repo: Path, *args: str) -> str:
    return subprocess.run([str(BIN / "dvc"), *args], cwd=repo, check=True, capture_output=True, text=True).stdout


class DvcRepo:
    """A real git + DVC repository with a local remote folder."""

    def __init__(self, path: Path, remote: Path):
        self.path, self.remote = path, remote

    def commit_file(self, rel: str, content: bytes, message: str, tag: str | None = None) -> str:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        _dvc(self.path, "add", "-q", rel)
        _git(self.path, "add", "-A")
        _git(self.path, "commit", "-qm", message)
        if tag:
            _git(self.path, "tag", tag)
        _dvc(self.path, "push", "-q")
        return _git(self.path, "rev-parse", "HEAD")

    def git(self, *args: str) -> str:
        return _git(self.path, *args)


@pytest.fixture
def dvc_repo(tmp_path: Path) -> DvcRepo:
    path, remote = tmp_path / "data-repo", tmp_path / "dvc-remote"
    path.mkdir()
    remote.mkdir()
    _git(path, "init", "-q", "-b", "main")
    _dvc(path, "init", "-q")
    _dvc(path, "remote", "add", "-d", "local", str(remote))
    _git(path, "add", "-A")
    _git(path, "commit", "-qm", "init dvc")
    return DvcRepo(path, remote)


def conn_env(conn_id: str, **fields) -> dict[str, str]:
    """An ``AIRFLOW_CONN_*`` variable for a connection defined as JSON."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(fields)}
