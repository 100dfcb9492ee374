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
