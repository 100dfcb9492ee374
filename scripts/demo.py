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
6. data v4, labelled transactions of the new traffic, lands in DVC

mlops_retrain is unpaused before step 4, so Airflow queues the drift and decay events for it
(AssetDagRunQueue; events of a paused DAG are dropped). No scheduler runs here: `make ui`'s
scheduler starts that retrain, which trains on data v4 and deploys the accepted challenger to the
local target (``[mlops_example] deploy_target = local`` in the demo's airflow.cfg), verifies it
and promotes it. The demo's own retrains pass ``deploy_target: none``.

Every DAG run is `airflow dags test`, run by Airflow's CLI inside this one process (the heavy
imports are paid once, not once per run); each run's output goes to its own log file.
Then it prints where to look. Everything lives under MLOPS_HOME (default .mlops/).
"""

from __future__ import annotations

import json
import os
import sys
import time

import local_airflow

HOME = local_airflow.home_dir()
local_airflow.write_config(HOME)
# The shipped example DAGs read these (dags/fraud_model.py, dags/mlops_retrain.py); set only when
# absent, so an edit in airflow.cfg wins. The demo's Airflow retrains on events only: a weekly cron
# on an unpaused DAG would run last Sunday's tick as soon as `make ui` starts, a second retrain.
local_airflow.set_defaults(HOME, {("mlops_example", "deploy_target"): "local", ("mlops_example", "retrain_cron"): ""})
_ENV = local_airflow.environment(HOME)
os.environ.clear()
os.environ.update(_ENV)
os.environ.setdefault("GIT_AUTHOR_NAME", "mlops-demo")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "mlops-demo@example.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "mlops-demo")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "mlops-demo@example.invalid")
BATCH_ROWS = int(os.environ.get("MLOPS_DEMO_BATCH_ROWS", 50_000))  # rows per scored day (tests use fewer)
NO_DEPLOY = '{"deploy_target": "none"}'  # the demo's own retrains; make ui's scheduler run deploys


def step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _airflow_cli(args: list[str]) -> int:
    """``airflow <args>`` by Airflow's own CLI entry (airflow.__main__), in this process."""
    from airflow import configuration  # noqa: F401 - first, as airflow.__main__ does (import cycles)
    from airflow.cli import cli_parser
    from airflow.configuration import write_default_airflow_configuration_if_needed

    try:
        parsed = cli_parser.get_parser().parse_args(args)
        write_default_airflow_configuration_if_needed()
        parsed.func(parsed)
    except SystemExit as done:
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
            return 1
        return done.code or 0
    except BaseException:  # noqa: BLE001 - reported in the run's log and by the exit code, as the CLI would
        import traceback

        traceback.print_exc()
        return 1
    return 0


def airflow(*args: str, quiet: bool = False) -> None:
    started = time.time()
    log = HOME / "logs" / f"{'-'.join(a for a in args[:3] if not a.startswith('-'))}-{int(started)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # One stream, in order, into the run's log (the task logs are cut out of it per task,
    # local_airflow.record_dags_test): this process's stdout and stderr point at the file meanwhile.
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "wb") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            code = _airflow_cli(list(args))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    output = log.read_text(errors="replace")
    if args[:2] == ("dags", "test"):
        # The UI shows each task's log and the run's real duration (dags test writes neither).
        local_airflow.record_dags_test(args[2], output)
    if code != 0:
        print(output[-8000:])
        raise SystemExit(f"airflow {' '.join(args)} failed (exit {code}); log: {log}")
    for line in output.splitlines():
        if line.startswith(("fraud-detector v", "output partition", "DRIFT DETECTED")):  # task summaries
            print("   ", line[:400])
    if not quiet:
        print(f"    ok in {time.time() - started:.0f}s (log: {log})", flush=True)


def queued_for_retrain(dag_id: str = "mlops_retrain") -> list[str]:
    """The asset events Airflow queued for ``dag_id`` (AssetDagRunQueue): a scheduler starts its run."""
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(AssetModel.uri).join(AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
                                    .where(AssetDagRunQueue.target_dag_id == dag_id).order_by(AssetModel.uri)))


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
    # What local_airflow.prepare does for make ui, in this process.
    airflow("db", "migrate", quiet=True)
    airflow("pools", "set", local_airflow.PROMOTION_POOL, "1", "champion promotions, one at a time (mlops)", quiet=True)
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
        airflow("dags", "test", "mlops_retrain", date, "--conf", NO_DEPLOY)

    # From here on the monitoring DAGs' events are queued for mlops_retrain (paused, they would be dropped).
    airflow("dags", "unpause", "mlops_retrain", quiet=True)

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

    step("data v4: labelled transactions of the new traffic (what the next retrain trains on)")
    generate(n_rows=6000, seed=4, kind="drifted").to_parquet(data, index=False)
    version = hook.commit_version("transactions.parquet", "data v4: labelled transactions of the new traffic")
    print(f"    DVC version {version.id}")
    queued = queued_for_retrain()
    print(f"    queued for mlops_retrain: {', '.join(queued) or 'nothing'} "
          "(`make ui`'s scheduler starts the retrain: v4 data, deploy to the local target, verify, promote)")

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
                      "drift_events": len(events), "performance_degraded_events": len(decay),
                      "queued_for_retrain": queued}))
    print(f"make demo took {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
