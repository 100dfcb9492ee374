"""docker-compose.yaml parses and is consistent (no container engine runs here to start it).

Checks what breaks a compose stack silently: an unpinned image, a dependency on a service that
does not exist, a URL naming a host or port no service listens on, Airflow services that do not
share one environment or do not mount dags/ and plugins/, connections the DAGs use missing or of
the wrong type, and an init that does not create the promotion pool.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from airflow_mlops_provider.hooks.dvc import DvcHook
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.pipelines.config import PROMOTION_POOL

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker")
# What each service listens on inside the compose network.
LISTENS = {"postgres": {5432}, "redis": {6379}, "minio": {9000, 9001}, "mlflow": {5000},
           "airflow-api-server": {8080}}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _expand(value: str) -> str:
    """``${VAR:-default}`` -> default, as compose does without an .env file."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _expand(str(v)) for k, v in env.items()}


def test_every_image_is_pinned_and_every_build_exists(compose):
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image or service.get("build"), f"service {name!r} has neither image nor build"
        if "build" in service:
            dockerfile = REPO / service["build"].get("context", ".") / service["build"]["dockerfile"]
            assert dockerfile.is_file(), f"service {name!r} builds from missing {dockerfile}"
            base = re.search(r"^FROM\s+(\S+)", dockerfile.read_text(), re.M).group(1)
            assert ":" in base and not base.endswith(":latest"), f"{dockerfile.name}: base image {base!r} not pinned"
        elif image:
            tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
            assert tag and tag != "latest", f"service {name!r}: image {image!r} is not pinned to a version"


def test_the_airflow_image_installs_this_package_with_its_extras():
    text = (REPO / "docker" / "Dockerfile").read_text()
    assert "apache/airflow:3." in text and '"/opt/mlops[all]"' in text


def test_dependencies_name_existing_services_with_valid_conditions(compose):
    services = compose["services"]
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        for dep, spec in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            assert dep in services, f"service {name!r} depends on unknown service {dep!r}"
            condition = (spec or {}).get("condition", "service_started")
            assert condition in ("service_started", "service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name!r} waits for {dep!r} to be healthy; it has no healthcheck"


def test_airflow_services_share_one_environment_and_mount_dags_and_plugins(compose):
    services = compose["services"]
    envs = [_env(services[name]) for name in AIRFLOW_SERVICES]
    shared = {k: v for k, v in envs[0].items() if k != "MLOPS_ADMIN_PASSWORD"}
    for name, env in zip(AIRFLOW_SERVICES, envs, strict=True):
        assert {k: v for k, v in env.items() if k != "MLOPS_ADMIN_PASSWORD"} == shared, f"{name!r} env differs"
        mounts = services[name].get("volumes") or []
        for folder in ("dags", "plugins"):
            assert f"./{folder}:/opt/airflow/{folder}" in mounts, f"{name!r} does not mount ./{folder}"
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags"
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/airflow/plugins"
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert services["airflow-worker"]["command"][:2] == ["celery", "worker"]
    for path in ("./dags", "./plugins"):
        assert (REPO / path).is_dir()


def test_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"service {name!r} mounts undeclared volume {source!r}"
            else:
                assert (REPO / source).exists(), f"service {name!r} mounts missing {source!r}"


def _urls(env: dict[str, str]) -> list[tuple[str, str]]:
    found = []
    for key, value in env.items():
        for url in re.findall(r"[a-z][a-z0-9+]*://[^\s\"',}]+", value):
            found.append((key, url))
    return found


def test_every_url_names_a_service_and_the_port_it_listens_on(compose):
    services = compose["services"]
    checked = 0
    for name, service in services.items():
        env = _env(service)
        command = service.get("command") or []
        texts = {**env, **{f"command[{i}]": _expand(str(c)) for i, c in enumerate(command)}}
        for key, url in _urls(texts):
            parts = urlsplit(url)
            if parts.scheme in ("s3", "file") or not parts.hostname:
                continue
            host = parts.hostname
            if host == "localhost":  # a service's own healthcheck-style self reference
                continue
            assert host in services, f"service {name!r}: {key} names host {host!r}, which is no service"
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
            assert port in LISTENS.get(host, set()), f"service {name!r}: {key} uses {host}:{port}, " \
                f"but {host} listens on {sorted(LISTENS.get(host, set()))}"
            checked += 1
    assert checked >= 8  # SQL_ALCHEMY_CONN, broker, result backend, MLflow, S3 endpoints, execution API ...


def test_connections_the_dags_use_are_set_with_the_providers_types(compose):
    from airflow_mlops_provider.get_provider_info import get_provider_info

    types = {c["connection-type"] for c in get_provider_info()["connection-types"]}
    env = _env(compose["services"]["airflow-scheduler"])
    conns = {}
    for conn_id in (MlflowHook.default_conn_name, DvcHook.default_conn_name, "aws_default"):
        key = f"AIRFLOW_CONN_{conn_id.upper()}"
        assert key in env, f"connection {conn_id!r} is not set ({key})"
        conns[conn_id] = json.loads(env[key])
    assert conns["mlflow_default"]["conn_type"] == "mlflow" and "mlflow" in types
    assert conns["dvc_default"]["conn_type"] == "dvc" and "dvc" in types
    assert conns["aws_default"]["conn_type"] == "aws"
    assert conns["aws_default"]["extra"]["endpoint_url"] == "http://minio:9000"
    # Tasks may write where the pipelines put data: MLOPS_HOME and the bucket's prefixes.
    assert env["MLOPS_HOME"] and "s3://mlops/" in env["AIRFLOW__MLOPS__ALLOWED_ROOTS"]


def test_init_migrates_and_creates_the_promotion_pool(compose):
    command = " ".join(compose["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in command
    assert f"airflow pools set {PROMOTION_POOL} 1" in command


def test_mlflow_server_stores_runs_in_postgres_and_artifacts_in_minio(compose):
    mlflow = compose["services"]["mlflow"]
    command = " ".join(_expand(str(c)) for c in mlflow["command"])
    assert "--backend-store-uri=postgresql://" in command and "@postgres:5432/mlflow" in command
    assert "--artifacts-destination=s3://mlflow/" in command
    assert _env(mlflow)["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    init_sql = (REPO / "docker" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE mlflow" in init_sql
    buckets = " ".join(compose["services"]["minio-init"]["command"])
    assert "local/mlops" in buckets and "local/mlflow" in buckets
