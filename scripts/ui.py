"""`make ui`: Airflow (api-server, scheduler, dag-processor, triggerer) and the MLflow UI on MLOPS_HOME.

Only the project's DAGs and plugins, on the same MLOPS_HOME, Airflow DB and MLflow store as
`make demo`, so the demo's runs, the champion and the Models view are there. Runs until Ctrl-C
(or SIGTERM) and then stops every process it started.

    python scripts/ui.py [--port 8080] [--mlflow-port 5000] [--no-mlflow] [--celery-workers N]

Every listener is on 127.0.0.1: the api-server and the MLflow UI on the given ports (default
8080 and 5000, or a free port when those are taken; a port given explicitly must be free). The
scheduler, triggerer and Celery workers run without their log servers (which would bind every
interface on fixed ports 8793/8794): on one host the api-server reads task logs from the shared
log folder. Ready is printed only when every component runs and reports healthy, and the
Models view answers.

The scheduler starts what is due: after `make demo`, the retrain its drift and decay events queued
for mlops_retrain, which deploys to the local target (``mlflow models serve`` processes). On
shutdown, after Airflow's processes, every local scoring server recorded under
``MLOPS_HOME/serving`` is stopped too (they run in their own sessions to outlive the task that
started them); their records stay, so the Models view shows them as not running.

The metadata DB and executor follow the usual Airflow settings: with
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` pointing at PostgreSQL and
``AIRFLOW__CORE__EXECUTOR=CeleryExecutor`` (broker and result backend in
``AIRFLOW__CELERY__*``), ``--celery-workers N`` starts N Celery workers beside the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import local_airflow

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def _wait_healthy(port: int, procs: dict[str, subprocess.Popen], timeout: float) -> dict:
    """Until the api-server answers and reports the scheduler, dag-processor and triggerer healthy."""
    deadline = time.time() + timeout
    last: object = None
    while time.time() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode} while starting; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as resp:
                health = json.load(resp)
            last = health
            if all((health.get(k) or {}).get("status") == "healthy"
                   for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                return health
        except OSError as err:
            last = err
        time.sleep(2)
    raise SystemExit(f"Airflow did not become healthy within {timeout:.0f}s (last answer: {last})")


def _wait_url(url: str, procs: dict[str, subprocess.Popen], timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode} while starting; see its log")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def _port(explicit: int | None, preferred: int, what: str) -> int:
    """An explicit port must be free (another Airflow there would answer our health checks); the
    default is used when free, else a free port."""
    if explicit is not None:
        deadline = time.monotonic() + 30  # a server of ours stopped a moment ago may still be exiting
        while not local_airflow.port_free(explicit) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not local_airflow.port_free(explicit):
            raise SystemExit(f"{what} port {explicit} on 127.0.0.1 is in use: choose another (--port/--mlflow-port, "
                             "MLOPS_UI_PORT/MLOPS_MLFLOW_UI_PORT) or leave it unset to get a free one")
        return explicit
    port = local_airflow.free_port(preferred)
    if port != preferred:
        print(f"note: port {preferred} is in use; the {what} uses {port}", flush=True)
    return port


def _env_port(name: str) -> int | None:
    return int(os.environ[name]) if os.environ.get(name) else None


def _models_view_answers(port: int, procs: dict[str, subprocess.Popen], timeout: float) -> None:
    """The plugin is loaded and sends a browser without login to the login page. This first
    request also builds the view and warms MLflow up in the api-server, before anyone clicks."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    deadline = time.time() + timeout
    status: object = None
    while time.time() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode} while starting; see its log")
        try:
            status = opener.open(f"http://127.0.0.1:{port}/mlops/models", timeout=30).status
        except urllib.error.HTTPError as err:
            status = err.code
            if 300 <= err.code < 400:
                return
        except OSError as err:
            status = err
        time.sleep(1)
    raise SystemExit(f"the Models view (/mlops/models) did not redirect to the login page within {timeout:.0f}s "
                     f"(last answer: {status}): is the mlops_models plugin loaded? see the api-server log")


def stop_local_servers(home: Path) -> list[str]:
    """Stop every running local scoring server recorded under ``home/serving`` (the local deploy
    target's state files); returns ``<model> v<version>`` of each one stopped."""
    from airflow_mlops_provider.core.local_serving import is_running, locked_state, stop_server

    stopped = []
    for path in sorted((home / "serving").glob("*.json")):
        try:
            with locked_state(path, path.stem) as state:
                for server in state.servers():
                    if is_running(server) and stop_server(server):
                        stopped.append(f"{path.stem} v{server.version}")
        except Exception as err:  # noqa: BLE001 - the other servers are still stopped; this one is named
            print(f"could not stop the local servers in {path}: {err}", file=sys.stderr, flush=True)
    return stopped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=_env_port("MLOPS_UI_PORT"),
                        help="api-server port (default 8080, or a free one when 8080 is taken)")
    parser.add_argument("--mlflow-port", type=int, default=_env_port("MLOPS_MLFLOW_UI_PORT"),
                        help="MLflow UI port (default 5000, or a free one when 5000 is taken)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not start the MLflow UI")
    parser.add_argument("--celery-workers", type=int, default=0, help="Celery workers to start (CeleryExecutor)")
    parser.add_argument("--ready-timeout", type=float, default=300)
    args = parser.parse_args(argv)
    args.port = _port(args.port, 8080, "Airflow api-server")
    if not args.no_mlflow:
        args.mlflow_port = _port(args.mlflow_port, 5000, "MLflow UI")

    home = local_airflow.home_dir()
    local_airflow.write_config(home, port=args.port)
    mlflow_url = f"http://127.0.0.1:{args.mlflow_port}"
    extra = {} if args.no_mlflow else {"MLOPS_MLFLOW_UI_URL": mlflow_url}
    env = local_airflow.environment(home, **extra)
    if not (home / "mlflow").exists() and not os.environ.get("AIRFLOW_CONN_MLFLOW_DEFAULT"):
        print(f"note: {home} holds no MLflow store yet; run `make demo` first to see runs and models", flush=True)
    local_airflow.prepare(env)

    logs = home / "logs" / "ui"
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, cmd: list[str], proc_env: dict[str, str]) -> None:
        out = open(logs / f"{name}.log", "ab")
        procs[name] = subprocess.Popen(cmd, env=proc_env, stdout=out, stderr=subprocess.STDOUT, cwd=home)

    done: list[bool] = []

    def shutdown() -> None:
        """Airflow's processes first (no task starts a server after this), then the scoring servers."""
        if done:
            return
        done.append(True)
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.time() + 30
        for proc in procs.values():
            try:
                proc.wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        stopped = stop_local_servers(home)
        if stopped:
            print(f"stopped local scoring servers: {', '.join(stopped)}", flush=True)

    def stop(*_: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one shutdown, even when the whole group gets the signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        shutdown()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    airflow = str(local_airflow.BIN / "airflow")
    try:
        for component in COMPONENTS:
            cmd = [airflow, component]
            if component == "api-server":
                cmd += ["--host", "127.0.0.1", "--port", str(args.port)]
            elif component in ("scheduler", "triggerer"):
                cmd += ["--skip-serve-logs"]
            start(component, cmd, env)
            if component == "api-server":
                # Tasks reach Airflow through the api-server's execution API: a scheduler started
                # beside it would run what is due (the demo's queued retrain) into "connection
                # refused" while it still starts (minutes on a busy 2-core machine).
                _wait_url(f"http://127.0.0.1:{args.port}/api/v2/monitor/health", procs, args.ready_timeout)
        for i in range(1, args.celery_workers + 1):
            # Each worker on this host needs its own Celery node name; no log server (shared log folder).
            start(f"celery-worker-{i}", [airflow, "celery", "worker", "--celery-hostname", f"worker{i}@%h",
                                         "--concurrency", "2", "--skip-serve-logs"],
                  {**env, "MLOPS_CELERY_WORKER": f"worker{i}"})
        if not args.no_mlflow:
            from airflow_mlops_provider.core.settings import mlops_home

            os.environ["MLOPS_HOME"] = str(home)
            store = mlops_home()
            start("mlflow-ui", [str(local_airflow.BIN / "mlflow"), "ui", "--backend-store-uri",
                                store.mlflow_tracking_uri, "--host", "127.0.0.1", "--port", str(args.mlflow_port)],
                  {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        _wait_healthy(args.port, procs, args.ready_timeout)
        if not args.no_mlflow:
            _wait_url(f"{mlflow_url}/health", procs, args.ready_timeout)
        _models_view_answers(args.port, procs, args.ready_timeout)
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode} while starting; see {logs / (name + '.log')}")
        passwords = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE") or \
            Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        print(f"Airflow UI : http://127.0.0.1:{args.port}  (user admin; its password is in {passwords})", flush=True)
        print(f"Models view: http://127.0.0.1:{args.port}/mlops/models  (also 'Models' in the UI's navigation)", flush=True)
        if not args.no_mlflow:
            print(f"MLflow UI  : {mlflow_url}", flush=True)
        print(f"logs       : {logs}", flush=True)
        print("ready; Ctrl-C stops everything", flush=True)
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping (log: {logs / (name + '.log')})",
                          file=sys.stderr, flush=True)
                    stop()
            time.sleep(2)
    finally:
        shutdown()  # also after a failed start: nothing it started stays behind


if __name__ == "__main__":
    main()
