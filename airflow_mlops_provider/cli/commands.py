"""``init`` and ``doctor``: what a team needs after ``pip install airflow-mlops-provider``.

``init`` creates what Airflow does not create by itself: the 1-slot promotion pool (a task in a
pool that does not exist is never scheduled), the ``MLOPS_HOME`` folders and, on request, the
embedded DVC data repository; it checks allowed roots and prints the setting to give every
Airflow component. ``doctor`` runs every check and names the fix for each one that fails; it
exits non-zero when one failed. Each check is a function returning :class:`Check`, so the tests
call them one by one.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "info"
POOL_DESCRIPTION = "champion promotions, one at a time (mlops)"
#: The distributions whose versions ``doctor`` reports (absent ones are reported as such, with their extra).
INTEGRATIONS: dict[str, str] = {
    "apache-airflow": "",
    "airflow-mlops-provider": "",
    "mlflow": "mlflow",
    "great-expectations": "great-expectations",
    "evidently": "evidently",
    "dvc": "dvc",
    "apache-airflow-providers-amazon": "amazon",
    "s3fs": "s3",
    "aiobotocore": "s3",
    "sagemaker": "amazon",
    "apache-airflow-providers-cncf-kubernetes": "kubernetes",
    "apache-airflow-providers-openlineage": "openlineage",
    "prometheus-client": "monitoring",
    "fairlearn": "fairness",
}
#: The oldest s3fs that talks to S3 through aiobotocore (what Airflow's s3 filesystem needs).
MIN_S3FS = "2023.10.0"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN, FAIL or INFO
    detail: str
    fix: str = ""

    def render(self) -> str:
        line = f"[{self.status:>4}] {self.name}: {self.detail}"
        return line + (f"\n       fix: {self.fix}" if self.fix and self.status in (FAIL, WARN) else "")


def _pool_name(args: argparse.Namespace | None) -> str:
    from airflow_mlops_provider.pipelines.config import PROMOTION_POOL

    return getattr(args, "pool", None) or PROMOTION_POOL


def pool_fix(pool: str) -> str:
    return f"airflow-mlops init (or: airflow pools set {pool} 1 \"{POOL_DESCRIPTION}\")"


# -- checks ----------------------------------------------------------------------------------------
def check_home() -> Check:
    """MLOPS_HOME: where it is, why, that it exists, is writable and lies outside any installation."""
    import os

    from airflow_mlops_provider.core.settings import _in_installed_location, resolve_home

    root, why = resolve_home()
    root = root.expanduser().resolve()
    set_it = "set [mlops] home (AIRFLOW__MLOPS__HOME) or MLOPS_HOME to a folder every Airflow component shares"
    if _in_installed_location(root):
        return Check("MLOPS_HOME", FAIL, f"{root} ({why}) is inside an installation (site-packages / virtualenv)",
                     set_it)
    if not root.is_dir():
        return Check("MLOPS_HOME", FAIL, f"{root} ({why}) does not exist", f"airflow-mlops init, or {set_it}")
    if not os.access(root, os.W_OK | os.X_OK):
        return Check("MLOPS_HOME", FAIL, f"{root} ({why}) is not writable by this user", set_it)
    return Check("MLOPS_HOME", OK, f"{root} ({why})")


def check_allowed_roots() -> Check:
    from airflow_mlops_provider.exceptions import PathNotAllowedError
    from airflow_mlops_provider.paths import allowed_roots

    try:
        roots = allowed_roots()
    except PathNotAllowedError as err:
        return Check("allowed roots", FAIL, str(err),
                     "fix [mlops] allowed_roots (AIRFLOW__MLOPS__ALLOWED_ROOTS / MLOPS_ALLOWED_ROOTS): absolute "
                     "folders or scheme://bucket/prefix URIs, comma-separated")
    return Check("allowed roots", OK, ", ".join(str(r) for r in roots)
                 + ("" if len(roots) > 1 else " (only MLOPS_HOME; add more with [mlops] allowed_roots)"))


def check_pool(pool: str) -> Check:
    try:
        from airflow.models.pool import Pool

        found = Pool.get_pool(pool)
    except Exception as err:  # noqa: BLE001 - a doctor reports, it does not crash
        return Check("promotion pool", FAIL, f"cannot read pools from the Airflow metadata DB: "
                     f"{str(err).splitlines()[0][:300]}", "airflow db migrate, then " + pool_fix(pool))
    if found is None:
        return Check("promotion pool", FAIL, f"pool {pool!r} does not exist: every promote task would wait "
                     "in 'scheduled' forever", pool_fix(pool))
    if found.slots != 1:
        return Check("promotion pool", WARN, f"pool {pool!r} has {found.slots} slots: promotions may run "
                     "concurrently across hosts", f"airflow pools set {pool} 1 \"{POOL_DESCRIPTION}\"")
    return Check("promotion pool", OK, f"{pool!r} (1 slot)")


def check_provider() -> Check:
    from airflow.providers_manager import ProvidersManager

    info = ProvidersManager().providers.get("airflow-mlops-provider")
    if info is None:
        return Check("provider", FAIL, "Airflow does not list airflow-mlops-provider",
                     "pip install airflow-mlops-provider into the same environment as apache-airflow")
    return Check("provider", OK, f"airflow-mlops-provider {info.version} registered")


def check_plugin() -> Check:
    from airflow import plugins_manager

    from airflow_mlops_provider.ui.plugin import PLUGIN_NAME

    plugins_manager.ensure_plugins_loaded()
    loaded = [p for p in plugins_manager.get_plugin_info() if p.get("name") == PLUGIN_NAME]
    errors = {k: v for k, v in plugins_manager.get_import_errors().items() if PLUGIN_NAME in f"{k} {v}"
              or "airflow_mlops_provider" in f"{k} {v}"}
    fix = ("pip install airflow-mlops-provider in the api-server's environment; remove any copied "
           "mlops_models.py from [core] plugins_folder; see `airflow plugins`")
    if errors:
        return Check("Models view plugin", FAIL, "; ".join(f"{k}: {v}" for k, v in errors.items())[:400], fix)
    if not loaded:
        return Check("Models view plugin", FAIL, f"plugin {PLUGIN_NAME!r} is not loaded", fix)
    return Check("Models view plugin", OK, f"{PLUGIN_NAME!r} loaded from {loaded[0].get('source')}")


def check_versions() -> Check:
    found, missing = [], []
    for dist, extra in INTEGRATIONS.items():
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            missing.append(f"{dist} ([{extra}])" if extra else dist)
    detail = ", ".join(found) + (f"; not installed: {', '.join(missing)}" if missing else "")
    return Check("versions", INFO, detail)


def _version_tuple(version: str) -> tuple[int, ...]:
    from packaging.version import Version

    return Version(version).release


def check_object_store(conn_id: str | None) -> list[Check]:
    """s3fs/aiobotocore present and recent when S3 is in use; every object-store allowed root listed."""
    from airflow_mlops_provider.paths import allowed_roots

    try:
        uri_roots = [r for r in allowed_roots() if r.scheme]
    except Exception:  # noqa: BLE001 - reported by check_allowed_roots
        uri_roots = []
    checks: list[Check] = []
    wants_s3 = any(r.scheme in ("s3", "s3a", "s3n") for r in uri_roots)
    try:
        s3fs_version = metadata.version("s3fs")
        metadata.version("aiobotocore")
        recent = _version_tuple(s3fs_version) >= _version_tuple(MIN_S3FS)
        problem = None if recent else f"s3fs {s3fs_version} is older than {MIN_S3FS} (no aiobotocore support)"
    except metadata.PackageNotFoundError as err:
        problem = f"{err.args[0] if err.args else 's3fs'} is not installed"
    if problem:
        checks.append(Check("S3 object storage", FAIL if wants_s3 else WARN,
                            f"{problem}: s3:// paths through ObjectStoragePath cannot work",
                            "pip install 'airflow-mlops-provider[s3]'"))
    for root in uri_roots:
        uri = str(root)
        if problem and root.scheme in ("s3", "s3a", "s3n"):
            continue  # cannot work before the [s3] extra is installed: said above
        try:
            from airflow.sdk import ObjectStoragePath

            path = ObjectStoragePath(uri, conn_id=conn_id)
            exists = path.exists()
        except Exception as err:  # noqa: BLE001 - reported with the connection to fix
            checks.append(Check(f"object store {uri}", FAIL, f"not reachable: {str(err).splitlines()[0][:300]}",
                                (f"check the connection {conn_id!r} (credentials, endpoint_url)" if conn_id else
                                 "pass --storage-conn-id (the conn_id your tasks use) or fix the environment's "
                                 "credentials") + ", and the bucket"))
            continue
        checks.append(Check(f"object store {uri}", OK if exists else WARN,
                            "reachable" + ("" if exists else ", the prefix holds nothing yet"),
                            "" if exists else "create the bucket / prefix or fix [mlops] allowed_roots"))
    return checks


def _service_check(name: str, extra: str, probe: Callable[[], tuple[bool, str]], conn_fix: str) -> Check:
    from airflow_mlops_provider.exceptions import MissingDependencyError

    try:
        ok, message = probe()
    except (MissingDependencyError, ImportError) as err:
        return Check(name, FAIL, str(err).splitlines()[0][:300], f"pip install 'airflow-mlops-provider[{extra}]'")
    except Exception as err:  # noqa: BLE001 - a doctor reports, it does not crash
        ok, message = False, str(err).splitlines()[0][:300]
    return Check(name, OK, message) if ok else Check(name, FAIL, message, conn_fix)


def check_mlflow(conn_id: str) -> Check:
    def probe() -> tuple[bool, str]:
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=conn_id).test_connection()

    return _service_check("MLflow", "mlflow", probe, f"check the connection {conn_id!r} (Tracking URI, "
                          "credentials), or remove it to use the embedded store under MLOPS_HOME")


def check_dvc(conn_id: str) -> Check:
    def probe() -> tuple[bool, str]:
        from airflow_mlops_provider.core.optional import require
        from airflow_mlops_provider.hooks.dvc import DvcHook

        require("dvc")
        return DvcHook(dvc_conn_id=conn_id).test_connection()

    return _service_check("DVC", "dvc", probe, f"define the connection {conn_id!r} (your data registry's git "
                          "URL), or create the embedded repo under MLOPS_HOME: airflow-mlops init --data-repo")


def doctor_checks(args: argparse.Namespace) -> Iterable[Check]:
    pool = _pool_name(args)
    steps: list[Callable[[], Check | list[Check]]] = [
        check_versions, check_provider, check_home, check_allowed_roots, lambda: check_pool(pool), check_plugin,
        lambda: check_mlflow(args.mlflow_conn_id), lambda: check_dvc(args.dvc_conn_id),
        lambda: check_object_store(args.storage_conn_id),
    ]
    for step in steps:
        result = step()
        yield from (result if isinstance(result, list) else [result])


# -- commands --------------------------------------------------------------------------------------
def doctor_command(args: argparse.Namespace) -> int:
    failed = 0
    for check in doctor_checks(args):
        print(check.render(), flush=True)
        failed += check.status == FAIL
    print(f"\n{failed} check(s) failed." if failed else "\nAll checks passed.")
    return 1 if failed else 0


def ensure_pool(pool: str) -> str:
    """Create the 1-slot pool (or set an existing one back to 1 slot); returns what was done."""
    from airflow.models.pool import Pool

    existing = Pool.get_pool(pool)
    if existing is not None and existing.slots == 1:
        return f"pool {pool!r} exists (1 slot)"
    Pool.create_or_update_pool(pool, slots=1, description=POOL_DESCRIPTION, include_deferred=False)
    return f"pool {pool!r} {'set to 1 slot' if existing is not None else 'created (1 slot)'}"


def init_command(args: argparse.Namespace) -> int:
    from airflow_mlops_provider.core import paths as core_paths
    from airflow_mlops_provider.core.settings import mlops_home, resolve_home
    from airflow_mlops_provider.exceptions import PathNotAllowedError
    from airflow_mlops_provider.paths import configured_roots

    pool = _pool_name(args)
    _, why = resolve_home()
    home = mlops_home().ensure()
    (home.root / "state").mkdir(exist_ok=True)
    print(f"MLOPS_HOME: {home.root} ({why}); folders created")
    if getattr(args, "data_repo", False):
        from airflow_mlops_provider.hooks.dvc import init_local_repo

        init_local_repo(home.dvc_repo, home.dvc_remote)
        print(f"DVC data repository: {home.dvc_repo} (remote {home.dvc_remote})")
    try:
        print(ensure_pool(pool))
    except Exception as err:  # noqa: BLE001 - say what to run first
        print(f"cannot create the pool {pool!r}: {str(err).splitlines()[0][:300]}\n"
              "fix: airflow db migrate (the metadata DB must exist), then run init again", file=sys.stderr)
        return 1
    requested = getattr(args, "allowed_roots", None)
    try:
        roots = core_paths.allowed_roots(requested if requested is not None else configured_roots())
    except PathNotAllowedError as err:
        print(f"allowed roots: {err}", file=sys.stderr)
        return 1
    print("allowed roots: " + ", ".join(str(r) for r in roots))
    if requested is not None:
        value = ",".join(str(r) for r in roots[1:])
        print("give every Airflow component (scheduler, workers, triggerer, dag-processor, api-server) the "
              f"same setting:\n  [mlops]\n  allowed_roots = {value}\nor\n  AIRFLOW__MLOPS__ALLOWED_ROOTS='{value}'")
    return 0


def describe(answer: dict[str, Any]) -> str:
    """One paragraph a person reads: what was live, since when, why, and a warning if MLflow disagrees."""
    live = answer["live"]
    subject = f"@{live['alias']}" if live.get("alias") else f"deploy target {live['target']!r}"
    lines = []
    if not live["known"]:
        lines.append(f"{live['model']} {subject} at {live['at']}: nothing recorded in the ledger before then")
    else:
        why = live["why"] or {}
        until = f" until {live['until']}" if live.get("until") else " (still)"
        lines.append(f"{live['model']} {subject} at {live['at']}: v{live['version']} since {live['since']}{until}")
        lines.append(f"  why: {why.get('event')} by {why.get('who') or 'unknown (MLflow records no author)'}"
                     + (f": {why['reason']}" if why.get("reason") else ""))
        decision = why.get("decision")
        if decision:
            lines.append(f"  gate: {decision.get('verdict')} against champion v{decision.get('champion_version')}"
                         f" — {'; '.join(map(str, decision.get('reasons') or [])) or 'no reasons recorded'}")
    if live.get("warning"):
        lines.append(f"  WARNING: {live['warning']}")
    lines.append(f"  timeline ({len(answer['timeline'])} move(s)):")
    for move in answer["timeline"]:
        lines.append(f"    {move['at']}  v{move['from_version'] or '-'} -> v{move['version'] or '-'}  {move['event']}"
                     f"  {move['who'] or ''}".rstrip())
    return "\n".join(lines)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send file descriptor 1 to stderr meanwhile (loggers hold the stdout stream, not its name)."""
    import os

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def history_command(args: argparse.Namespace) -> int:
    """``history``: the same answer as the Models view's ``/mlops/api/history`` route."""
    import json

    from airflow_mlops_provider import history
    from airflow_mlops_provider.core.history import HistoryError
    from airflow_mlops_provider.core.settings import mlops_home
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    # Logs (Airflow's and MLflow's) go to stderr: stdout carries the answer only, JSON that parses.
    with _stdout_to_stderr():
        hook = MlflowHook(mlflow_conn_id=args.mlflow_conn_id)
        try:
            if args.compare:
                answer = history.compare_versions(hook.client, mlops_home().ledger_path, args.model, *args.compare)
            else:
                answer = history.history(hook.client, mlops_home().ledger_path, args.model, at=args.at,
                                         alias=args.alias, target=args.target)
        except HistoryError as err:
            print(f"history: {err}", file=sys.stderr)
            return 2
    if args.json or args.compare:
        print(json.dumps(answer, indent=2, sort_keys=True, default=str))
    else:
        print(describe(answer))
    return 0


def webhook_command(args: argparse.Namespace) -> int:
    """``webhook``: create or update the MLflow webhook of the alias events, signed with
    ``[mlops] mlflow_webhook_secret`` (:mod:`airflow_mlops_provider.ui.webhooks`)."""
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.ui import webhooks

    with _stdout_to_stderr():
        hook = MlflowHook(mlflow_conn_id=args.mlflow_conn_id)
        if not hook.tracking_uri.startswith(("http://", "https://")):
            print(f"webhook: {args.mlflow_conn_id} points at {hook.tracking_uri!r}, not an MLflow tracking server: "
                  "only a server sends webhooks (the audit DAG's reconcile step covers the embedded store)",
                  file=sys.stderr)
            return 2
        try:
            done = webhooks.register(hook.client, args.url, webhooks.configured_secret())
        except ValueError as err:
            print(f"webhook: {err}", file=sys.stderr)
            return 2
    print(f"{done['action']} MLflow webhook {webhooks.WEBHOOK_NAME} ({done['webhook_id']}): "
          f"{', '.join(done['events'])} -> {done['url']}")
    return 0


def _exit(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> Any:
    code = command(args)
    if code:
        sys.exit(code)


def init_and_exit(args: argparse.Namespace) -> None:
    _exit(init_command, args)


def doctor_and_exit(args: argparse.Namespace) -> None:
    _exit(doctor_command, args)


def history_and_exit(args: argparse.Namespace) -> None:
    _exit(history_command, args)


def webhook_and_exit(args: argparse.Namespace) -> None:
    _exit(webhook_command, args)
