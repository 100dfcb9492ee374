"""DAG parse cost: each shipped DAG file against an empty DAG, side by side, in fresh processes.

What the dag-processor pays per file: Airflow and the SDK are imported before the clock (the
processor has them loaded); the clock covers executing the file, i.e. our imports and the
builders. Goal: every file at most 1.3x the empty DAG's wall time *including* the Airflow
import a fresh process pays (``ratio_with_import``), and the builder's own cost small in
absolute terms (``parse_ms``). Prints one JSON object.

    uv run python benchmarks/dag_parse.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EMPTY_DAG = """
from datetime import datetime
from airflow.sdk import DAG, task
with DAG("empty", schedule=None, start_date=datetime(2026, 1, 1)):
    task(lambda: None, task_id="t")()
"""
PROBE = """
import json, runpy, sys, time
t0 = time.perf_counter()
import airflow.sdk  # noqa: F401 - what the dag-processor already has loaded
t1 = time.perf_counter()
sys.path.insert(0, {folder!r})
{run}
t2 = time.perf_counter()
print(json.dumps({{"import_ms": (t1 - t0) * 1000, "parse_ms": (t2 - t1) * 1000}}))
"""


def measure(run: str, folder: str, repeat: int) -> dict:
    samples = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, "-c", PROBE.format(folder=folder, run=run)], capture_output=True,
                              text=True, check=True)
        samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    parse = statistics.median(s["parse_ms"] for s in samples)
    total = statistics.median(s["import_ms"] + s["parse_ms"] for s in samples)
    return {"parse_ms": round(parse, 1), "total_ms": round(total, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    empty = measure(f"exec(compile({EMPTY_DAG!r}, 'empty', 'exec'))", str(REPO), args.repeat)
    files = {}
    for path in [*sorted((REPO / "dags").glob("mlops_*.py")), *sorted((REPO / "examples").glob("*_pipeline.py"))]:
        got = measure(f"runpy.run_path({str(path)!r}, run_name='parse')", str(path.parent), args.repeat)
        got["ratio_with_import"] = round(got["total_ms"] / empty["total_ms"], 3)
        files[f"{path.parent.name}/{path.name}"] = got
    print(json.dumps({"benchmark": "dag_parse", "repeat": args.repeat, "empty_dag": empty, "files": files,
                      "goal_ratio_with_import": 1.3,
                      "ok": all(f["ratio_with_import"] <= 1.3 for f in files.values())}))


if __name__ == "__main__":
    main()
