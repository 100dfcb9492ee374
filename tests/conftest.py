"""Test harness: an isolated Airflow home, MLflow stores and servers, git + DVC repos.

Everything here is real: Airflow runs through its own CLI against a migrated SQLite DB, MLflow
through its sqlite store or a real ``mlflow server`` on loopback, DVC through real git repos
with a local remote folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
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


def stop_group(proc: subprocess.Popen, *, grace: float = 60) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started: SIGTERM to its
    group, SIGKILL after ``grace`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# -- Airflow ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in this session's isolated AIRFLOW_HOME."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True, timeout=300)
    # What `airflow-mlops init` creates for a deployment: the 1-slot promotion pool.
    from airflow_mlops_provider.cli.commands import ensure_pool
    from airflow_mlops_provider.pipelines.config import PROMOTION_POOL

    ensure_pool(PROMOTION_POOL)
    return home / "airflow.db"


class DagRunResult:
    def __init__(self, proc: subprocess.CompletedProcess, states: dict[str, str], run_id: str | None):
        self.returncode = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.states = states
        self.run_id = run_id

    def __repr__(self) -> str:  # shown by pytest on failure
        return f"DagRunResult(rc={self.returncode}, states={self.states})\n{self.output[-6000:]}"


def _collect(airflow_db: Path, dag_id: str, proc: subprocess.CompletedProcess, started: float) -> DagRunResult:
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


class PendingDagRun:
    """An ``airflow dags test`` still running (e.g. waiting for a human answer)."""

    def __init__(self, airflow_db: Path, dag_id: str, proc: subprocess.Popen, output, started: float,
                 timeout: int):
        self.airflow_db, self.dag_id, self.proc, self.output = airflow_db, dag_id, proc, output
        self.started, self.timeout = started, timeout

    def _output(self) -> str:
        self.output.seek(0)
        return self.output.read()

    def task_state(self, task_id: str) -> tuple[str | None, str | None]:
        """(run_id, state) of ``task_id`` in the newest run of the DAG, as the metadata DB says now."""
        with sqlite3.connect(self.airflow_db, timeout=30) as db:
            row = db.execute("SELECT ti.run_id, ti.state FROM task_instance ti JOIN dag_run dr "
                             "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id WHERE ti.dag_id=? AND ti.task_id=? "
                             "ORDER BY dr.id DESC LIMIT 1", (self.dag_id, task_id)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def wait_for_state(self, task_id: str, state: str, timeout: float = 600) -> str:
        """Block until ``task_id`` is in ``state``; returns the run_id. Fails if the run ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run_id, current = self.task_state(task_id)
            if current == state:
                return run_id
            if self.proc.poll() is not None:
                raise AssertionError(f"the run ended before {task_id} was {state} ({current}):\n"
                                     f"{self._output()[-6000:]}")
            time.sleep(0.5)
        raise AssertionError(f"{task_id} not {state} within {timeout}s (now {self.task_state(task_id)[1]})")

    def wait(self) -> DagRunResult:
        try:
            self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        done = subprocess.CompletedProcess(self.proc.args, self.proc.returncode, self._output(), "")
        self.output.close()
        return _collect(self.airflow_db, self.dag_id, done, self.started)


@pytest.fixture
def run_dag(airflow_db: Path, mlops_home: Path):
    """Run ``airflow dags test`` for real and return its exit code, output and task states.

    With ``background=True`` it returns a :class:`PendingDagRun` at once instead.
    """
    pending: list[PendingDagRun] = []

    def _run(dag_id: str, logical_date: str | None = None, conf: dict | None = None,
             dags_folder: Path | None = None, env: dict | None = None, timeout: int = 900,
             background: bool = False) -> DagRunResult | PendingDagRun:
        cmd = [str(BIN / "airflow"), "dags", "test", dag_id]
        if logical_date:
            cmd.append(logical_date)
        if conf:
            cmd += ["--conf", json.dumps(conf)]
        full_env = {**os.environ, "MLOPS_HOME": str(mlops_home), **(env or {})}
        if dags_folder:
            full_env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
        started = time.time()
        if background:
            # Output to a file, not a pipe: nobody reads a pipe while the run waits, and a full
            # pipe would block the run.
            output = tempfile.TemporaryFile("w+")
            proc = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT, text=True, env=full_env,
                                    cwd=str(mlops_home))
            pending.append(PendingDagRun(airflow_db, dag_id, proc, output, started, timeout))
            return pending[-1]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout,
                              cwd=str(mlops_home))
        return _collect(airflow_db, dag_id, proc, started)

    yield _run
    for run in pending:  # never leave a run waiting for an answer behind
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


# The api_server fixture's second user (user name, password): Airflow's ``viewer`` role.
API_VIEWER = ("watcher", "another-not-a-real-secret")


@pytest.fixture
def api_server(airflow_db: Path, tmp_path: Path):
    """A real ``airflow api-server`` on the tests' metadata DB, with the users ``reviewer`` (admin) and
    :data:`API_VIEWER` (viewer).

    Yields ``(base_url, headers)``; the headers carry the reviewer's JWT.
    """

    port = free_port()
    passwords = tmp_path / "api-passwords.json"
    passwords.write_text(json.dumps({"reviewer": "not-a-real-secret", API_VIEWER[0]: API_VIEWER[1]}))
    env = {**os.environ, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"reviewer:admin,{API_VIEWER[0]}:viewer",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords)}
    log = open(tmp_path / "api-server.log", "w")
    proc = subprocess.Popen([str(BIN / "airflow"), "api-server", "--port", str(port), "--host", "127.0.0.1"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("api-server did not start: "
                                       f"{(tmp_path / 'api-server.log').read_text()[-3000:]}") from None
                time.sleep(0.5)
        request = urllib.request.Request(f"{base}/auth/token", method="POST",
                                         data=json.dumps({"username": "reviewer",
                                                          "password": "not-a-real-secret"}).encode(),
                                         headers={"Content-Type": "application/json"})
        token = json.loads(urllib.request.urlopen(request, timeout=10).read())["access_token"]
        yield base, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


# -- MLOPS_HOME / MLflow ---------------------------------------------------------------------
_STORE_TEMPLATE: list[Path] = []


def mlflow_store_template() -> Path:
    """An empty MLflow sqlite store, migrated once per test process.

    A new store runs MLflow's ~60 Alembic migrations: 5 s on a quiet machine, 30 s on a loaded one,
    in every fresh ``MLOPS_HOME`` (the first task of each ``airflow dags test`` there) and in every
    new ``mlflow server``. A copy of this file is the same empty store (sqlite keeps no path inside)
    in milliseconds. Made in a child process so that this one keeps no MLflow engine or URI of its own.
    """
    if not _STORE_TEMPLATE:
        path = _SESSION_DIR / f"mlflow-store-template-{os.getpid()}" / "mlflow.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(BIN / "python"), "-c",
                        "import sys, mlflow; c = mlflow.MlflowClient(sys.argv[1], sys.argv[1]); "
                        "c.search_experiments(); c.search_registered_models()", f"sqlite:///{path}"],
                       check=True, capture_output=True, timeout=600, cwd=path.parent)
        _STORE_TEMPLATE.append(path)
    return _STORE_TEMPLATE[0]


def fresh_mlflow_store(path: Path) -> str:
    """A new, empty, migrated MLflow sqlite store at ``path`` (a copy of the template); its URI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_store_template(), path)
    return f"sqlite:///{path}"


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mlops"
    home.mkdir()
    # The embedded store where MlopsHome.mlflow_tracking_uri puts it, already migrated.
    fresh_mlflow_store(home / "mlflow" / "mlflow.db")
    monkeypatch.setenv("MLOPS_HOME", str(home))
    return home


@pytest.fixture
def mlflow_sqlite_uri(tmp_path: Path) -> str:
    return fresh_mlflow_store(tmp_path / "mlflow.db")


@contextlib.contextmanager
def running_mlflow_server(root: Path, *extra_args: str, env: dict[str, str] | None = None):
    """A real ``mlflow server`` (sqlite store, proxied artifacts under ``root``) on a free loopback
    port until the block ends; yields its URL."""
    port = free_port()
    if not (root / "mlflow.db").exists():  # a restart on the same root keeps its store
        fresh_mlflow_store(root / "mlflow.db")
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", *extra_args, "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
        # No job runner: MLflow 3.17 otherwise starts ~8 huey consumer processes the tests never use.
        env={**os.environ, **(env or {}), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``mlflow server`` on a free loopback port; yields its URL."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


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


@pytest.fixture
def s3_bucket(monkeypatch):
    """A real S3 API (moto server on loopback) behind an Airflow ``aws`` connection."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_LAKE", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": url, "region_name": "us-east-1"}}))
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    client.create_bucket(Bucket="lake")
    _forget_store("aws_lake")
    yield client
    server.stop()
    _forget_store("aws_lake")


def _forget_store(conn_id: str) -> None:
    """Drop Airflow's cached object store of ``conn_id``: it keeps a connection's filesystem for the
    process (right for a deployment, whose connection does not move), and each test's moto server
    has its own port."""
    from airflow.sdk.io import store

    store._STORE_CACHE.pop(f"s3-{conn_id}", None)
