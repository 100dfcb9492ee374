"""`make demo`: the whole loop on embedded defaults (SQLite Airflow, sqlite MLflow, local DVC).

1. data v1 → mlops_retrain → the first champion
2. data v2 (a new day) → mlops_retrain → a decision against the champion
3. data v3 with noisy labels → mlops_retrain → rejected, the champion stays
4. mlops_batch_inference scores two days with @champion: a normal day, then a drifted day,
   which emits the `drift detected` Asset event (the event that schedules mlops_retrain)
5. late labels for those two days arrive two days later → mlops_performance_monitoring: the
   first day's labels agree with the model; the second day's show it got worse (a third of the
   outcomes no longer follow the old pattern), which emits `performance degraded` (the third
   event that schedules mlops_retrain)
Then it prints where to look. Everything lives under MLOPS_HOME (default .mlops/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import local_airflow

HOME = local_airflow.home_dir()
local_airflow.write_config(HOME)
_ENV = local_airflow.environment(HOME)
os.environ.clear()
os.environ.update(_ENV)
os.environ.setdefault("GIT_AUTHOR_NAME", "mlops-demo")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "mlops-demo@example.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "mlops-demo")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "mlops-demo@example.invalid")
BIN = Path(sys.executable).parent
BATCH_ROWS = int(os.environ.get("MLOPS_DEMO_BATCH_ROWS", 200_000))  # rows per scored day (tests use fewer)


def step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def airflow(*args: str) -> None:
    started = time.time()
    # One stream, in order: the task logs are cut out of it per task (local_airflow.record_dags_test).
    proc = subprocess.run([str(BIN / "airflow"), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = HOME / "logs" / f"{'-'.join(a for a in args[:3] if not a.startswith('-'))}-{int(started)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout)
    if args[:2] == ("dags", "test"):
        # The UI shows each task's log and the run's real duration (dags test writes neither).
        local_airflow.record_dags_test(args[2], proc.stdout)
    if proc.returncode != 0:
        print(proc.stdout[-8000:])
        raise SystemExit(f"airflow {' '.join(args)} failed (exit {proc.returncode}); log: {log}")
    for line in proc.stdout.splitlines():
        if line.startswith(("fraud-detector v", "output partition", "DRIFT DETECTED")):  # task summaries
            print("   ", line[:400])
    print(f"    ok in {time.time() - started:.0f}s (log: {log})")


def drift_events(prefix: str = "mlops://drift/") -> list[dict]:
    """The ``drift detected`` asset events Airflow recorded, with their extras.

    Asked through Airflow's own session on whatever metadata DB it is configured for (SQLite
    here, PostgreSQL when AIRFLOW__DATABASE__SQL_ALCHEMY_CONN says so); `make ui` shows the same
    events under Browse → Assets and in the REST API (GET /api/v2/assets/events).
    """
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                               .where(AssetModel.uri.like(f"{prefix}%")).order_by(AssetEvent.id)).all()
    return [dict(extra or {}) for (extra,) in rows]


def main() -> None:
    started = time.time()
    from airflow_mlops_provider.core import ledger
    from airflow_mlops_provider.core.demo_data import generate
    from airflow_mlops_provider.core.settings import mlops_home
    from airflow_mlops_provider.hooks.dvc import DvcHook, init_local_repo

    home = mlops_home().ensure()
    step(f"MLOPS_HOME = {home.root}")
    local_airflow.prepare(dict(os.environ))
    init_local_repo(home.dvc_repo, home.dvc_remote)
    hook = DvcHook()
    data = home.dvc_repo / "transactions.parquet"

    runs = [("v1: first day of transactions", 1, "normal", "2026-11-01"),
            ("v2: a new day of transactions", 2, "normal", "2026-11-08"),
            ("v3: a day whose labels are noisy (a worse model)", 3, "noisy", "2026-11-15")]
    for title, seed, kind, date in runs:
        step(f"data {title}")
        generate(n_rows=6000, seed=seed, kind=kind).to_parquet(data, index=False)
        version = hook.commit_version("transactions.parquet", f"data {title}")
        print(f"    DVC version {version.id}")
        airflow("dags", "test", "mlops_retrain", date)

    from airflow_mlops_provider.core.demo_data import TARGET

    incoming = home.data_dir / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    outcomes = {}
    for title, seed, kind, day in [("a normal day", 101, "normal", "2026-11-20"),
                                   ("a drifted day", 102, "drifted", "2026-11-21")]:
        step(f"batch inference on {title} ({day})")
        frame = generate(n_rows=BATCH_ROWS, seed=seed, kind=kind)
        outcomes[day] = frame[["transaction_id", TARGET]]
        frame.drop(columns=[TARGET]).to_parquet(incoming / f"{day}.parquet", index=False, row_group_size=50_000)
        airflow("dags", "test", "mlops_batch_inference", day)
    events = drift_events()
    print(f"    drift events emitted: {len(events)}")
    for extra in events:
        print(f"      {extra.get('data_path')}: drift share {extra.get('drift_share', 0):.0%}, "
              f"features {extra.get('drifted_features')}, report {extra.get('report')}")

    import numpy as np

    labels_dir = home.data_dir / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    for scored_day, labels_day, changed in [("2026-11-20", "2026-11-22", 0.0), ("2026-11-21", "2026-11-23", 0.35)]:
        step(f"late labels for {scored_day} arrive on {labels_day}"
             + (f" ({changed:.0%} of outcomes no longer follow the old pattern)" if changed else ""))
        labels = outcomes[scored_day].copy()
        flip = np.random.default_rng(7).random(len(labels)) < changed
        labels[TARGET] = np.where(flip, 1 - labels[TARGET], labels[TARGET])
        labels.to_parquet(labels_dir / f"{labels_day}.parquet", index=False)
        airflow("dags", "test", "mlops_performance_monitoring", labels_day)
    for rec in ledger.read(home.ledger_path):
        if rec.get("event") == "performance_checked":
            fig = ", ".join(f"{k} {f['live']:.3f} vs holdout {f['holdout']:.3f}" for k, f in rec["figures"].items())
            print(f"    labels {rec['labels_day']}: v{rec['version']} on {rec['rows']} rows: {fig}"
                  f"{' → DEGRADED' if rec['degraded'] else ''}")
    decay = drift_events("mlops://performance/")
    print(f"    performance degraded events emitted: {len(decay)}")

    step("Where to look")
    records = ledger.read(home.ledger_path)
    for rec in records:
        if rec.get("event") == "decision":
            print(f"  v{rec['challenger_version']} vs champion {rec['champion_version']}: "
                  f"{rec['verdict']} — {'; '.join(rec['reasons'])}")
    print(f"  audit ledger      : {home.ledger_path}")
    print(f"  MLflow store      : {home.mlflow_tracking_uri}")
    print(f"  data docs (GE)    : {home.reports_dir / 'data_docs' / 'index.html'}")
    print(f"  drift reports     : {home.reports_dir / 'drift'}")
    print(f"  scored partitions : {home.outputs_dir / 'scores'}")
    print(f"  DVC repo / remote : {home.dvc_repo} / {home.dvc_remote}")
    print("  Airflow + MLflow UI: make ui   (Airflow http://127.0.0.1:8080, user admin, password in "
          f"{home.airflow_home / 'simple_auth_manager_passwords.json.generated'}; 'Models' in its navigation; "
          "MLflow http://127.0.0.1:5000)")
    print(json.dumps({"decisions": sum(r.get("event") == "decision" for r in records),
                      "drift_events": len(events), "performance_degraded_events": len(decay)}))
    print(f"make demo took {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
