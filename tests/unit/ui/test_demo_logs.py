"""`airflow dags test` output cut into per-task logs for the UI (scripts/local_airflow.py)."""

from __future__ import annotations

import sys

from tests.conftest import REPO_ROOT

sys.path.append(str(REPO_ROOT / "scripts"))
from local_airflow import parallelism, split_task_logs

OUTPUT = """\
2026-12-06T23:57:37.000001Z [info     ] Filling up the DagBag [airflow.models.dagbag] loc=dagbag.py:1
2026-12-06T23:57:38.232795Z [info     ] [DAG TEST] starting task_id=validate_data map_index=-1 [airflow.sdk.definitions.dag]
2026-12-06T23:57:39.100000Z [info     ] Validated 6000 rows [task]
2026-12-06T23:57:40.000000Z [error    ] Task failed [task]
Traceback (most recent call last):
  File "x.py", line 1, in <module>
\x1b[31mValueError: boom\x1b[0m
2026-12-06T23:57:51.746544Z [info     ] [DAG TEST] starting task_id=score map_index=2 [airflow.sdk.definitions.dag]
2026-12-06T23:57:52.000000Z [warning  ] scored [task]
"""


def test_each_task_gets_its_own_lines_with_tracebacks_attached():
    tasks = split_task_logs(OUTPUT)
    assert list(tasks) == [("validate_data", -1), ("score", 2)]  # nothing before the first task
    lines = tasks[("validate_data", -1)]
    assert [line["level"] for line in lines] == ["info", "info", "error"]
    assert lines[1] == {"timestamp": "2026-12-06T23:57:39.100000Z", "level": "info",
                        "event": "Validated 6000 rows [task]"}
    assert lines[2]["event"].endswith("ValueError: boom")  # continuation lines, colours stripped
    assert tasks[("score", 2)][-1]["event"] == "scored [task]"


def test_parallelism_follows_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert parallelism() == 4
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert parallelism() == 32


def test_ui_shutdown_stops_the_recorded_local_scoring_servers(tmp_path):
    """`make ui` stops the servers the local deploy target started (own sessions: no orphans)."""
    import json
    import subprocess

    from ui import stop_local_servers

    from airflow_mlops_provider.core.local_serving import Server, group_alive

    # A process that looks like a scoring server to the target's checks ("serve" and its port in argv).
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "serve", "-p", "54321"],
                            start_new_session=True)
    try:
        serving = tmp_path / "serving"
        serving.mkdir()
        live = Server(version="4", port=54321, pid=proc.pid)
        gone = Server(version="2", port=54322, pid=proc.pid + 100_000)  # recorded, not running
        (serving / "fraud-detector.json").write_text(json.dumps(
            {"model": "fraud-detector", "live": live.to_dict(), "candidate": gone.to_dict()}))
        assert stop_local_servers(tmp_path) == ["fraud-detector v4"]
        proc.wait(timeout=10)
        assert not group_alive(proc.pid)
        state = json.loads((serving / "fraud-detector.json").read_text())
        assert state["live"]["version"] == "4"  # the record stays: the Models view shows it not serving
    finally:
        if proc.poll() is None:
            proc.kill()
