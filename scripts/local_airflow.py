"""Airflow on the demo's MLOPS_HOME: one configuration shared by `make demo` and `make ui`.

``airflow.cfg`` under ``MLOPS_HOME/airflow`` names the repository's ``dags/`` and ``plugins/``,
turns Airflow's example DAGs off, binds the api-server to 127.0.0.1 and holds the secrets every
component must share (the JWT secret the api-server signs task tokens with, the Fernet key).
Written once and then only updated key by key, so plain ``AIRFLOW_HOME=… airflow …`` commands
see the same settings as the scripts.
"""

from __future__ import annotations

import configparser
import os
import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROMOTION_POOL = "mlops_promotion"  # airflow_mlops_provider.pipelines.PROMOTION_POOL (not imported: cheap)


def home_dir() -> Path:
    return Path(os.environ.get("MLOPS_HOME", REPO / ".mlops")).resolve()


def airflow_home(home: Path) -> Path:
    return home / "airflow"


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def parallelism() -> int:
    """Task slots (and LocalExecutor worker processes) for this machine: two per core, at least 4."""
    return max(4, 2 * (os.cpu_count() or 1))


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        # As the servers themselves bind (uvicorn, gunicorn): a port whose last server just exited
        # and left connections in TIME_WAIT is free for them, and so free here.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when nothing listens on it on 127.0.0.1, else a port the OS hands out."""
    if preferred and port_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(home: Path, *, port: int = 8080) -> Path:
    """Create or update ``airflow.cfg``: the keys this project relies on; other keys are kept."""
    cfg_path = airflow_home(home) / "airflow.cfg"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    parser = configparser.ConfigParser(interpolation=None)
    if cfg_path.exists():
        parser.read(cfg_path)
    wanted = {
        "core": {"dags_folder": str(REPO / "dags"), "plugins_folder": str(REPO / "plugins"),
                 "load_examples": "False", "simple_auth_manager_users": "admin:admin",
                 "execution_api_server_url": f"http://127.0.0.1:{port}/execution/"},
        "api": {"host": "127.0.0.1", "port": str(port), "base_url": f"http://127.0.0.1:{port}"},
        "logging": {"base_log_folder": str(airflow_home(home) / "logs")},
    }
    # Sized for this machine, set only when absent (an edit in airflow.cfg or an AIRFLOW__* export wins):
    # Airflow's default parallelism (32) starts 32 LocalExecutor worker processes, idle on 2 cores.
    # Airflow's 30 s DAG import timeout: on a busy 2-core machine mlops_retrain's file took longer, the
    # dag-processor marked it an import error and the scheduler started none of its queued runs.
    sized = {("core", "parallelism"): str(parallelism()),
             ("dag_processor", "parsing_processes"): str(min(2, os.cpu_count() or 1)),
             ("api", "workers"): "1",
             ("core", "dagbag_import_timeout"): "180",
             ("dag_processor", "dag_file_processor_timeout"): "240",
             # A task's calls to the api-server's execution API (default 5 s): the scheduler's retrain
             # was killed after read timeouts while the one api-server worker was busy (loaded machine).
             ("workers", "execution_api_timeout"): "60"}
    for (section, key), value in sized.items():
        if not parser.has_section(section):
            parser.add_section(section)
        if not parser.get(section, key, fallback=""):
            parser.set(section, key, value)
    generated = {("api_auth", "jwt_secret"): lambda: secrets.token_urlsafe(32),
                 ("api", "secret_key"): lambda: secrets.token_urlsafe(32),
                 ("core", "fernet_key"): _fernet_key}
    for section, values in wanted.items():
        if not parser.has_section(section):
            parser.add_section(section)
        for key, value in values.items():
            parser.set(section, key, value)
    for (section, key), make in generated.items():
        if not parser.has_section(section):
            parser.add_section(section)
        if not parser.get(section, key, fallback=""):
            parser.set(section, key, make())
    tmp = cfg_path.with_suffix(".cfg.tmp")
    with open(tmp, "w") as fh:
        parser.write(fh)
    os.chmod(tmp, 0o600)  # it holds the JWT secret and the Fernet key
    os.replace(tmp, cfg_path)
    return cfg_path


def set_defaults(home: Path, values: dict[tuple[str, str], str]) -> None:
    """Add ``(section, key): value`` to ``airflow.cfg`` where the key is absent (an edit there wins)."""
    cfg_path = airflow_home(home) / "airflow.cfg"
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(cfg_path)
    missing = {k: v for k, v in values.items() if not parser.has_option(*k)}
    if not missing:
        return
    for (section, key), value in missing.items():
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, key, value)
    tmp = cfg_path.with_suffix(".cfg.tmp")
    with open(tmp, "w") as fh:
        parser.write(fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, cfg_path)


def environment(home: Path, **extra: str) -> dict[str, str]:
    """The process environment for Airflow commands on ``home`` (``airflow.cfg`` holds the rest)."""
    env = {**os.environ, "MLOPS_HOME": str(home), "AIRFLOW_HOME": str(airflow_home(home)),
           "AIRFLOW_CONFIG": str(airflow_home(home) / "airflow.cfg")}
    # A stale shell export of these would win over airflow.cfg and show the wrong DAGs.
    for key in ("AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER", "AIRFLOW__CORE__LOAD_EXAMPLES"):
        env.pop(key, None)
    # One OpenMP thread per process (an export wins): the demo's model trains in seconds either way,
    # but on a busy 2-core machine OpenMP's spinning threads made one fit 300 s instead of 46 s.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def airflow_cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"airflow {' '.join(args)} failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def prepare(env: dict[str, str]) -> None:
    """Migrate the metadata DB and create the 1-slot promotion pool (idempotent)."""
    airflow_cli(env, "db", "migrate")
    airflow_cli(env, "pools", "set", PROMOTION_POOL, "1", "champion promotions, one at a time (mlops)")


# -- `airflow dags test` runs as the UI shows them ---------------------------------------------------
# `airflow dags test` runs every task in its own process and prints their logs there; it writes no
# task log file (the UI would show every task's log empty) and stamps the run's start_date with
# the logical date (the UI would show weeks-long runs). `record_dags_test` fixes both afterwards.
_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) \[(\w+)\s*\] (.*)$")
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")


def split_task_logs(output: str) -> dict[tuple[str, int], list[dict[str, str]]]:
    """The console output of ``airflow dags test``, cut per task instance ``(task_id, map_index)``
    into Airflow's structured log lines (``timestamp``, ``level``, ``event``).

    ``dags test`` runs one task at a time and announces each with ``[DAG TEST] starting task_id=…
    map_index=…``; a line without a timestamp (a traceback, a multi-line message) continues the
    line before it. Output before the first task belongs to no task.
    """
    tasks: dict[tuple[str, int], list[dict[str, str]]] = {}
    current: list[dict[str, str]] | None = None
    for raw in output.splitlines():
        line = _ANSI.sub("", raw)
        match = _LINE.match(line)
        if match:
            started = _TASK_START.search(match.group(3))
            if started:
                current = tasks.setdefault((started.group(1), int(started.group(2))), [])
            if current is not None:
                current.append({"timestamp": match.group(1), "level": match.group(2).lower(),
                                "event": match.group(3)})
        elif current is not None and current and line.strip():
            current[-1]["event"] += "\n" + line
    return tasks


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def record_dags_test(dag_id: str, output: str) -> dict[str, object]:
    """After ``airflow dags test <dag_id>``: write each task's log where the UI reads it and give
    the run its real start (its first task's start). Returns what was written, for the caller's log."""
    import json

    from airflow.configuration import conf
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.log.file_task_handler import FileTaskHandler
    from airflow.utils.session import create_session
    from sqlalchemy import select

    segments = split_task_logs(output)
    base = Path(conf.get("logging", "base_log_folder"))
    handler = FileTaskHandler(str(base))
    written = []
    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)).first()
        if run is None:
            return {"run_id": None, "logs": []}
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                         TaskInstance.run_id == run.run_id)).all()
        starts = [ti.start_date for ti in tis if ti.start_date]
        if starts:
            run.start_date = min(starts)
            run.queued_at = run.queued_at or run.start_date
        for ti in tis:
            lines = segments.get((ti.task_id, ti.map_index))
            if not lines or not ti.try_number:
                continue
            path = base / handler._render_filename(ti, ti.try_number, session=session)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
            written.append(str(path.relative_to(base)))
    return {"run_id": run.run_id, "logs": written}
