"""History you can act on, in headless Chromium (Debian's ``chromium``) against the real stack.

``scripts/ui.py`` (what `make ui` runs: api-server, scheduler, dag-processor, triggerer) on a fresh
``MLOPS_HOME`` with two SimpleAuthManager users, ``admin`` (role admin) and ``viewer`` (role viewer).
Before it starts, the test gives the shipped fraud model two real versions (tiny scikit-learn
models in the MLflow store under ``MLOPS_HOME``), makes v2 the champion after v1 (ledger records
as the promote operator writes them) and serves v2 on the local target (a real ``mlflow models
serve``). Then:

- the viewer sees the history but no rollback button, and ``POST /mlops/api/models/<m>/rollback``
  answers 403 to them;
- the admin clicks "Roll back @champion" in the Models view: a run of ``mlops_rollback`` starts
  (triggered through Airflow's REST API as admin), the scheduler runs it, ``@champion`` goes back to
  v1, the local target serves v1, and the ledger records ``champion_rolled_back`` by ``admin``;
  the page's timeline shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO_ROOT, stop_group

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500), pytest.mark.xdist_group("history_ui")]

MODEL = "fraud-detector"
PASSWORDS = {"admin": "history-admin-password", "viewer": "history-viewer-password"}


def _request(url: str, *, token: str | None = None, method: str = "GET", body: dict | None = None,
             timeout: float = 60) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers),
                                    timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def _seed(home: Path) -> None:
    """Two real model versions, v1 then v2 promoted (ledger as the promote operator writes it), v2 served
    by the local target."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from airflow_mlops_provider.core import ledger
    from airflow_mlops_provider.core.settings import mlops_home
    from airflow_mlops_provider.hooks.mlflow_serving import MlflowServingHook

    hook = MlflowServingHook()
    hook.activate()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(int)
    # An explicit experiment id, not mlflow.set_experiment: that sets a process global (and the
    # MLFLOW_EXPERIMENT_ID variable) that would follow this worker into the next test's store.
    experiment_id = hook.client.create_experiment("history-ui")
    for c in (0.1, 1.0):
        with mlflow.start_run(experiment_id=experiment_id):
            mlflow.log_metric("roc_auc", 0.8 + c / 10)
            mlflow.sklearn.log_model(LogisticRegression(C=c).fit(x, y), name="model", input_example=x[:2],
                                     registered_model_name=MODEL)
    client = hook.client
    for v in ("1", "2"):
        hook.wait_version_ready(MODEL, v, timeout=120)
    client.set_registered_model_alias(MODEL, "previous", "1")
    client.set_registered_model_alias(MODEL, "champion", "2")
    path = mlops_home().ledger_path
    ledger.append(path, {"event": "promoted", "model": MODEL, "challenger_version": "1", "previous_champion": None,
                         "dag_id": "mlops_retrain", "run_id": "seed_1", "task_id": "local.promote"})
    time.sleep(0.01)
    ledger.append(path, {"event": "promoted", "model": MODEL, "challenger_version": "2", "previous_champion": "1",
                         "dag_id": "mlops_retrain", "run_id": "seed_2", "task_id": "local.promote"})
    with hook.locked_state(MODEL) as state:
        state.live = hook.start(MODEL, "2")


def _live_local(home: Path) -> dict | None:
    from airflow_mlops_provider.core.local_serving import is_running, load_state, state_path

    state = load_state(state_path(home / "serving", MODEL), MODEL)
    live = state.live
    return {"version": live.version, "running": is_running(live), "url": live.url} if live else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is not installed: `make test` installs it (scripts/install_system_packages.sh)"
    root = tmp_path_factory.mktemp("history-ui")
    home = root / "mlops"
    home.mkdir()
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    env = {**os.environ, "MLOPS_HOME": str(home), "PYTHONPATH": str(REPO_ROOT),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5"}
    for key in ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__LOAD_EXAMPLES",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTOR", "AIRFLOW_CONN_MLFLOW_DEFAULT",
                "AIRFLOW__API__BASE_URL"):
        env.pop(key, None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
        _seed(home)

    from tests.conftest import free_port

    port = free_port()
    log = open(root / "ui.log", "w")
    proc = subprocess.Popen([str(BIN / "python"), str(REPO_ROOT / "scripts" / "ui.py"), "--port", str(port),
                             "--no-mlflow", "--ready-timeout", "600"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 720
        while "ready; Ctrl-C" not in (root / "ui.log").read_text():
            if proc.poll() is not None or time.time() > deadline:
                logs = "".join(f"--- {p}\n{p.read_text(errors='replace')[-2500:]}\n"
                               for p in sorted((home / "logs" / "ui").glob("*.log")))
                raise AssertionError(f"scripts/ui.py did not get ready:\n{(root / 'ui.log').read_text()}\n{logs}")
            time.sleep(1)
        tokens = {}
        for user, password in PASSWORDS.items():
            status, body = _request(f"{base}/auth/token", method="POST",
                                    body={"username": user, "password": password})
            assert status in (200, 201), body
            tokens[user] = json.loads(body)["access_token"]
        # The dag-processor parses the shipped DAGs: wait (bounded) until the rollback DAG is there.
        deadline = time.time() + 300
        while _request(f"{base}/api/v2/dags/mlops_rollback", token=tokens["admin"])[0] != 200:
            assert time.time() < deadline, "mlops_rollback was not parsed within 300s"
            time.sleep(2)
        yield {"base": base, "tokens": tokens, "home": home, "root": root, "chromium": chromium, "env": env}
    finally:
        stop_group(proc)
        log.close()
        with pytest.MonkeyPatch.context() as mp:  # never leave a scoring server behind
            mp.setenv("MLOPS_HOME", str(home))
            from airflow_mlops_provider.hooks.mlflow_serving import MlflowServingHook

            MlflowServingHook().stop_all(MODEL)


def _browser(pw, stack):
    return pw.chromium.launch(executable_path=stack["chromium"], headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])


def _page(browser, stack, user: str):
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    # The view's first page asks every deploy target what it serves (5 s each when unreachable) and
    # imports MLflow: over 30 s (Playwright's default) on the loaded 2-core machine.
    context.set_default_timeout(180_000)
    context.set_default_navigation_timeout(180_000)
    context.add_cookies([{"name": "_token", "value": stack["tokens"][user], "url": stack["base"]}])
    return context.new_page()


def test_a_viewer_sees_no_button_and_gets_403(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = _browser(pw, stack)
        try:
            page = _page(browser, stack, "viewer")
            page.goto(f"{stack['base']}/mlops/models?model={MODEL}", wait_until="load")
            assert page.locator("table.timeline").count() >= 1  # the history is readable
            assert page.locator("form.rollback").count() == 0
        finally:
            browser.close()
    status, body = _request(f"{stack['base']}/mlops/api/models/{MODEL}/rollback", token=stack["tokens"]["viewer"],
                            method="POST", body={"reason": "viewer tries"})
    assert status == 403, body
    assert "mlops_rollback" in body
    runs = json.loads(_request(f"{stack['base']}/api/v2/dags/mlops_rollback/dagRuns",
                               token=stack["tokens"]["admin"])[1])
    assert runs["total_entries"] == 0


def test_an_admin_rolls_back_from_the_models_view(stack):
    from playwright.sync_api import sync_playwright

    from airflow_mlops_provider.core import ledger

    assert (_live_local(stack["home"]) or {}).get("version") == "2"
    with sync_playwright() as pw:
        browser = _browser(pw, stack)
        try:
            page = _page(browser, stack, "admin")
            page.goto(f"{stack['base']}/mlops/models?model={MODEL}", wait_until="load")
            form = page.locator("form.rollback")
            assert form.count() == 1
            form.locator("input[name=reason]").fill("v2 flags too many good customers")
            with page.expect_navigation(wait_until="load"):
                form.locator("button").click()
            started = page.locator(".rollback-started")
            assert started.count() == 1, page.content()[:3000]
            run_id = started.get_attribute("data-run")
            assert run_id
        finally:
            browser.close()

    base, token = stack["base"], stack["tokens"]["admin"]
    deadline = time.time() + 900
    while True:
        status, body = _request(f"{base}/api/v2/dags/mlops_rollback/dagRuns/{run_id}", token=token)
        assert status == 200, body
        run = json.loads(body)
        if run["state"] in ("success", "failed"):
            break
        assert time.time() < deadline, f"the rollback run is still {run['state']} after 900s"
        time.sleep(3)
    tis = json.loads(_request(f"{base}/api/v2/dags/mlops_rollback/dagRuns/{run_id}/taskInstances",
                              token=token)[1])["task_instances"]
    states = {t["task_id"]: t["state"] for t in tis}
    assert run["state"] == "success", states
    assert run.get("triggering_user_name") in (None, "admin")
    assert states["local.rollback"] == "success" and states["no_serving"] == "skipped", states

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(stack["home"]))
        from airflow_mlops_provider.core.settings import mlops_home
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        client = MlflowHook().client
        assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
        assert str(client.get_model_version_by_alias(MODEL, "previous").version) == "2"
        record = ledger.read(mlops_home().ledger_path)[-1]
    assert record["event"] == "champion_rolled_back"
    assert (record["from_version"], record["to_version"]) == ("2", "1")
    assert record["requested_by"] == "admin" and record["reason"] == "v2 flags too many good customers"
    assert record["deploy_targets"] == ["local"] and record["run_id"] == run_id
    live = _live_local(stack["home"])
    assert live == {**live, "version": "1", "running": True}
    status, _ = _request(f"{live['url']}/ping")
    assert status == 200

    # The history answers with the rollback, for @champion and for the local target.
    answer = json.loads(_request(f"{base}/mlops/api/history?model={MODEL}", token=token)[1])
    assert answer["live"]["version"] == "1" and answer["live"]["why"]["who"] == "admin"
    served = json.loads(_request(f"{base}/mlops/api/history?model={MODEL}&target=local", token=token)[1])
    assert served["live"]["version"] == "1" and served["now"] == "1"
    page_html = _request(f"{base}/mlops/models?model={MODEL}", token=token)[1]
    assert "data-event='champion_rolled_back'" in page_html
