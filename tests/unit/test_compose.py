"""docker-compose.yaml is consistent, checked without a container engine (none runs here).

What breaks a compose stack only at ``docker compose up``: an unpinned image, a dependency on a
service that does not exist, a URL naming a host or port nothing listens on, credentials that
differ between the server and its clients, a bucket nobody creates, Airflow services that do not
share one environment or do not mount dags/ and plugins/, a connection the DAGs use that is
missing or of the wrong type, and an init that does not create the promotion pool.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from airflow_mlops_provider.get_provider_info import get_provider_info
from airflow_mlops_provider.hooks.dvc import DvcHook
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.hooks.prometheus import PushgatewayHook
from airflow_mlops_provider.pipelines.config import PROMOTION_POOL

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
AIRFLOW_DOCKERFILE = "docker/Dockerfile"
AIRFLOW_SERVICES = {  # service -> the Airflow command it runs (None: the init's own script)
    "airflow-init": None,
    "airflow-api-server": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}
# What each service listens on inside the compose network (cross-checked below where the file
# says it: MinIO's --address, MLflow's --port, the api-server's published port).
LISTENS = {"postgres": {5432}, "redis": {6379}, "minio": {9000, 9001}, "mlflow": {5000},
           "airflow-api-server": {8080}, "airflow-scheduler": {8974}, "pushgateway": {9091},
           "prometheus": {9090}, "grafana": {3000}}
DEFAULT_PORTS = {"http": 80, "https": 443, "redis": 6379, "postgresql": 5432}
CONNECTIONS = {  # connection id the provider / DAGs use by default -> the conn type it must have
    MlflowHook.default_conn_name: MlflowHook.conn_type,
    DvcHook.default_conn_name: DvcHook.conn_type,
    "aws_default": "aws",
    PushgatewayHook.default_conn_name: PushgatewayHook.conn_type,
}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def expand(value: object) -> str:
    """``${VAR:-default}`` -> default (what compose does without an .env file); ``$$`` -> ``$``."""
    text = str(value)
    missing = [m.group(1) for m in INTERPOLATION.finditer(text) if m.group(2) is None]
    assert not missing, f"${{{missing[0]}}} has no default: the stack would not start without an .env file"
    return INTERPOLATION.sub(lambda m: m.group(2), text.replace("$$", "\0")).replace("\0", "$")


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: expand(value) for key, value in env.items()}


def command_text(service: dict) -> str:
    command = service.get("command") or []
    return expand(command if isinstance(command, str) else " ".join(str(c) for c in command))


def mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, short or long syntax."""
    found = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            found.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            source, target = str(entry).split(":")[:2]
            found.append((source, target))
    return found


def image_is_pinned(ref: str) -> bool:
    if "@sha256:" in ref:
        return True
    name = ref.rsplit("/", 1)[-1]
    return ":" in name and name.rsplit(":", 1)[1] not in ("", "latest")


def locked_version(package: str) -> str:
    lock = (REPO / "uv.lock").read_text()
    versions = set(re.findall(rf'^name = "{re.escape(package)}"\nversion = "([^"]+)"', lock, re.M))
    assert len(versions) == 1, f"uv.lock pins {package} at {sorted(versions)}"
    return versions.pop()


def base_images(dockerfile: Path) -> list[str]:
    """The images a Dockerfile pulls (FROM and COPY --from), without its build-stage names;
    the last FROM (the final stage's base) comes last."""
    text = dockerfile.read_text()
    stages, froms = set(), []
    for match in re.finditer(r"^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I):
        if match.group(1) not in stages:
            froms.append(match.group(1))
        if match.group(2):
            stages.add(match.group(2))
    copied = [ref for ref in re.findall(r"^COPY\s+.*--from=(\S+)", text, re.M | re.I) if ref not in stages]
    return [*copied, *froms]


def need(services: dict[str, dict], name: str) -> dict:
    assert name in services, f"service {name!r} is missing from docker-compose.yaml"
    return services[name]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def airflow_env(compose) -> dict[str, str]:
    return {key: expand(value) for key, value in compose["x-airflow-env"].items()}


@pytest.fixture(scope="module")
def connections(airflow_env) -> dict[str, dict]:
    conns = {}
    for conn_id in CONNECTIONS:
        key = f"AIRFLOW_CONN_{conn_id.upper()}"
        assert key in airflow_env, f"connection {conn_id!r} is not set: no {key} in x-airflow-env"
        try:
            conns[conn_id] = json.loads(airflow_env[key])
        except json.JSONDecodeError as err:
            pytest.fail(f"{key} is not JSON: {err}")
    return conns


# -- images ----------------------------------------------------------------------------------------
def test_every_image_is_pinned_and_every_build_has_a_pinned_dockerfile(services):
    for name, service in services.items():
        image, build = service.get("image"), service.get("build")
        assert image or build, f"service {name!r} has neither image nor build"
        if image:
            assert image_is_pinned(image), f"service {name!r}: image {image!r} is not pinned to a version tag"
        if build:
            build = {"context": build} if isinstance(build, str) else build
            dockerfile = REPO / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"service {name!r}: build.dockerfile {dockerfile} does not exist"
            refs = base_images(dockerfile)
            assert refs, f"service {name!r}: {dockerfile.name} has no FROM line"
            for ref in refs:
                assert image_is_pinned(ref), f"service {name!r}: {dockerfile.name} uses unpinned image {ref!r}"


def test_the_airflow_image_is_the_locked_airflow_with_this_package_and_its_extras(services):
    for name in AIRFLOW_SERVICES:
        assert name in services, f"Airflow service {name!r} is missing"
        build = services[name].get("build") or {}
        assert build.get("dockerfile") == AIRFLOW_DOCKERFILE, f"service {name!r}: build.dockerfile is not {AIRFLOW_DOCKERFILE}"
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert len(images) == 1, f"the Airflow services use different images: {sorted(images)}"
    others = [n for n, s in services.items() if n not in AIRFLOW_SERVICES and s.get("image") in images]
    assert not others, f"services {others} run the Airflow image but are not checked as Airflow services"

    dockerfile = REPO / AIRFLOW_DOCKERFILE
    text = dockerfile.read_text()
    airflow = locked_version("apache-airflow")
    assert f"apache/airflow:{airflow}-python3." in base_images(dockerfile)[-1], \
        f"{AIRFLOW_DOCKERFILE}: the final FROM is not apache/airflow:{airflow} (the version uv.lock pins)"
    for source in ("pyproject.toml", "uv.lock", "airflow_mlops_provider"):
        assert re.search(rf"^COPY\s.*\b{re.escape(source)}\b", text, re.M), f"{AIRFLOW_DOCKERFILE} does not COPY {source}"
    assert re.search(r"pip install\b.*\[all\]", text), f"{AIRFLOW_DOCKERFILE} does not pip install the package with [all]"
    assert re.search(r"uv export\b.*--frozen", text) and "-c /tmp/constraints.txt" in text, \
        f"{AIRFLOW_DOCKERFILE} does not install within the versions uv.lock pins"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "*" in ignored and "!airflow_mlops_provider" in ignored, ".dockerignore must keep .venv and .mlops out of the build context"


def test_the_mlflow_server_runs_the_locked_mlflow_version(services):
    build = need(services, "mlflow")["build"]
    dockerfile = REPO / build.get("context", ".") / build["dockerfile"]
    mlflow = locked_version("mlflow")
    assert base_images(dockerfile)[-1] == f"ghcr.io/mlflow/mlflow:v{mlflow}", \
        f"{dockerfile.name}: the server is not MLflow {mlflow}, the client version uv.lock pins"
    text = dockerfile.read_text()
    assert "psycopg2" in text and "boto3" in text, f"{dockerfile.name}: the PostgreSQL store needs psycopg2, the S3 artifacts boto3"


# -- wiring ----------------------------------------------------------------------------------------
def test_dependencies_name_existing_services_and_can_be_met(services):
    graph = {}
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        deps = deps if isinstance(deps, dict) else {d: {} for d in deps}
        graph[name] = list(deps)
        for dep, spec in deps.items():
            assert dep in services, f"service {name!r}: depends_on names unknown service {dep!r}"
            condition = (spec or {}).get("condition", "service_started")
            assert condition in ("service_started", "service_healthy", "service_completed_successfully"), \
                f"service {name!r}: depends_on.{dep}.condition {condition!r} is not a compose condition"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"service {name!r} waits for {dep!r} to be healthy; {dep!r} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart", "no") == "no", \
                    f"service {name!r} waits for {dep!r} to complete; {dep!r} restarts, so it is not one-shot"

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"depends_on cycle: {' -> '.join((*path, node))}"
        for dep in graph.get(node, []):
            visit(dep, (*path, node))

    for name in services:
        visit(name, ())


def test_named_volumes_are_declared_and_bind_mounts_exist(compose, services):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for source, _target in mounts(service):
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"service {name!r} bind-mounts {source!r}, which does not exist"
            else:
                assert source in declared, f"service {name!r} mounts volume {source!r}, which is not declared under volumes:"
                used.add(source)
    assert not declared - used, f"volumes {sorted(declared - used)} are declared but no service mounts them"


def test_airflow_services_share_one_environment_and_mount_dags_and_plugins(services, airflow_env):
    for name, command in AIRFLOW_SERVICES.items():
        service = services[name]
        env = env_of(service)
        differ = sorted(k for k, v in airflow_env.items() if env.get(k) != v)
        assert not differ, f"service {name!r}: environment differs from x-airflow-env in {differ}"
        targets = dict((t, s) for s, t in mounts(service))
        for folder in ("dags", "plugins"):
            target = airflow_env[f"AIRFLOW__CORE__{folder.upper()}_FOLDER"]
            assert target == f"/opt/airflow/{folder}", f"x-airflow-env: AIRFLOW__CORE__{folder.upper()}_FOLDER is {target!r}"
            assert targets.get(target) == f"./{folder}", f"service {name!r} does not mount ./{folder} at {target}"
        assert airflow_env["MLOPS_HOME"] in targets, \
            f"service {name!r} does not mount a volume at MLOPS_HOME ({airflow_env['MLOPS_HOME']}), shared by all workers"
        if command is not None:
            assert service.get("command") == command, f"service {name!r}: command is {service.get('command')!r}, not {command!r}"
    assert {t for s, t in mounts(need(services, "airflow-worker"))} == {t for s, t in mounts(need(services, "airflow-api-server"))}
    assert airflow_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", "x-airflow-env: the executor is not CeleryExecutor"


def test_the_listening_ports_are_what_the_services_say(services):
    assert ":9000" in command_text(need(services, "minio")), "minio: the S3 API is not on --address :9000"
    assert "--port=5000" in command_text(need(services, "mlflow")), "mlflow: the server is not started with --port=5000"
    for name, service in services.items():
        for mapping in service.get("ports") or []:
            container_port = int(str(mapping).split(":")[-1].split("/")[0])
            assert container_port in LISTENS.get(name, set()), \
                f"service {name!r}: ports publishes {container_port}, but {name} listens on {sorted(LISTENS.get(name, set()))}"


def _urls(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"',}]+", text)


def test_every_url_names_a_service_and_a_port_it_listens_on(services, connections):
    sources: list[tuple[str, str]] = []
    for name, service in services.items():
        sources += [(f"{name}: environment.{key}", value) for key, value in env_of(service).items()]
        sources.append((f"{name}: command", command_text(service)))
    checked = set()
    for where, text in sources:
        for url in _urls(text):
            parts = urlsplit(url)
            schemes = parts.scheme.split("+")  # db+postgresql, postgresql+psycopg2
            if "s3" in schemes or "file" in schemes or parts.hostname in (None, "localhost", "127.0.0.1"):
                continue
            host = parts.hostname
            port = parts.port or next((DEFAULT_PORTS[s] for s in schemes if s in DEFAULT_PORTS), None)
            assert host in services, f"{where} names host {host!r} ({url}), which is no service"
            assert port in LISTENS.get(host, set()), \
                f"{where} uses {host}:{port}, but {host} listens on {sorted(LISTENS.get(host, set()))}"
            checked.add((host, port))
    # The wiring the stack cannot run without: DB, broker, result backend, MLflow, S3, Execution API.
    expected = {("postgres", 5432), ("redis", 6379), ("mlflow", 5000), ("minio", 9000), ("airflow-api-server", 8080)}
    assert expected <= checked, f"no URL reaches {sorted(expected - checked)}"


def test_the_databases_broker_and_result_backend_line_up(services, airflow_env):
    postgres = env_of(need(services, "postgres"))
    sql = urlsplit(airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert sql.scheme.startswith("postgresql") and sql.hostname == "postgres", "SQL_ALCHEMY_CONN is not the postgres service"
    assert (sql.username, sql.password, sql.path.strip("/")) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"]), \
        "SQL_ALCHEMY_CONN's user/password/database differ from the postgres service's POSTGRES_USER/PASSWORD/DB"
    backend = airflow_env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert backend.startswith("db+postgresql://"), f"RESULT_BACKEND {backend!r} is not db+postgresql://"
    assert urlsplit(backend).netloc == sql.netloc, "RESULT_BACKEND and SQL_ALCHEMY_CONN name different servers or users"
    assert airflow_env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), "BROKER_URL is not the redis service"

    init_scripts = [REPO / s for s, t in mounts(need(services, "postgres")) if t.startswith("/docker-entrypoint-initdb.d/")]
    assert init_scripts, "postgres: no init script creates MLflow's database"
    init = " ".join(p.read_text() for p in init_scripts)
    store = re.search(r"--backend-store-uri[= ](\S+)", command_text(need(services, "mlflow")))
    assert store, "mlflow: no --backend-store-uri"
    store_url = urlsplit(store.group(1))
    assert store_url.scheme.startswith("postgresql") and store_url.hostname == "postgres", \
        f"mlflow: backend store {store.group(1)!r} is not the postgres service"
    database = store_url.path.strip("/")
    assert re.search(rf"CREATE DATABASE {database}\b", init), f"postgres: the init script does not create database {database!r}"
    assert re.search(rf"CREATE ROLE {store_url.username}\b", init) or store_url.username == postgres["POSTGRES_USER"], \
        f"postgres: the init script does not create MLflow's role {store_url.username!r}"
    if "MLFLOW_DB_PASSWORD" in init:
        assert store_url.password == postgres["MLFLOW_DB_PASSWORD"], \
            "mlflow: the backend store's password differs from postgres' MLFLOW_DB_PASSWORD"


def test_every_bucket_used_is_created_and_the_credentials_match(services, airflow_env, connections):
    created = set(re.findall(r"/([a-z0-9][a-z0-9.-]+)", command_text(need(services, "minio-init")).split("mc mb", 1)[-1]))
    used = {}
    for name, service in services.items():
        for where, text in [*((f"environment.{k}", v) for k, v in env_of(service).items()),
                            ("command", command_text(service))]:
            for url in re.findall(r"s3://[^\s\"',}]+", text):
                used.setdefault(urlsplit(url).netloc, f"{name}: {where}")
    assert used, "no s3:// location is used"
    for bucket, where in used.items():
        assert bucket in created, f"{where} uses bucket {bucket!r}, which minio-init does not create ({sorted(created)})"
    minio = env_of(need(services, "minio"))
    keys = (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    for conn_id in ("aws_default", "dvc_default"):
        assert (connections[conn_id].get("login"), connections[conn_id].get("password")) == keys, \
            f"{conn_id}: login/password differ from minio's MINIO_ROOT_USER/PASSWORD"
    mlflow = env_of(need(services, "mlflow"))
    assert (mlflow["AWS_ACCESS_KEY_ID"], mlflow["AWS_SECRET_ACCESS_KEY"]) == keys, \
        "mlflow: AWS_ACCESS_KEY_ID/SECRET differ from minio's MINIO_ROOT_USER/PASSWORD"
    assert mlflow["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000", "mlflow: MLFLOW_S3_ENDPOINT_URL is not MinIO"
    assert "--artifacts-destination=s3://" in command_text(need(services, "mlflow")), "mlflow: artifacts do not go to S3"


# -- connections, paths, pool ----------------------------------------------------------------------
def test_connections_have_the_providers_types_and_fields(connections, airflow_env, services):
    registered = {c["connection-type"] for c in get_provider_info()["connection-types"]}
    fields = {"conn_type", "host", "login", "password", "schema", "port", "extra", "description"}
    for conn_id, conn_type in CONNECTIONS.items():
        conn = connections[conn_id]
        assert conn.get("conn_type") == conn_type, f"{conn_id}: conn_type is {conn.get('conn_type')!r}, not {conn_type!r}"
        assert set(conn) <= fields, f"{conn_id}: unknown fields {sorted(set(conn) - fields)}"
        assert isinstance(conn.get("extra", {}), dict), f"{conn_id}: extra is not a JSON object"
    for conn_type in (MlflowHook.conn_type, DvcHook.conn_type, PushgatewayHook.conn_type):
        assert conn_type in registered, f"the provider does not register conn type {conn_type!r}"

    mlflow = connections["mlflow_default"]
    tracking = urlsplit(mlflow["host"])
    assert tracking.scheme == "http" and tracking.hostname == "mlflow", f"mlflow_default: host {mlflow['host']!r} is not the mlflow service"
    assert set(mlflow.get("extra", {})) <= {"registry_uri", "insecure_tls", "server_cert_path", "artifact_location"}, \
        f"mlflow_default: extras {sorted(mlflow.get('extra', {}))} are not read by MlflowHook"
    allowed = re.search(r"--allowed-hosts[= ](\S+)", command_text(need(services, "mlflow")))
    assert allowed and {tracking.hostname, tracking.netloc} <= set(allowed.group(1).split(",")), \
        f"mlflow: --allowed-hosts must admit {tracking.netloc} (MLflow >= 3.5 refuses other Host headers)"

    aws_extra = connections["aws_default"]["extra"]
    assert aws_extra.get("endpoint_url") == "http://minio:9000", "aws_default: extra.endpoint_url is not MinIO"

    dvc = connections["dvc_default"]
    extra = dvc.get("extra", {})
    assert set(extra) <= {"remote", "remote_config"}, f"dvc_default: extras {sorted(extra)} are not read by DvcHook"
    assert isinstance(extra.get("remote_config", {}), dict), "dvc_default: extra.remote_config must be a JSON object"
    if extra.get("remote"):
        assert "://" not in extra["remote"], f"dvc_default: extra.remote is a remote's name, not a URL ({extra['remote']!r})"
    if dvc["host"] == f"{airflow_env['MLOPS_HOME']}/data-repo":
        # The repo airflow-init creates (init_local_repo: branch main, only a local remote): the
        # connection must name the branch and define the remote it reads from completely.
        assert dvc.get("schema") == "main", "dvc_default: the init-created data repo's branch is main"
        assert urlsplit(extra["remote_config"].get("url", "")).scheme == "s3", \
            "dvc_default: extra.remote_config.url must define the S3 remote (the init-created repo has none)"
        assert extra["remote_config"].get("endpointurl") == "http://minio:9000", "dvc_default: the remote's endpointurl is not MinIO"
        assert "init_local_repo" in command_text(need(services, "airflow-init")), "airflow-init does not create the data repo"


def test_tasks_may_write_to_mlops_home_and_the_bucket(airflow_env, services):
    from airflow_mlops_provider.core.paths import _parse_root

    home = airflow_env["MLOPS_HOME"]
    assert home.startswith("/"), f"MLOPS_HOME {home!r} is not absolute"
    roots = [_parse_root(r) for r in airflow_env["AIRFLOW__MLOPS__ALLOWED_ROOTS"].split(",") if r.strip()]
    assert any(r.scheme == "s3" and r.location == "mlops" for r in roots), \
        "AIRFLOW__MLOPS__ALLOWED_ROOTS does not allow the mlops bucket"


def test_init_migrates_and_creates_the_promotion_pool(services):
    command = command_text(need(services, "airflow-init"))
    migrate = command.find("airflow db migrate")
    pool = re.search(rf"airflow pools set {re.escape(PROMOTION_POOL)} 1\b", command)
    assert migrate >= 0, "airflow-init does not run `airflow db migrate`"
    assert pool, f"airflow-init does not create the 1-slot pool {PROMOTION_POOL!r}"
    assert migrate < pool.start(), "airflow-init creates the pool before migrating the DB"


def test_every_secret_has_a_default_and_is_listed_in_the_header():
    text = COMPOSE.read_text()
    header = text.split("\nx-", 1)[0]
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    secrets = {m.group(1) for m in INTERPOLATION.finditer(body)
               if re.search(r"PASSWORD|SECRET|FERNET|_KEY$|TOKEN", m.group(1))}
    assert secrets, "no secret is interpolated"
    unlisted = sorted(s for s in secrets if s not in header)
    assert not unlisted, f"secrets {unlisted} are not listed in the file header"
    for var in secrets:
        assert re.search(rf"\$\{{{var}:-[^}}]+\}}", body), f"${{{var}}} has no demo default"


# -- monitoring ------------------------------------------------------------------------------------
def test_prometheus_scrapes_the_gateway_the_tasks_push_to_and_grafana_has_the_dashboard(services, connections):
    gateway = urlsplit(connections[PushgatewayHook.default_conn_name]["host"])
    config = yaml.safe_load((REPO / "docker" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "pushgateway"]
    assert job.get("honor_labels") is True, "prometheus: the pushed model/version/dag labels must be kept"
    assert [f"{gateway.hostname}:{gateway.port}"] == job["static_configs"][0]["targets"]
    mounts = " ".join(need(services, "prometheus")["volumes"])
    assert "./docker/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml" in mounts
    datasource = yaml.safe_load((REPO / "docker/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((REPO / "docker/grafana/provisioning/dashboards/mlops.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert "./docker/grafana/dashboards:/var/lib/grafana/dashboards:ro" in need(services, "grafana")["volumes"]
    dashboard = json.loads((REPO / "docker/grafana/dashboards/mlops.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    # Every metric the dashboard charts is one the provider pushes (names in the operators' code).
    pushed = set(re.findall(r'"([a-z_0-9]+)": ', " ".join(
        (REPO / "airflow_mlops_provider" / "operators" / f).read_text()
        for f in ("batch.py", "drift.py", "deploy.py", "registry.py", "performance.py"))))
    charted = set(re.findall(r"mlops_([a-z_0-9]+)\{", exprs))
    assert charted and charted <= pushed, f"the dashboard charts metrics nobody pushes: {sorted(charted - pushed)}"
