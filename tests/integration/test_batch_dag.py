"""mlops_batch_inference end to end through real `airflow dags test` runs, after a real retrain."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops_provider.core.demo_data import TARGET, generate
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from airflow_mlops_provider.hooks.dvc import DvcHook, init_local_repo
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from tests.conftest import conn_env, free_port
from tests.prometheus_stack import prometheus_stack, scraped

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("batch_dag")]

MODEL = "fraud-detector"


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory, airflow_db):
    """One MLOPS_HOME with a champion trained by a real mlops_retrain run, shared by this module.

    Session-scoped: xdist may interleave other modules' tests on this worker, and a module
    fixture would then train the same champion again (seen: twice per suite, ~45 s each).
    """
    import os
    import subprocess

    from tests.conftest import BIN, fresh_mlflow_store

    home = tmp_path_factory.mktemp("batch") / "mlops"
    env = {**os.environ, "MLOPS_HOME": str(home)}
    old = os.environ.get("MLOPS_HOME")
    os.environ["MLOPS_HOME"] = str(home)
    try:
        h = home_settings().ensure()
        fresh_mlflow_store(h.mlflow_dir / "mlflow.db")
        init_local_repo(h.dvc_repo, h.dvc_remote)
        generate(5000, seed=1).to_parquet(h.dvc_repo / "transactions.parquet", index=False)
        DvcHook().commit_version("transactions.parquet", "v1")
    finally:
        if old is None:
            os.environ.pop("MLOPS_HOME")
        else:
            os.environ["MLOPS_HOME"] = old
    proc = subprocess.run([str(BIN / "airflow"), "dags", "test", "mlops_retrain", "2026-10-01"], env=env,
                          capture_output=True, text=True, timeout=900, cwd=str(home))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return home


@pytest.fixture
def mlops_home(trained_home, monkeypatch):  # overrides the per-test home of conftest
    monkeypatch.setenv("MLOPS_HOME", str(trained_home))
    return trained_home


def incoming(day: str, frame) -> str:
    path = home_settings().data_dir / "incoming" / f"{day}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False, row_group_size=4000)
    return str(path)


def output(day: str):
    return home_settings().outputs_dir / "scores" / f"date={day}.parquet"


def drift_events(db) -> list[dict]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                            "WHERE a.name = ?", (f"mlops_drift_detected__{MODEL}",)).fetchall()
    return [json.loads(r[0]) for r in rows]


def test_normal_day_scores_every_row_and_emits_no_drift(mlops_home, run_dag, airflow_db):
    source = generate(12_000, seed=21).drop(columns=[TARGET])  # also day 1 of the late-labels test
    incoming("2026-11-10", source)
    before = len(drift_events(airflow_db))
    # Monitoring is down (nothing listens on the gateway's port): the run stays green, one warning.
    down = conn_env("pushgateway_default", conn_type="pushgateway", host=f"http://127.0.0.1:{free_port()}")
    result = run_dag("mlops_batch_inference", "2026-11-10", env=down)
    assert result.returncode == 0, result
    assert result.output.count("Prometheus Pushgateway http://127.0.0.1:") == 1, result.output[-3000:]
    assert result.states["signal_drift"] == "skipped", result.states
    assert len(drift_events(airflow_db)) == before
    champion = MlflowHook().client.get_model_version_by_alias(MODEL, "champion")
    table = pq.read_table(output("2026-11-10"))
    assert table.num_rows == len(source)
    assert sorted(table.column("transaction_id").to_pylist()) == sorted(source["transaction_id"])
    assert set(table.column("model_version").to_pylist()) == {str(champion.version)}
    assert set(table.column("model_run_id").to_pylist()) == {champion.run_id}
    assert result.states["score[0]"] == "success" and result.states["score[1]"] == "success"  # 2 shards

    # Rerun of the same date (with the champion also scoring in shadow): same rows, same scores,
    # no duplicates.
    first = table.sort_by("transaction_id")
    again = run_dag("mlops_batch_inference", "2026-11-10", conf={"shadow_alias": "champion"})
    assert again.returncode == 0, again
    second = pq.read_table(output("2026-11-10")).sort_by("transaction_id")
    assert second.num_rows == first.num_rows
    assert second.column("score").to_pylist() == first.column("score").to_pylist()
    assert second.column("shadow_score").to_pylist() == first.column("score").to_pylist()
    assert "decision_agreement = 1.000000" in again.output
    assert not any((home_settings().outputs_dir / "staging").rglob("*.parquet"))


def test_drifted_day_emits_drift_detected_and_prometheus_has_its_drift_share(mlops_home, run_dag, airflow_db,
                                                                              tmp_path):
    incoming("2026-11-11", generate(12_000, seed=22, kind="drifted").drop(columns=[TARGET]))
    before = len(drift_events(airflow_db))
    with prometheus_stack(tmp_path / "prometheus") as (gateway, query):
        result = run_dag("mlops_batch_inference", "2026-11-11",
                         env=conn_env("pushgateway_default", conn_type="pushgateway", host=gateway))
        assert result.returncode == 0, result
        series = scraped(query, f'mlops_drift_share{{model="{MODEL}",dag_id="mlops_batch_inference"}}', "drift share")
        rows = query(f'sum(mlops_rows_scored{{model="{MODEL}",task_id="score"}})')
        mean = query(f'mlops_prediction_mean{{model="{MODEL}",dag_id="mlops_batch_inference"}}')
    (point,) = series
    assert point["metric"]["run_id"] == result.run_id and point["metric"]["task_id"] == "check_drift"
    share = float(point["value"][1])
    assert share >= 0.5
    assert float(rows[0]["value"][1]) == 12_000  # both shards' rows
    scores = pq.read_table(output("2026-11-11"), columns=["score"]).column(0).to_pandas()
    assert float(mean[0]["value"][1]) == pytest.approx(scores.mean())  # the prediction distribution summary
    assert result.states["signal_drift"] == "success", result.states
    events = drift_events(airflow_db)
    assert len(events) == before + 1
    extra = events[-1]
    assert extra["model_name"] == MODEL and extra["drift_share"] == pytest.approx(share)
    assert point["metric"]["version"] == str(extra["model_version"])
    assert "amount" in extra["drifted_features"]
    assert extra["report"].endswith(".html")
    html = open(extra["report"], encoding="utf-8").read()
    assert "Dataset Drift" in html and "Drifted Columns" in html


@pytest.mark.parametrize(
    ("case", "failed_task", "needle"),
    [
        ("missing_column", "validate_input", "amount"),
        ("retyped_column", "validate_input", "hour"),
        ("corrupt", "inspect_partition", "is not a readable Parquet file"),
    ],
)
def test_bad_partitions_fail_clearly_and_write_nothing(mlops_home, run_dag, case, failed_task, needle):
    day = {"missing_column": "2026-11-12", "retyped_column": "2026-11-13", "corrupt": "2026-11-14"}[case]
    frame = generate(3000, seed=23).drop(columns=[TARGET])
    if case == "missing_column":
        incoming(day, frame.drop(columns=["amount"]))
    elif case == "retyped_column":
        incoming(day, frame.assign(hour=frame["hour"].map(lambda h: f"{h}h")))
    else:
        path = home_settings().data_dir / "incoming" / f"{day}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 not really parquet")
    result = run_dag("mlops_batch_inference", day)
    assert result.returncode != 0
    assert result.states[failed_task] == "failed", result.states
    assert needle in result.output
    assert not output(day).exists()


def test_empty_partition_is_an_explicit_skip(mlops_home, run_dag):
    incoming("2026-11-15", generate(10, seed=24).drop(columns=[TARGET]).iloc[:0])
    result = run_dag("mlops_batch_inference", "2026-11-15")
    assert result.returncode == 0, result
    assert result.states["inspect_partition"] == "skipped"
    assert "has 0 rows: nothing to score" in result.output
    assert not output("2026-11-15").exists()


def test_no_champion_names_the_alias(mlops_home, run_dag, tmp_path):
    # The model name is the DAG's (from its ModelConfig); a fresh MLOPS_HOME has no champion yet.
    path = incoming("2026-11-16", generate(3000, seed=25).drop(columns=[TARGET]))
    result = run_dag("mlops_batch_inference", "2026-11-16", conf={"input_path": path},
                     env={"MLOPS_HOME": str(tmp_path / "fresh")})
    assert result.returncode != 0
    assert result.states["resolve_champion"] == "failed"
    assert "has no alias 'champion'" in result.output
    assert not output("2026-11-16").exists()


def asset_events(db, name: str) -> list[dict]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                            "WHERE a.name = ? ORDER BY e.id", (name,)).fetchall()
    return [json.loads(r[0]) for r in rows]


def test_late_labels_degraded_day_emits_performance_degraded_once_and_queues_a_retrain(
        mlops_home, run_dag, airflow_db, tmp_path):
    """Two scored days; their labels arrive two days later. The second day's labels are noisy
    (35 % flipped, same feature distribution: no drift to see), so @champion's roc_auc on them
    falls far below its holdout: the decay policy fires, the ``performance degraded`` Asset is
    emitted with the figures and queues mlops_retrain for the scheduler. The first day does not
    fire; a rerun adds no ledger record, no MLflow run and no second event; unmatched,
    duplicated and null labels are counted."""
    from airflow_mlops_provider.core import ledger

    asset = f"mlops_performance_degraded__{MODEL}"
    # Day 1 is the normal day test_normal_day_scores... scored (the same seeded rows), when it ran.
    day1 = generate(12_000, seed=21)
    day2 = generate(4000, seed=32, kind="noisy")
    to_score = [("2026-11-21", day2)]
    if not output("2026-11-10").exists():
        to_score.insert(0, ("2026-11-10", day1))
    for day, frame in to_score:
        incoming(day, frame.drop(columns=[TARGET]))
        scored = run_dag("mlops_batch_inference", day)
        assert scored.returncode == 0, scored
        assert scored.states["signal_drift"] == "skipped", scored.states  # no feature drift either day
    champion = str(MlflowHook().client.get_model_version_by_alias(MODEL, "champion").version)
    # mlops_retrain is scheduled on the asset only when unpaused (as in production).
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:  # what `airflow dags unpause` does, without a CLI process
        session.get(DagModel, "mlops_retrain").is_paused = False

    labels_dir = home_settings().data_dir / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    first = day1[["transaction_id", TARGET]]
    # 5 keys never scored, a null label (for a key that is also labelled) and a duplicated row.
    extra_rows = pd.DataFrame({"transaction_id": [f"tx-unknown-{i}" for i in range(5)]
                               + [first.iloc[0, 0], first.iloc[1, 0], first.iloc[2, 0]],
                               TARGET: [1, 0, 1, 0, 1, first.iloc[0, 1], None, first.iloc[2, 1]]})
    pd.concat([first.iloc[1:], extra_rows], ignore_index=True).to_parquet(labels_dir / "2026-11-12.parquet")
    conf = {"lookback_days": 3}
    ok = run_dag("mlops_performance_monitoring", "2026-11-12", conf=conf)
    assert ok.returncode == 0, ok
    assert ok.states["check_performance"] == "success" and ok.states["signal_degradation"] == "skipped", ok.states
    assert "unmatched=5" in ok.output and "duplicated=1" in ok.output and "null_labels=1" in ok.output
    assert asset_events(airflow_db, asset) == []

    # Day 2's labels arrive for 3000 of its 4000 rows (partial coverage).
    day2[["transaction_id", TARGET]].iloc[:3000].to_parquet(labels_dir / "2026-11-23.parquet")
    with prometheus_stack(tmp_path / "prometheus") as (gateway, query):
        bad = run_dag("mlops_performance_monitoring", "2026-11-23", conf=conf,
                      env=conn_env("pushgateway_default", conn_type="pushgateway", host=gateway))
        assert bad.returncode == 0, bad
        fired = scraped(query, f'mlops_performance_degraded{{model="{MODEL}"}}', "decay figures")
        decay = query(f'mlops_performance_degradation_roc_auc{{model="{MODEL}"}}')
    assert bad.states["signal_degradation"] == "success", bad.states
    (event,) = asset_events(airflow_db, asset)
    assert event["model_name"] == MODEL and event["model_version"] == champion
    assert event["labelled_rows"] == 3000 and event["unmatched_labels"] == 0
    figures = event["figures"]["roc_auc"]
    assert figures["holdout"] - figures["live"] == pytest.approx(figures["degradation"]) and figures["degradation"] > 0.05
    assert event["reasons"][0].startswith("roc_auc ") and "> 0.05" in event["reasons"][0]
    assert float(fired[0]["value"][1]) == 1 and fired[0]["metric"]["version"] == champion
    assert float(decay[0]["value"][1]) == pytest.approx(figures["degradation"])
    with sqlite3.connect(airflow_db) as conn:
        queued = conn.execute("SELECT q.target_dag_id FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id "
                              "WHERE a.name = ?", (asset,)).fetchall()
    assert queued == [("mlops_retrain",)]  # what the scheduler turns into an asset-triggered retrain run

    records = [r for r in ledger.read(home_settings().ledger_path) if r.get("event") == "performance_checked"
               and r["labels_day"] in ("2026-11-12", "2026-11-23")]
    assert [(r["labels_day"], r["version"], r["degraded"]) for r in records] == [
        ("2026-11-12", champion, False), ("2026-11-23", champion, True)]
    assert records[0]["label_counts"]["unmatched"] == 5 and records[0]["label_counts"]["null_labels"] == 1
    assert records[0]["figures"]["roc_auc"]["degradation"] < 0.05
    client = MlflowHook().client
    experiment = client.get_experiment_by_name(f"{MODEL}-monitoring").experiment_id

    def performance_runs():
        return client.search_runs([experiment], filter_string="tags.`mlops.check` = 'performance'")

    before = {r.info.run_id for r in performance_runs()}
    assert len(before) >= 2

    again = run_dag("mlops_performance_monitoring", "2026-11-23", conf=conf)
    assert again.returncode == 0, again
    assert again.states["signal_degradation"] == "skipped", again.states
    assert "was already signalled" in again.output
    assert len(asset_events(airflow_db, asset)) == 1
    assert len([r for r in ledger.read(home_settings().ledger_path) if r.get("event") == "performance_checked"
                and r["labels_day"] in ("2026-11-12", "2026-11-23")]) == 2
    after = performance_runs()
    assert len(after) == len(before)  # the rerun replaced its own run
    (latest,) = [r for r in after if r.data.tags["mlops.labels_day"] == "2026-11-23"]
    assert latest.data.tags["mlops.degraded"] == "True"
    assert latest.data.metrics["perf.roc_auc"] == pytest.approx(figures["live"])
    assert latest.data.metrics["labelled_rows"] == 3000

    # The Models view charts the history from those runs.
    from airflow_mlops_provider.ui.models_view import collect

    facts = collect(client, home=home_settings(), tracking_uri=None, model=MODEL)
    points = {p["labels_day"]: p for p in facts["models"][0]["performance"][champion]}
    assert points["2026-11-12"]["degraded"] is False and points["2026-11-23"]["degraded"] is True
    assert points["2026-11-23"]["live"] == pytest.approx(figures["live"]) and points["2026-11-12"]["unmatched"] == 5


def test_online_traffic_captured_by_sagemaker_drifts_and_decays_like_batch(mlops_home, run_dag, airflow_db, tmp_path):
    """A day of normal and a day of drifted online requests, captured in SageMaker's Data Capture
    format (what the champion really answered), become partitions: the drifted day emits
    ``drift detected`` and queues mlops_retrain; late labels keyed by request id, a third of them
    no longer following the old pattern, fire ``performance degraded``."""
    import numpy as np
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    # The shipped dags/mlops_online_monitoring.py, reading SageMaker's format from where it captured.
    sagemaker = {"AIRFLOW__MLOPS_EXAMPLE__CAPTURE_FORMAT": "sagemaker",
                 "AIRFLOW__MLOPS_EXAMPLE__CAPTURE_PATH": str(home_settings().root / "capture" / "sagemaker")}
    hook = MlflowHook()
    champion = str(hook.client.get_model_version_by_alias(MODEL, "champion").version)
    model = hook.load_pyfunc(f"models:/{MODEL}/{champion}")
    features = model.metadata.get_input_schema().input_names()
    capture = home_settings().root / "capture" / "sagemaker" / f"v{champion}" / "fraud-prod" / "AllTraffic"
    days = {"2026-11-25": generate(1500, seed=41), "2026-11-26": generate(1500, seed=42, kind="drifted")}
    for day, frame in days.items():
        probas = np.asarray(model.predict(frame[features]))
        folder = capture / day.replace("-", "/") / "10"
        folder.mkdir(parents=True)
        lines = []
        for i, (tx, row) in enumerate(zip(frame["transaction_id"], frame[features].to_dict("split")["data"],
                                                  strict=True)):
            body = json.dumps({"dataframe_split": {"columns": features, "data": [row]}}, default=str)
            answer = json.dumps({"predictions": [list(map(float, probas[i]))]})
            lines.append(json.dumps({"captureData": {
                "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "data": body,
                                  "encoding": "JSON"},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": answer,
                                   "encoding": "JSON"}},
                "eventMetadata": {"eventId": f"ev-{tx}", "inferenceId": tx,
                                  "inferenceTime": f"{day}T10:{i % 60:02d}:00Z"}, "eventVersion": "0"}))
        (folder / "capture.jsonl").write_text("\n".join(lines))
    with create_session() as session:  # the retrain DAG consumes the events only when unpaused
        session.get(DagModel, "mlops_retrain").is_paused = False
    before = len(drift_events(airflow_db))

    normal = run_dag("mlops_online_monitoring", "2026-11-25", env=sagemaker)
    assert normal.returncode == 0, normal
    assert normal.states["check_drift"] == "success" and normal.states["signal_drift"] == "skipped", normal.states
    online = home_settings().outputs_dir / "online" / MODEL
    table = pq.read_table(online / "date=2026-11-25.parquet").to_pandas()
    assert len(table) == 1500 and set(table["model_version"]) == {champion}
    assert sorted(table["request_id"]) == sorted(days["2026-11-25"]["transaction_id"])
    assert table["score"].to_numpy() == pytest.approx(np.asarray(model.predict(table[features]))[:, 1])

    drifted = run_dag("mlops_online_monitoring", "2026-11-26", env=sagemaker)
    assert drifted.returncode == 0, drifted
    assert drifted.states["signal_drift"] == "success", drifted.states
    events = drift_events(airflow_db)
    assert len(events) == before + 1 and events[-1]["model_version"] == champion
    assert "amount" in events[-1]["drifted_features"]
    assert events[-1]["data_path"].endswith("online/fraud-detector/date=2026-11-26.parquet")
    with sqlite3.connect(airflow_db) as conn:
        queued = conn.execute("SELECT q.target_dag_id FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id "
                              "WHERE a.name = ?", (f"mlops_drift_detected__{MODEL}",)).fetchall()
    assert ("mlops_retrain",) in queued

    # Labels of the first day arrive two days later, keyed by the request id; 35 % no longer
    # follow the old pattern.
    labels = days["2026-11-25"][["transaction_id", TARGET]].rename(columns={"transaction_id": "request_id"})
    flip = pd.Series(range(len(labels))).mod(3).eq(0).to_numpy()
    labels[TARGET] = labels[TARGET].where(~flip, 1 - labels[TARGET])
    labels_dir = home_settings().data_dir / "online-labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    labels.to_parquet(labels_dir / "2026-11-27.parquet", index=False)
    decayed = run_dag("mlops_online_performance", "2026-11-27", conf={"lookback_days": 3}, env=sagemaker)
    assert decayed.returncode == 0, decayed
    assert decayed.states["signal_degradation"] == "success", decayed.states
    event = asset_events(airflow_db, f"mlops_performance_degraded__{MODEL}")[-1]
    assert event["model_version"] == champion and event["labelled_rows"] == 1500
    assert event["figures"]["roc_auc"]["degradation"] > 0.05
