"""The local target's state file and process checks, without starting a scoring server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest

from airflow_mlops_provider.core.local_serving import (
    Server,
    ServingState,
    is_running,
    load_state,
    locked_state,
    state_path,
    stop_server,
)
from airflow_mlops_provider.exceptions import LocalServingError


def test_state_round_trips_atomically_under_the_lock(tmp_path):
    path = state_path(tmp_path / "serving", "fraud")
    assert path == tmp_path / "serving" / "fraud.json"
    assert load_state(path, "fraud") == ServingState("fraud")
    live = Server(version="1", port=5001, pid=123, started_at="t", log_path="/l")
    with locked_state(path, "fraud") as state:
        state.live = live
    saved = json.loads(path.read_text())
    assert saved["live"]["url"] == "http://127.0.0.1:5001" and saved["candidate"] is None
    assert load_state(path, "fraud").live == live
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == []


def test_bad_names_and_unreadable_state_are_named(tmp_path):
    for bad in ("a/b", "..", ""):
        with pytest.raises(LocalServingError, match="cannot name a serving state file"):
            state_path(tmp_path, bad)
    path = tmp_path / "fraud.json"
    path.write_text("{not json")
    with pytest.raises(LocalServingError, match="fraud.json' of model 'fraud' is unreadable"):
        load_state(path, "fraud")


@pytest.mark.integration  # starts a process
def test_a_process_that_is_not_a_scoring_server_is_never_signalled():
    # A live pid whose command line is not `... serve ... <port>`: treated as not ours.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        server = Server(version="1", port=5999, pid=proc.pid)
        assert not is_running(server)
        assert stop_server(server) is False and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    assert not is_running(Server(version="1", port=5999, pid=proc.pid))


def test_a_server_started_by_an_ended_task_process_is_stopped():
    # The deploy task's process started the server and ended: the server was reparented (to PID 1, or
    # a subreaper). Killed by a later task (the rollback), it may stay a zombie that nobody reaps (a
    # container's init; this machine's): that group counts as stopped, not as "does not stop".
    starter = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; "
               "time.sleep(60)', 'serve', '-p', '5998'], start_new_session=True, stdout=subprocess.DEVNULL, "
               "stderr=subprocess.DEVNULL); "
               "print(p.pid)")
    pid = int(subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, check=True).stdout)
    server = Server(version="2", port=5998, pid=pid)
    try:
        assert is_running(server)
        assert stop_server(server, timeout=10) is True
        assert not is_running(server)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
