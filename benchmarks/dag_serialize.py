"""DAG serialization cost of the shipped DAGs: their Params as built (JSON Schema draft-07) against
the same Params without a declared dialect (jsonschema's default, 2020-12), side by side.

Airflow serializes every DAG of a file each time it parses it (the dag-processor's loop, and
``airflow dags test`` twice per run), and each task carries its DAG's params: every one is
validated, and its schema checked against the dialect's meta-schema, per task. The builders
declare draft-07 (``pipelines.common.param``) because 2020-12's meta-schema resolves
``$dynamicRef`` and costs about four times as much. Goal: the serialized DAGs are identical but for
the dialect, and serializing them takes at most half the time. Prints one JSON object.

    uv run python benchmarks/dag_serialize.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _drop_dialect(dag) -> None:
    """``dag``'s DAG and task Params, in place, without ``$schema`` (jsonschema's default dialect)."""
    for params in [dag.params, *(task.params for task in dag.tasks)]:
        for key in list(params):
            p = params.get_param(key)
            p.schema = {k: v for k, v in p.schema.items() if k != "$schema"}


def _seconds(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _serialized(dag) -> str:
    """``dag`` serialized, as JSON without the dialect key, to compare the two sides."""
    from airflow.serialization.serialized_objects import DagSerialization

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k != "$schema"}
        return [strip(v) for v in obj] if isinstance(obj, list) else obj

    return json.dumps(strip(json.loads(json.dumps(DagSerialization.to_dict(dag), default=str))), sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("MLOPS_HOME", tempfile.mkdtemp(prefix="mlops-bench-"))
    sys.path.insert(0, str(REPO / "dags"))
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = BundleDagBag(dag_folder=str(REPO / "dags"), bundle_path=str(REPO / "dags"), bundle_name="bench")
    if bag.import_errors:
        raise SystemExit(f"the shipped DAGs did not parse: {bag.import_errors}")
    dags = {}
    for dag_id, dag in sorted(bag.dags.items()):
        as_built = _serialized(dag)  # also the warm-up
        draft7 = _seconds(lambda d=dag: DagSerialization.to_dict(d), args.repeat)
        _drop_dialect(dag)
        same = _serialized(dag) == as_built
        default = _seconds(lambda d=dag: DagSerialization.to_dict(d), args.repeat)
        dags[dag_id] = {"tasks": len(dag.tasks), "params": len(dag.params), "draft7_ms": round(draft7 * 1000, 1),
                        "default_dialect_ms": round(default * 1000, 1), "ratio": round(draft7 / default, 3),
                        "same_serialization": same}
    total7 = sum(d["draft7_ms"] for d in dags.values())
    total0 = sum(d["default_dialect_ms"] for d in dags.values())
    print(json.dumps({"benchmark": "dag_serialize", "repeat": args.repeat, "dags": dags,
                      "total_draft7_ms": round(total7, 1), "total_default_dialect_ms": round(total0, 1),
                      "ratio": round(total7 / total0, 3), "goal_ratio": 0.5,
                      "ok": total7 <= 0.5 * total0 and all(d["same_serialization"] for d in dags.values())}))


if __name__ == "__main__":
    main()
