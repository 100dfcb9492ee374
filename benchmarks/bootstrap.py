"""Bootstrap benchmark: the gate's vectorised intervals vs the obvious loop, same rows, same resamples.

Side by side in one run, on a seeded binary holdout of ``--rows`` rows with tied scores, two models
(challenger and champion) and ``--resamples`` resamples:

* ours: :func:`airflow_mlops_provider.core.bootstrap.bootstrap` (count matrices, every metric as a
  weighted statistic; all binary metrics for both sides plus the paired gains);
* baseline: for each resample index row, the task type's own ``compute_metrics`` (scikit-learn)
  on both models' resampled rows, which is what a per-resample loop does.

Both sides use the same index matrices (``index_blocks``), so their ROC AUC intervals must agree;
the script checks that and prints it. Imports happen before the clock.

    python benchmarks/bootstrap.py [--rows 1000] [--resamples 1000]

Prints one JSON object: name, rows, resamples, ours_s, baseline_s, ratio (baseline_s / ours_s),
auc_interval_ours, auc_interval_baseline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()

    import numpy as np

    from airflow_mlops_provider.core import bootstrap as bt
    from airflow_mlops_provider.core.task_types import get_task_type

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, args.rows)
    sides = {}
    for name, signal in (("challenger", 0.35), ("champion", 0.3)):
        p = np.round(np.clip(y * signal + rng.random(args.rows) * (1 - signal), 0, 1), 3)
        sides[name] = np.column_stack([1 - p, p])
    spec = bt.BootstrapSpec(resamples=args.resamples, seed=0)
    task = get_task_type("binary")

    start = time.perf_counter()
    ours = bt.bootstrap(task, y, sides, [0, 1], spec)
    ours_s = time.perf_counter() - start

    start = time.perf_counter()
    aucs = []
    for idx in bt.index_blocks(args.rows, spec):
        for rows in idx:
            per = {s: task.compute_metrics(y[rows], raw[rows], [0, 1]) for s, raw in sides.items()}
            aucs.append(per["challenger"]["roc_auc"])
    baseline_s = time.perf_counter() - start
    low, high = np.quantile(np.asarray(aucs), [0.025, 0.975])
    mine = ours["intervals"]["challenger"]["roc_auc"]
    emit({"name": "bootstrap", "rows": args.rows, "resamples": args.resamples, "ours_s": round(ours_s, 3),
          "baseline_s": round(baseline_s, 3), "ratio": round(baseline_s / ours_s, 1),
          "auc_interval_ours": [mine["low"], mine["high"]], "auc_interval_baseline": [float(low), float(high)],
          "agree": bool(np.isclose(mine["low"], low) and np.isclose(mine["high"], high))})


if __name__ == "__main__":
    main()
