"""The shipped DAGs the way users run them: `make ui`'s stack on PostgreSQL, driven over REST.

``scripts/ui.py`` (what `make ui` runs) starts the api-server, scheduler, dag-processor and
triggerer on a fresh PostgreSQL database (127.0.0.1:5432), beside a real ``mlflow server``.
Then, in order, as one story on one worker:

1. ``mlops_retrain`` is unpaused and triggered through the REST API with the Params form's
   payload (what the UI's Trigger button sends) and succeeds: the first champion.
2. ``mlops_batch_inference`` runs through the API on a normal day with 4 shards, then on a
   drifted day; the drift Asset event makes the *scheduler* start ``mlops_retrain`` — nobody
   triggers it.
3. The Models view (the plugin under ``plugins/``) is opened in headless Chromium (Debian's
   ``chromium``, driven by Playwright) behind Airflow's login: champion, metrics, drift chart;
   a screenshot is saved.
4. The OpenLineage events the runs emitted (file transport) are read back: training data (with
   its DVC version) → model version → scored partition.
5. The same stack restarts with CeleryExecutor (Redis 127.0.0.1:6379 as broker, PostgreSQL as
   result backend) and two Celery workers: the normal day scored again with 4 shards runs on
   both workers and writes the same partition as the LocalExecutor run.
6. A new DVC data version committed to the real git + DVC repo: the triggerer's AssetWatcher
   fires once and the scheduler starts one asset-triggered ``mlops_retrain``.

Skipped only where PostgreSQL (or, for step 5, Redis) is unreachable.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_mlops_provider.core.demo_data import TARGET, generate
from tests.conftest import BIN, REPO_ROOT, _dvc, _git, conn_env, free_port, running_mlflow_server, stop_group

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.xdist_group("postgres"),
              # Waits are bounded by progress (Stack.wait_run), not by this: it only catches a hung test.
              pytest.mark.timeout(2400)]

# The DAG files in dags/: nothing else (no examples) is loaded by `make ui`.
PROJECT_DAGS = ["mlops_alias_audit", "mlops_batch_inference", "mlops_online_monitoring", "mlops_online_performance",
                "mlops_performance_monitoring", "mlops_retrain", "mlops_rollback"]

# Task states in which a run is moving even when no state changes for a while.
ACTIVE = {"running", "deferred", "up_for_reschedule", "restarting"}

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
PASSWORD = "stack-test-password"
NORMAL_DAY, DRIFTED_DAY, CELERY_DAY = "2026-11-20", "2026-11-21", "2026-11-22"
ARTIFACTS = Path(os.environ.get("MLOPS_TEST_ARTIFACTS", REPO_ROOT / ".mlops" / "test-artifacts"))


def _pg_admin():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3)
    except psycopg2.OperationalError as err:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {err}")
    conn.autocommit = True
    return conn


def _redis_reachable() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            return None if sock.recv(16).startswith(b"+PONG") else "Redis on 127.0.0.1:6379 did not answer PING"
    except OSError as err:
        return f"Redis on 127.0.0.1:6379 is not reachable: {err}"


class Stack:
    """``scripts/ui.py`` as a child process group, plus a REST client with the admin's JWT."""

    def __init__(self, home: Path, env: dict[str, str], logs: Path):
        self.home, self.env, self.logs = home, env, logs
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.token: str | None = None

    def start(self, *, extra_env: dict[str, str] | None = None, celery_workers: int = 0) -> None:
        out = open(self.logs / f"ui-{int(time.time())}.log", "w")
        self.proc = subprocess.Popen(
            [str(BIN / "python"), str(REPO_ROOT / "scripts" / "ui.py"), "--port", str(self.port), "--no-mlflow",
             "--celery-workers", str(celery_workers), "--ready-timeout", "240"],
            env={**self.env, **(extra_env or {})}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 300
        while "ready; Ctrl-C" not in Path(out.name).read_text():
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"scripts/ui.py did not get ready:\n{self.tails()}")
            time.sleep(1)
        self.token = self._token()
        # `ready` means the servers answer; the dag-processor may still be parsing the DAG folder
        # (it starts after the api-server): wait, bounded, until every project DAG is there.
        deadline = time.monotonic() + 300
        while not set(PROJECT_DAGS) <= set(self.dag_ids()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the DAGs {PROJECT_DAGS} were not all parsed within 300s: {self.dag_ids()}\n"
                                     f"{self.tails()}")
            time.sleep(2)

    def wait_parsed_with_queue(self, dag_id: str, queue: str, timeout: float = 300) -> None:
        """Wait (bounded) until the serialized ``dag_id`` sends its tasks to ``queue``: an operator's queue
        is fixed when the dag-processor parses the file, and a run triggered before the restarted
        dag-processor re-parsed it sends its tasks to the old queue, where no worker listens."""
        deadline = time.monotonic() + timeout
        while True:
            queues = {t["task_id"]: t["queue"] for t in self.ok("GET", f"/api/v2/dags/{dag_id}/tasks")["tasks"]}
            if set(queues.values()) == {queue}:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{dag_id} was not re-parsed with queue {queue!r} within {timeout:.0f}s: "
                                     f"{queues}\n{self.tails()}")
            time.sleep(2)

    def dag_ids(self) -> list[str]:
        return sorted(d["dag_id"] for d in self.ok("GET", "/api/v2/dags?limit=100")["dags"])

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_group(self.proc)
        self.proc = None

    def tails(self) -> str:
        files = sorted(self.logs.glob("*.log")) + sorted((self.home / "logs" / "ui").glob("*.log"))
        return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2500:]}" for p in files)

    def _token(self) -> str:
        body = json.dumps({"username": "admin", "password": PASSWORD}).encode()
        req = urllib.request.Request(f"{self.base}/auth/token", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)["access_token"]

    def api(self, method: str, path: str, body: dict | None = None, *, auth: bool = True) -> tuple[int, object]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(f"{self.base}{path}", method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw and "json" in resp.headers.get("Content-Type", "") \
                    else raw.decode(errors="replace")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def ok(self, method: str, path: str, body: dict | None = None) -> dict:
        status, answer = self.api(method, path, body)
        assert 200 <= status < 300, f"{method} {path} -> {status}: {answer}"
        return answer

    def trigger_like_the_ui(self, dag_id: str, logical_date: str, **overrides) -> str:
        """What the Trigger button does: the DAG's Params as the form shows them, edited, posted as conf."""
        details = self.ok("GET", f"/api/v2/dags/{dag_id}/details")
        conf = {name: spec.get("value") for name, spec in details["params"].items()}
        conf.update(overrides)
        run = self.ok("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                      {"logical_date": logical_date, "conf": conf, "note": "triggered like the UI form"})
        return run["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, *, stall: float = 240, cap: float = 1500,
                 until: Callable[[dict[str, str]], bool] | None = None) -> dict:
        """Wait for a run to end (or for ``until(task states)`` to hold), bounded by progress rather than a
        guess: a run that moves (a task changes state or tries again, or one is running or deferred) may
        take as long as a loaded machine needs, up to ``cap``; a run on which nothing has moved for
        ``stall`` seconds fails at once, with every task's state."""
        started = last_move = time.monotonic()
        seen: object = None
        while True:
            run = self.ok("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] == "failed":
                raise AssertionError(f"{dag_id} {run_id} failed: {self.task_states(dag_id, run_id)}\n"
                                     f"{self.tails()}")
            if run["state"] == "success":
                return run
            tis = self.task_instances(dag_id, run_id)
            if until is not None and until({t["task_id"]: t["state"] for t in tis}):
                return run
            now = time.monotonic()
            marks = (run["state"], sorted((t["task_id"], t["map_index"], t["state"] or "", t["try_number"])
                                          for t in tis))
            # A queued run waits while another run of its DAG holds max_active_runs (e.g. the weekly
            # cron's latest tick, started when the DAG is unpaused): that run moving counts.
            waiting = run["state"] == "queued" and self.others_running(dag_id, run_id)
            if marks != seen or waiting or any(t["state"] in ACTIVE for t in tis):
                seen, last_move = marks, now
            if now - last_move > stall or now - started > cap:
                why = f"nothing moved for {now - last_move:.0f}s" if now - last_move > stall \
                    else f"still moving after {cap:.0f}s"
                raise AssertionError(f"{dag_id} {run_id} not done ({why}): {self.task_states(dag_id, run_id)}\n"
                                     f"{self.tails()}")
            time.sleep(3)

    def others_running(self, dag_id: str, run_id: str) -> bool:
        runs = self.ok("GET", f"/api/v2/dags/{dag_id}/dagRuns?state=running&limit=50")["dag_runs"]
        return any(r["dag_run_id"] != run_id for r in runs)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.ok("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200")["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {f"{t['task_id']}[{t['map_index']}]" if t["map_index"] >= 0 else t["task_id"]: t["state"]
                for t in self.task_instances(dag_id, run_id)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    admin = _pg_admin()
    database = f"mlops_stack_{uuid.uuid4().hex[:10]}"
    admin.cursor().execute(f'CREATE DATABASE "{database}"')
    root = tmp_path_factory.mktemp("stack")
    home, logs = root / "mlops", root / "logs"
    logs.mkdir()
    repo, remote = home / "data-repo", home / "dvc-remote"
    repo.mkdir(parents=True)
    remote.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _dvc(repo, "init", "-q")
    _dvc(repo, "remote", "add", "-d", "local", str(remote))
    generate(3000, seed=1).to_parquet(repo / "transactions.parquet", index=False)
    _dvc(repo, "add", "-q", "transactions.parquet")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "data v1")
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    (root / "mlflow").mkdir()
    with running_mlflow_server(root / "mlflow") as mlflow_url:
        env = {
            **os.environ, "MLOPS_HOME": str(home), "PYTHONPATH": str(REPO_ROOT),
            **conn_env("mlflow_default", conn_type="mlflow", host=mlflow_url),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG}/{database}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.integration.worker_hostname.hostname",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(root / "lineage" / "events.jsonl"), "append": True}),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "mlops-stack-test",
            "AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT": "60",  # the listener's 10 s is short on 2 loaded cores
            "MLOPS_DVC_WATCH_INTERVAL": "5",
            # No cron runs: unpausing a DAG would start its latest tick (a second retrain or a batch run
            # on the two cores) beside the runs the tests trigger. Events and triggers still schedule.
            "AIRFLOW__MLOPS_EXAMPLE__RETRAIN_CRON": "",
            "AIRFLOW__MLOPS_EXAMPLE__BATCH_CRON": "",
        }
        (root / "lineage").mkdir()
        for key in ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__LOAD_EXAMPLES"):
            env.pop(key, None)  # ui.py sets them for MLOPS_HOME; the test session's values must not leak
        running = Stack(home, env, logs)
        running.root, running.database = root, database
        running.start()
        try:
            yield running
        finally:
            running.stop()
            admin.cursor().execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                                   (database,))
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{database}"')
            admin.close()


def _iso(day: str) -> str:
    return f"{day}T00:00:00Z"


def _land(home: Path, day: str, kind: str, seed: int) -> Path:
    incoming = home / "data" / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / f"{day}.parquet"
    generate(4000, seed=seed, kind=kind).drop(columns=[TARGET]).to_parquet(path, index=False, row_group_size=1000)
    return path


def test_ui_trigger_over_rest_trains_the_first_champion(stack):
    # Only the project's DAGs, no examples; new DAGs start paused as in any deployment.
    assert stack.dag_ids() == PROJECT_DAGS
    pools = {p["name"]: p["slots"] for p in stack.ok("GET", "/api/v2/pools")["pools"]}
    assert pools.get("mlops_promotion") == 1
    stack.ok("PATCH", "/api/v2/dags/mlops_retrain", {"is_paused": False})
    run_id = stack.trigger_like_the_ui("mlops_retrain", datetime.now(timezone.utc).isoformat(),
                                       deploy_target="none")
    stack.wait_run("mlops_retrain", run_id)
    states = stack.task_states("mlops_retrain", run_id)
    assert states["promote"] == "success" and states["train"] == "success", states
    promote = next(t for t in stack.task_instances("mlops_retrain", run_id) if t["task_id"] == "promote")
    assert promote["pool"] == "mlops_promotion"


def test_drift_event_from_the_batch_dag_makes_the_scheduler_retrain(stack):
    _land(stack.home, DRIFTED_DAY, "drifted", 102)
    _land(stack.home, NORMAL_DAY, "normal", 101)
    before = [r["dag_run_id"] for r in stack.ok("GET", "/api/v2/dags/mlops_retrain/dagRuns?limit=50")["dag_runs"]]
    stack.ok("PATCH", "/api/v2/dags/mlops_batch_inference", {"is_paused": False})
    drifted = stack.trigger_like_the_ui("mlops_batch_inference", _iso(DRIFTED_DAY))
    stack.wait_run("mlops_batch_inference", drifted)
    assert stack.task_states("mlops_batch_inference", drifted)["signal_drift"] == "success"

    deadline = time.time() + 120
    while True:
        runs = [r for r in stack.ok("GET", "/api/v2/dags/mlops_retrain/dagRuns?limit=50")["dag_runs"]
                if r["dag_run_id"] not in before]
        if runs or time.time() > deadline:
            break
        time.sleep(3)
    assert [r["run_type"] for r in runs] == ["asset_triggered"], f"{runs}\n{stack.tails()}"
    events = stack.ok("GET", f"/api/v2/dags/mlops_retrain/dagRuns/{runs[0]['dag_run_id']}/upstreamAssetEvents")
    drift_events = [e for e in events["asset_events"] if e["uri"].startswith("mlops://drift/")]
    assert drift_events and drift_events[0]["extra"]["drift_share"] >= 0.5, events
    # The scheduler runs it: its first tasks succeed. A retrain run to the end under the scheduler is
    # the first test's; this one is stopped here (marked failed, as a user would in the UI) so that it
    # neither moves @champion under the batch runs below nor takes the machine's two cores from them.
    retrain = runs[0]["dag_run_id"]
    stack.wait_run("mlops_retrain", retrain, until=lambda states: "success" in states.values())
    stack.ok("PATCH", f"/api/v2/dags/mlops_retrain/dagRuns/{retrain}", {"state": "failed"})

    # A normal day after it, in 4 shards: no drift signal. (Its partition is the Celery test's reference.)
    normal = stack.trigger_like_the_ui("mlops_batch_inference", _iso(NORMAL_DAY), shards=4)
    stack.wait_run("mlops_batch_inference", normal)
    assert stack.task_states("mlops_batch_inference", normal)["signal_drift"] == "skipped"


def test_models_view_in_headless_chromium(stack):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is not installed: `make test` installs it (scripts/install_system_packages.sh)"
    # Anonymous requests are refused by Airflow's auth in front of the view (a browser is sent to
    # the login page instead: tests/integration/test_ui_demo.py).
    status, _ = stack.api("GET", "/mlops/api/models", auth=False)
    assert status in (401, 403)
    facts = stack.ok("GET", "/mlops/api/models")
    (model,) = facts["models"]
    assert model["name"] == "fraud-detector" and "champion" in model["holders"]
    assert model["drift"], "no drift history"

    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1400})
            # The UI keeps its login in the `_token` cookie; set the JWT the login form would have set.
            context.add_cookies([{"name": "_token", "value": stack.token, "url": stack.base}])
            page = context.new_page()
            page.goto(f"{stack.base}/mlops/models", wait_until="load")
            section = page.locator("section.model[data-model='fraud-detector']")
            assert section.count() == 1
            text = section.inner_text()
            champion = model["aliases"]["champion"]
            assert f"@champion: v{champion}" in text
            assert "roc_auc" in text
            assert page.locator("svg.drift-chart rect.drift-bar").count() >= 2
            fired = page.locator(f"rect.drift-bar[data-partition='{DRIFTED_DAY}']")
            assert fired.count() == 1 and float(fired.get_attribute("data-share")) >= 0.5
            assert "promoted" in page.locator("table.ledger").inner_text()
            page.screenshot(path=str(ARTIFACTS / "models-view.png"), full_page=True)
            # Inside the Airflow UI: "Models" in the navigation opens the view in the UI's frame.
            page.goto(f"{stack.base}/plugin/mlops-models", wait_until="networkidle")
            page.get_by_text("Models").first.wait_for(timeout=30_000)
            frame = page.frame_locator("iframe").first
            frame.locator("section.model[data-model='fraud-detector']").wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "models-view-in-airflow.png"))
        finally:
            browser.close()
    assert (ARTIFACTS / "models-view.png").stat().st_size > 10_000


def test_openlineage_events_chain_data_to_model_to_partition(stack):
    from tests.lineage import assert_chain, read_events

    events = read_events(stack.root / "lineage" / "events.jsonl")
    assert_chain(events, "fraud-detector")


def test_celery_workers_share_the_shards_and_write_the_same_partition(stack):
    reason = _redis_reachable()
    if reason:
        pytest.skip(reason)
    import pyarrow.parquet as pq

    stack.stop()
    queue = f"mlops_{uuid.uuid4().hex[:8]}"  # this run's own queue: nothing else on the broker takes its tasks
    stack.start(celery_workers=2, extra_env={
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:5432/{stack.database}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
    })
    stack.wait_parsed_with_queue("mlops_batch_inference", queue)
    local_output = stack.home / "outputs" / "scores" / f"date={NORMAL_DAY}.parquet"
    celery_output = stack.home / "outputs" / "celery" / f"date={NORMAL_DAY}.parquet"
    run_id = stack.trigger_like_the_ui(
        "mlops_batch_inference", _iso(CELERY_DAY), shards=4,
        input_path=str(stack.home / "data" / "incoming" / f"{NORMAL_DAY}.parquet"), output_path=str(celery_output))
    stack.wait_run("mlops_batch_inference", run_id)
    shards = [t for t in stack.task_instances("mlops_batch_inference", run_id) if t["map_index"] >= 0]
    assert len(shards) == 4 and {t["state"] for t in shards} == {"success"}
    hosts = {t["hostname"] for t in shards}
    assert {h.rsplit("-", 1)[-1] for h in hosts} == {"worker1", "worker2"}, hosts
    assert pq.read_table(celery_output).equals(pq.read_table(local_output))


def test_new_dvc_version_makes_the_scheduler_retrain_once(stack):
    """The triggerer's AssetWatcher (DvcNewDataVersionTrigger on the real git + DVC repo) fires once
    per new data version; the scheduler turns that into one asset-triggered mlops_retrain run."""
    def dvc_runs() -> list[dict]:
        runs = stack.ok("GET", "/api/v2/dags/mlops_retrain/dagRuns?limit=100")["dag_runs"]
        found = []
        for run in runs:
            if run["run_type"] != "asset_triggered":
                continue
            events = stack.ok("GET", f"/api/v2/dags/mlops_retrain/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
            if any(e["uri"].startswith("mlops://datasets/") for e in events["asset_events"]):
                found.append(run)
        return found

    assert dvc_runs() == []  # the watcher started from v1: nothing fired for it
    repo = stack.home / "data-repo"
    generate(3000, seed=2).to_parquet(repo / "transactions.parquet", index=False)
    _dvc(repo, "add", "-q", "transactions.parquet")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "data v2")
    deadline = time.time() + 180
    while not (runs := dvc_runs()) and time.time() < deadline:
        time.sleep(3)
    assert len(runs) == 1, f"{runs}\n{stack.tails()}"
    time.sleep(15)  # edge-triggered: the same version never fires again
    assert len(dvc_runs()) == 1
