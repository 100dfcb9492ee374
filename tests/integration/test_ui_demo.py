"""After a demo-shaped run, the Airflow UI tells the truth (headless Chromium, Debian's ``chromium``).

``scripts/demo.py`` (what `make demo` runs; scored days of 4,000 rows instead of 200,000) on a
fresh ``MLOPS_HOME``, then ``scripts/ui.py`` (what `make ui` runs) on it, on a free port, without
the MLflow UI. Then, as a user would see it:

- a browser without a login opening the Models view lands on Airflow's login page;
- the demo's runs have real durations (minutes, not the weeks between logical date and now);
- task logs are not empty, over the REST API and on the task's page in the UI;
- the Data Docs link on ``validate_data``'s page and the Drift Report link on ``check_drift``'s
  page render, and answer 200 behind the login with the report itself (and 307 to the login
  without it);
- the loop closes on screen: the demo's drift and decay events, queued for ``mlops_retrain``,
  make the *scheduler* of `make ui` start a retrain (nobody triggers it); it trains on data v4,
  deploys to the local target (a real ``mlflow models serve``), verifies and promotes;
- the Models view shows the gate's evidence (challenger and champion on the same holdout) and the
  endpoint the local target runs, which answers;
- stopping `make ui` stops that scoring server too (no orphan).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.conftest import BIN, REPO_ROOT, free_port, stop_group

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400),
              pytest.mark.xdist_group("ui_demo")]  # one worker: the module's demo runs once  # the demo runs first: 7 DAG runs

PASSWORD = "ui-demo-test-password"
ARTIFACTS = Path(os.environ.get("MLOPS_TEST_ARTIFACTS", REPO_ROOT / ".mlops" / "test-artifacts"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url: str, token: str | None = None, *, redirect: bool = True) -> tuple[int, dict, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    opener = urllib.request.build_opener(*(() if redirect else (_NoRedirect,)))
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode(errors="replace")


def _run_logged(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> None:
    with open(log, "w") as out:
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, cwd=REPO_ROOT)
    assert proc.returncode == 0, f"{cmd[1]} failed:\n{log.read_text()[-6000:]}"


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is not installed: `make test` installs it (scripts/install_system_packages.sh)"
    # MLOPS_UI_DEMO_HOME: a home kept between runs of this test (the demo is skipped when its
    # ledger exists), to iterate on the UI checks without the demo's minutes.
    kept = os.environ.get("MLOPS_UI_DEMO_HOME")
    root = Path(kept).parent / "ui-demo-test" if kept else tmp_path_factory.mktemp("ui-demo")
    root.mkdir(parents=True, exist_ok=True)
    home = Path(kept) if kept else root / "mlops"
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    env = {**os.environ, "MLOPS_HOME": str(home), "PYTHONPATH": str(REPO_ROOT), "MLOPS_DEMO_BATCH_ROWS": "4000",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5"}
    for key in ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__LOAD_EXAMPLES",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTOR", "AIRFLOW_CONN_MLFLOW_DEFAULT",
                "AIRFLOW__API__BASE_URL"):
        env.pop(key, None)  # the demo's own configuration, as `make demo` has it
    if not (home / "ledger").exists():
        _run_logged([str(BIN / "python"), str(REPO_ROOT / "scripts" / "demo.py")], env, root / "demo.log", 1800)

    port = free_port()
    log = open(root / "ui.log", "w")
    proc = subprocess.Popen([str(BIN / "python"), str(REPO_ROOT / "scripts" / "ui.py"), "--port", str(port),
                             "--no-mlflow", "--ready-timeout", "900"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 1000  # the api-server alone took over 6 min on the loaded 2-core machine
        while "ready; Ctrl-C" not in (root / "ui.log").read_text():
            if proc.poll() is not None or time.time() > deadline:
                logs = "".join(f"--- {p}\n{p.read_text(errors='replace')[-2500:]}\n"
                               for p in sorted((home / "logs" / "ui").glob("*.log")))
                raise AssertionError(f"scripts/ui.py did not get ready:\n{(root / 'ui.log').read_text()}\n{logs}")
            time.sleep(1)
        req = urllib.request.Request(f"{base}/auth/token", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"username": "admin", "password": PASSWORD}).encode())
        with urllib.request.urlopen(req, timeout=60) as resp:
            token = json.load(resp)["access_token"]
        yield {"base": base, "token": token, "home": home, "root": root, "chromium": chromium}
    finally:
        stop_group(proc)
        log.close()
        # Stopping `make ui` stopped the scoring servers the scheduler's deploy started (own sessions).
        orphans = _running_local_servers(home)
        for pid in orphans:
            os.killpg(pid, signal.SIGKILL)
        assert not orphans, f"scripts/ui.py left local scoring servers running: pids {orphans}"


def _running_local_servers(home: Path) -> list[int]:
    from airflow_mlops_provider.core.local_serving import Server, group_alive

    pids = []
    for path in (home / "serving").glob("*.json"):
        state = json.loads(path.read_text())
        for raw in (state.get("live"), state.get("candidate")):
            server = Server.from_dict(raw)
            if server is not None and group_alive(server.pid):
                pids.append(server.pid)
    return pids


def _api(ui, path: str) -> dict:
    status, _, body = _get(f"{ui['base']}{path}", ui["token"])
    assert status == 200, f"{path} -> {status}: {body[:500]}"
    return json.loads(body)


def _runs(ui, dag_id: str, run_type: str = "manual") -> list[dict]:
    """The DAG's runs of one type (the demo's are ``manual``: `airflow dags test`), oldest first."""
    runs = _api(ui, f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after&limit=100")["dag_runs"]
    return [r for r in runs if r["run_type"] == run_type]


LOOP_TIMEOUT = 2400  # s: a retrain and a local deploy through the scheduler, on a loaded 2-core machine


@pytest.fixture(scope="module")
def closed_loop(ui):
    """The retrain the scheduler starts from the demo's queued events, waited for until it ends
    (bounded by its progress: a task must finish within every LOOP_TIMEOUT seconds)."""
    deadline, progress = time.time() + LOOP_TIMEOUT, None
    while True:
        runs = _runs(ui, "mlops_retrain", "asset_triggered")
        if runs and runs[0]["state"] in ("success", "failed"):
            break
        if runs:
            tis = _api(ui, f"/api/v2/dags/mlops_retrain/dagRuns/{runs[0]['dag_run_id']}/taskInstances")
            done = sorted(t["task_id"] for t in tis["task_instances"] if t["state"] in ("success", "skipped"))
            if done != progress:
                progress, deadline = done, time.time() + LOOP_TIMEOUT
        assert time.time() < deadline, f"no asset-triggered mlops_retrain ended; runs {runs}, done {progress}"
        time.sleep(5)
    run = runs[0]
    tis = _api(ui, f"/api/v2/dags/mlops_retrain/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
    return {"run": run, "states": {t["task_id"]: t["state"] for t in tis}, "tis": tis}


def _browser(pw, ui):
    browser = pw.chromium.launch(executable_path=ui["chromium"], headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])
    return browser


def test_a_browser_without_login_is_sent_to_the_login_page(ui):
    status, headers, _ = _get(f"{ui['base']}/mlops/models", redirect=False)
    assert status == 307 and "/auth/login" in headers["location"] and "next=" in headers["location"]
    status, _, _ = _get(f"{ui['base']}/mlops/api/models", redirect=False)
    assert status == 401  # scripts keep a plain answer

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = _browser(pw, ui)
        try:
            page = browser.new_page()
            page.goto(f"{ui['base']}/mlops/models", wait_until="load")
            assert "/auth/login" in page.url, page.url
        finally:
            browser.close()


def test_demo_runs_have_real_durations_and_task_logs(ui):
    runs = _runs(ui, "mlops_retrain")  # the demo's three (the scheduler's own run is checked below)
    assert len(runs) == 3 and all(r["state"] == "success" for r in runs)
    for run in runs + _runs(ui, "mlops_batch_inference"):
        start, end = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
        assert 0 < (end - start).total_seconds() < 3600, (run["dag_run_id"], start, end)
    first = runs[0]["dag_run_id"]
    tis = _api(ui, f"/api/v2/dags/mlops_retrain/dagRuns/{first}/taskInstances")["task_instances"]
    ran = [t for t in tis if t["state"] == "success"]
    assert ran
    for ti in ran:
        status, _, body = _get(f"{ui['base']}/api/v2/dags/mlops_retrain/dagRuns/{first}/taskInstances/"
                               f"{ti['task_id']}/logs/{ti['try_number']}", ui["token"])
        assert status == 200 and f"starting task_id={ti['task_id']}" in body, (ti["task_id"], body[:300])
    train = next(t for t in ran if t["task_id"] == "train")
    _, _, body = _get(f"{ui['base']}/api/v2/dags/mlops_retrain/dagRuns/{first}/taskInstances/train/logs/"
                      f"{train['try_number']}", ui["token"])
    assert "Training a binary model" in body
    assert "DeprecatedImportWarning" not in body  # no skops warning flood


def _open_task(page, ui, dag_id: str, run_id: str, task_id: str, tab: str = "") -> None:
    """The task instance's page: its log (the default tab) or ``details`` (where extra links are)."""
    from urllib.parse import quote

    page.goto(f"{ui['base']}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}/{tab}".rstrip("/"),
              wait_until="load")


def test_report_links_render_on_task_pages_and_open_behind_the_login(ui):
    from playwright.sync_api import sync_playwright

    retrain = _runs(ui, "mlops_retrain")[0]["dag_run_id"]
    batch = _runs(ui, "mlops_batch_inference")[-1]["dag_run_id"]  # the drifted day
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = _browser(pw, ui)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_cookies([{"name": "_token", "value": ui["token"], "url": ui["base"]}])
            page = context.new_page()
            for dag_id, run_id, task_id, name, expected in (
                    ("mlops_retrain", retrain, "validate_data", "Data Docs", "Validation"),
                    ("mlops_batch_inference", batch, "check_drift", "Drift Report", "root_metric")):
                _open_task(page, ui, dag_id, run_id, task_id, "details")
                link = page.get_by_role("link", name=name)
                link.first.wait_for(timeout=90_000)
                href = link.first.get_attribute("href")
                assert href and "/mlops/reports/" in href, href
                url = href if href.startswith("http") else f"{ui['base']}{href}"
                answer = context.request.get(url)
                assert answer.status == 200, (name, url, answer.status)
                served = ui["home"] / "reports" / unquote(url.split("/mlops/reports/", 1)[1])
                assert answer.text() == served.read_text() and expected in answer.text()
                page.screenshot(path=str(ARTIFACTS / f"task-{task_id}.png"))
                status, headers, _ = _get(url, redirect=False)  # the same URL without a login
                assert status == 307 and "/auth/login" in headers["location"]
            # The task's log, in the UI.
            _open_task(page, ui, "mlops_retrain", retrain, "validate_data")
            page.get_by_text("Validated", exact=False).first.wait_for(timeout=90_000)
            page.screenshot(path=str(ARTIFACTS / "task-log.png"))
        finally:
            browser.close()


def test_the_scheduler_retrains_on_the_demo_events_and_deploys_locally(ui, closed_loop):
    run, states = closed_loop["run"], closed_loop["states"]
    assert len(_runs(ui, "mlops_retrain", "asset_triggered")) == 1  # one run for both queued events
    assert run["state"] == "success", states
    events = _api(ui, f"/api/v2/dags/mlops_retrain/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
    uris = {e["uri"] for e in events["asset_events"]}
    assert {"mlops://drift/fraud-detector", "mlops://performance/fraud-detector"} <= uris, uris
    # The local lane deployed, verified and promoted; nothing was rolled back.
    for task_id in ("decide", "local.deploy", "local.verify", "local.promote_traffic", "local.promote"):
        assert states[task_id] == "success", (task_id, states)
    assert states["no_deploy"] == "skipped" and states["local.rollback"] == "skipped", states
    deploy = next(t for t in closed_loop["tis"] if t["task_id"] == "local.deploy")
    _, _, body = _get(f"{ui['base']}/api/v2/dags/mlops_retrain/dagRuns/{run['dag_run_id']}/taskInstances/"
                      f"local.deploy/logs/{deploy['try_number']}", ui["token"])
    assert "Started the MLflow scoring server of fraud-detector v4" in body, body[:2000]  # the worker's task log


def test_models_view_shows_the_gate_and_the_endpoint(ui, closed_loop):
    from playwright.sync_api import sync_playwright

    facts = _api(ui, "/mlops/api/models")
    (model,) = facts["models"]
    newest, earlier = model["gate"][0], model["gate"][1]
    # The scheduler's retrain: v4 (data v4) against champion v2, on v4's holdout, promoted.
    assert newest["challenger_version"] == "4" and newest["champion_version"] == "2", newest
    assert newest["verdict"] == "promote" and newest["holdout"]["of_version"] == "4"
    # The demo's noisy v3 stays rejected in the history.
    assert earlier["challenger_version"] == "3" and earlier["verdict"] == "rejected", earlier
    assert model["holders"]["champion"]["version"] == "4"
    (endpoint,) = [s for s in model["serving"] if s["target"] == "local"]
    assert endpoint["role"] == "live" and endpoint["version"] == "4" and endpoint["running"], endpoint
    status, _, _ = _get(f"{endpoint['url']}/ping")
    assert status == 200  # a real scoring server answers there
    with sync_playwright() as pw:
        browser = _browser(pw, ui)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1400}, color_scheme="dark")
            context.add_cookies([{"name": "_token", "value": ui["token"], "url": ui["base"]}])
            page = context.new_page()
            started = time.time()
            page.goto(f"{ui['base']}/mlops/models", wait_until="load")
            elapsed = time.time() - started
            gate = page.locator("table.gate").first
            assert gate.get_attribute("data-challenger") == "4" and gate.get_attribute("data-champion") == "2"
            assert gate.get_attribute("data-holdout") == "4"
            caption = gate.locator("caption").inner_text()
            assert "v4's holdout" in caption and "promote" in caption
            assert page.locator("table.ledger td.reject").count() >= 1  # v3's rejection
            row = page.locator("li[data-target='local']")
            assert row.count() == 1
            text = row.inner_text()
            assert "live" in text and "v4" in text and endpoint["url"] in text, text
            page.screenshot(path=str(ARTIFACTS / "models-view-dark.png"), full_page=True)
            print(f"Models view answered in {elapsed:.1f}s")
        finally:
            browser.close()
