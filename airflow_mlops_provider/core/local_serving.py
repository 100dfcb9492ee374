"""The local deploy target: ``mlflow models serve`` processes on loopback, and what serves where.

One JSON state file per model (``<MLOPS_HOME>/serving/<model>.json``, written atomically under
a lock) records two servers at most: ``live`` (what answers for the model) and ``candidate``
(a new version started beside it, waiting for verification). A server is ``{"version",
"host", "port", "pid", "started_at", "log_path"}``; its process runs in its own session so it
outlives the task that started it, and is stopped by process group.

No Airflow here: the hook builds the child's environment (MLflow URIs from the connection),
the operators decide when to start, promote and stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_mlops_provider.core.files import atomic_path
from airflow_mlops_provider.core.ledger import file_lock
from airflow_mlops_provider.core.verify import post_for_predictions, predictions_from_body, scoring_request
from airflow_mlops_provider.exceptions import LocalServingError

HEALTH_PATHS = ("/ping", "/health")


@dataclass(frozen=True)
class Server:
    """One ``mlflow models serve`` process."""

    version: str
    port: int
    pid: int
    host: str = "127.0.0.1"
    started_at: str = ""
    log_path: str = ""
    capture_dir: str = ""  # online capture (core.capture_server) into this folder; empty: none

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "url": self.url}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Server | None:
        if not raw:
            return None
        return cls(version=str(raw["version"]), port=int(raw["port"]), pid=int(raw["pid"]),
                   host=str(raw.get("host") or "127.0.0.1"), started_at=str(raw.get("started_at") or ""),
                   log_path=str(raw.get("log_path") or ""), capture_dir=str(raw.get("capture_dir") or ""))


@dataclass
class ServingState:
    """What serves one model: the ``live`` server and a ``candidate`` beside it (either may be None)."""

    model: str
    live: Server | None = None
    candidate: Server | None = None
    #: Where the model's servers capture their traffic (the last deploy's choice); empty: nowhere.
    capture_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "live": self.live.to_dict() if self.live else None,
                "candidate": self.candidate.to_dict() if self.candidate else None, "capture_dir": self.capture_dir}

    def servers(self) -> list[Server]:
        return [s for s in (self.live, self.candidate) if s is not None]


def state_path(serving_dir: Path, model: str) -> Path:
    """``<serving_dir>/<model>.json``; the model name must be a registry name (no path separators)."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", model or "") or model in (".", ".."):
        raise LocalServingError(f"model name {model!r} cannot name a serving state file (letters, digits, "
                                "'_', '.', '-' only)", field="model_name", model=model, reason="invalid")
    return serving_dir / f"{model}.json"


def load_state(path: Path, model: str) -> ServingState:
    if not path.exists():
        return ServingState(model)
    try:
        raw = json.loads(path.read_text())
        return ServingState(model, Server.from_dict(raw.get("live")), Server.from_dict(raw.get("candidate")),
                            capture_dir=str(raw.get("capture_dir") or ""))
    except (ValueError, KeyError, TypeError) as err:
        raise LocalServingError(f"serving state {str(path)!r} of model {model!r} is unreadable: {err}",
                                model=model, path=str(path), reason="invalid") from err


def save_state(path: Path, state: ServingState) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(state.to_dict(), indent=2, sort_keys=True))


@contextlib.contextmanager
def locked_state(path: Path, model: str) -> Iterator[ServingState]:
    """Read-modify-write the state of ``model`` under an inter-process lock; saved on success."""
    with file_lock(path.with_name(f".{path.name}.lock")):
        state = load_state(path, model)
        yield state
        save_state(path, state)


# -- processes ---------------------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie child of this process is reaped and counts as gone)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    return fields is None or fields[0] != "Z"


def _proc_stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command (state, ppid, pgrp, ...); None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_alive(pgid: int) -> bool:
    """Any process of the session ``pgid`` leads still runs (the scoring server is a child of it).

    Zombies do not count: a server started by an earlier task process is reparented when that task
    ends, and where PID 1 does not reap (a container's init, this machine's) its killed processes
    stay as zombies that ``killpg(pgid, 0)`` still finds.
    """
    pid_alive(pgid)  # reaps the leader when it is our exited child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc: the group exists
    for entry in entries:
        fields = _proc_stat(entry) if entry.isdigit() else None
        if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def is_running(server: Server) -> bool:
    """The recorded process still runs and is an MLflow scoring server on the recorded port.

    The command line is checked so that a reused pid never gets a signal from here.
    """
    if not pid_alive(server.pid):
        return False
    try:
        with open(f"/proc/{server.pid}/cmdline", "rb") as fh:
            argv = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return True  # no /proc: trust the pid
    serving = "serve" in argv or CAPTURE_APP in argv  # mlflow models serve, or the capturing server
    return serving and str(server.port) in argv


def is_healthy(server: Server, timeout: float = 2.0) -> bool:
    """The server answers 200 on ``/ping`` (or ``/health``)."""
    for path in HEALTH_PATHS:
        try:
            with urllib.request.urlopen(server.url + path, timeout=timeout) as resp:
                if resp.status == 200:
                    return True
        except (OSError, ValueError):
            continue
    return False


def server_status(server: Server) -> dict[str, Any]:
    """``{"alive", "healthy"}`` of a server (one read)."""
    alive = is_running(server)
    return {"alive": alive, "healthy": alive and is_healthy(server)}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


CAPTURE_APP = "airflow_mlops_provider.core.capture_server:app"


def serve_command(model_uri: str, host: str, port: int, *, capture: bool = False) -> list[str]:
    """``mlflow models serve`` in this interpreter's environment (``--env-manager local``); with
    ``capture``, uvicorn on MLflow's same scoring app wrapped by :mod:`~airflow_mlops_provider.core.capture_server`
    (which reads the model from its environment)."""
    if capture:
        return [sys.executable, "-m", "uvicorn", "--host", host, "--port", str(port), "--no-access-log", CAPTURE_APP]
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "-h", host, "-p", str(port),
            "--env-manager", "local"]


def start_server(model: str, version: str, *, host: str, port: int, env: dict[str, str],
                 log_dir: Path, model_uri: str | None = None, capture_dir: str | Path | None = None) -> Server:
    """Start ``models:/<model>/<version>`` (or its local copy ``model_uri``) detached (own session);
    returns at once (not yet healthy). ``capture_dir``: capture its answered calls there."""
    if port == 0:
        port = free_port(host)
    elif port_in_use(host, port):
        raise LocalServingError(f"cannot serve model {model!r} v{version} on {host}:{port}: the port is in use",
                                model=model, version=version, port=port, reason="invalid")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{model}-v{version}-{port}.log"
    uri = model_uri or f"models:/{model}/{version}"
    if capture_dir:
        from airflow_mlops_provider.core import capture_server

        Path(capture_dir).mkdir(parents=True, exist_ok=True)
        env = {**env, capture_server.MODEL_URI_ENV: uri, capture_server.DIR_ENV: str(capture_dir),
               capture_server.MODEL_ENV: model, capture_server.VERSION_ENV: str(version)}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(serve_command(uri, host, port, capture=bool(capture_dir)), env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(log_dir), start_new_session=True)
    return Server(version=str(version), port=port, pid=proc.pid, host=host,
                  started_at=datetime.now(timezone.utc).isoformat(), log_path=str(log_path),
                  capture_dir=str(capture_dir or ""))


def log_tail(server: Server, chars: int = 1500) -> str:
    try:
        return Path(server.log_path).read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def stop_server(server: Server, timeout: float = 15.0) -> bool:
    """Stop a server's process group (SIGTERM, then SIGKILL) and wait until all of it is gone.

    False when it was not running. The group matters: ``mlflow models serve`` runs the HTTP
    server (uvicorn) as a child, which answers until it exits too.
    """
    # The leader may be gone while its server child still answers: the group is then still ours
    # (a process group id is not reused while the group exists).
    orphaned = not pid_alive(server.pid) and group_alive(server.pid)
    if not is_running(server) and not orphaned:
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_alive(server.pid):
                return True
            time.sleep(0.1)
    raise LocalServingError(f"the server of v{server.version} (pid {server.pid}, port {server.port}) does not stop",
                            version=server.version, pid=server.pid, port=server.port, reason="failed")


# -- requests ----------------------------------------------------------------------------------
def invoke(url: str, rows: list[list[Any]], columns: list[str] | None = None, *,
           timeout: float = 30.0, max_predictions: int | None = 10) -> dict[str, Any]:
    """POST ``rows`` to ``<url>/invocations`` in MLflow's scoring format; one prediction per row.

    Returns ``{"url", "rows", "latency_ms", "predictions"}`` (the first 10 predictions); raises
    :class:`LocalServingError` (reason ``smoke``) naming the URL otherwise.
    """
    endpoint = url.rstrip("/") + "/invocations"
    try:
        body = scoring_request(rows, columns)
    except ValueError as err:
        raise LocalServingError(f"cannot send to {endpoint}: {err}", url=endpoint, reason="invalid") from err
    # The provider's own checks are not traffic: a capturing server leaves them out (core.capture_server).
    predictions, latency_ms = post_for_predictions(endpoint, body, len(rows), parse=predictions_from_body,
                                                   failure=LocalServingError, timeout=timeout, what="invocation",
                                                   headers={"X-MLOps-Check": "1"})
    return {"url": endpoint, "rows": len(rows), "latency_ms": round(latency_ms, 1), "predictions": predictions[:max_predictions]}
