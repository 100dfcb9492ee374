"""MlflowHook: one cached ``MlflowClient`` built from an Airflow connection of type ``mlflow``.

Connection fields: ``host`` is the tracking URI (``http(s)://…``, ``sqlite:///…``,
``postgresql://…``, ``file:///…``); ``login``/``password`` give basic auth, or ``password``
alone a bearer token; extras ``registry_uri``, ``insecure_tls``, ``server_cert_path``.
With no connection configured the hook uses the embedded sqlite store under ``MLOPS_HOME``.

Credentials are handed to MLflow's REST stores through a ``get_host_creds`` callable, never
through ``os.environ``, so two hooks with different credentials can live in one process.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_mlops_provider.core.settings import mlops_home
from airflow_mlops_provider.exceptions import ConnectionConfigError, MlflowConnectionError
from airflow_mlops_provider.version_compat import BaseHook

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from airflow_mlops_provider.core.baseline import Baseline

_SCHEMES = {"http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks"}
_REST_SCHEMES = {"http", "https"}


def _check_uri(value: str, field: str, conn_id: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in _SCHEMES:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: {field} {value!r} is not a valid MLflow URI; expected a "
            f"scheme among {sorted(_SCHEMES)} (e.g. http://mlflow:5000 or sqlite:///mlflow.db)",
            conn_id=conn_id, field=field, value=value,
        )
    if scheme in _REST_SCHEMES and not parts.hostname:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: {field} {value!r} has no host name",
            conn_id=conn_id, field=field, value=value,
        )
    if scheme in _REST_SCHEMES:
        try:
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as err:
            raise ConnectionConfigError(
                f"Connection {conn_id!r}: {field} {value!r} has a malformed port",
                conn_id=conn_id, field=field, value=value,
            ) from err
    return value.rstrip("/") if scheme in _REST_SCHEMES else value


_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}
_AUTH_CODES = {"UNAUTHENTICATED", "PERMISSION_DENIED", "UNAUTHORIZED", "CUSTOMER_UNAUTHORIZED"}


def is_not_found(err: BaseException) -> bool:
    """Whether an MLflow error says "no such model/version/alias/run", not "could not ask"."""
    return getattr(err, "error_code", None) in _NOT_FOUND_CODES


def describe_failure(err: BaseException) -> str:
    """What went wrong talking to MLflow, as a user would say it (never the request body)."""
    import re

    text = getattr(err, "message", None) or str(err)
    code = getattr(err, "error_code", None)
    status = re.search(r"too many (\d{3}) error responses|error code (\d{3})", text)
    if status:
        number = status.group(1) or status.group(2)
        return f"answered HTTP {number}" + (" (credentials refused)" if number in ("401", "403") else "")
    if code in _AUTH_CODES:
        return f"refused the credentials ({code})"
    for needle, what in (("Connection refused", "refused the connection (is the server running?)"),
                         ("Name or service not known", "has a host name that does not resolve"),
                         ("nodename nor servname", "has a host name that does not resolve"),
                         ("timed out", "did not answer in time"), ("Timeout", "did not answer in time"),
                         ("Max retries exceeded", "could not be reached")):
        if needle in text:
            return what
    return f"failed: {text.splitlines()[0][:300] if text else type(err).__name__}"


def _without_userinfo(uri: str) -> str:
    """``uri`` without ``user:password@`` (a database URI in the host field carries them)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


class MlflowHook(BaseHook):
    """Talk to an MLflow tracking server and model registry.

    :param mlflow_conn_id: Airflow connection of type ``mlflow``. When it does not exist the
        embedded sqlite store under ``MLOPS_HOME`` is used (the laptop path).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    # -- connection ------------------------------------------------------------------------
    @cached_property
    def settings(self) -> dict[str, Any]:
        """Resolved, validated settings (no secrets are logged from here)."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            if self.mlflow_conn_id != self.default_conn_name:
                raise
            home = mlops_home().ensure()
            self.log.info("No connection %r: using the embedded MLflow store under %s",
                          self.mlflow_conn_id, home.mlflow_dir)
            return {"tracking_uri": home.mlflow_tracking_uri, "registry_uri": None,
                    "username": None, "password": None, "token": None, "insecure_tls": False,
                    "server_cert_path": None, "artifact_location": home.mlflow_artifacts.as_uri()}
        extra = conn.extra_dejson
        host = (conn.host or "").strip()
        if not host:
            raise ConnectionConfigError(
                f"Connection {self.mlflow_conn_id!r} has no tracking URI in its host field",
                conn_id=self.mlflow_conn_id, field="host")
        if "://" not in host:
            # A bare host name: http, with the port field when set.
            host = f"http://{host}" + (f":{conn.port}" if conn.port else "")
        elif conn.port and urlsplit(host).port is None and urlsplit(host).scheme in _REST_SCHEMES:
            host = f"{host.rstrip('/')}:{conn.port}"
        tracking_uri = _check_uri(host, "host", self.mlflow_conn_id)
        registry_uri = extra.get("registry_uri")
        if registry_uri:
            registry_uri = _check_uri(str(registry_uri), "extra.registry_uri", self.mlflow_conn_id)
        login, password = conn.login or None, conn.password or None
        return {
            "tracking_uri": tracking_uri,
            "registry_uri": registry_uri,
            "username": login if password else None,
            "password": password if login else None,
            "token": password if password and not login else None,
            "insecure_tls": bool(extra.get("insecure_tls", False)),
            "server_cert_path": extra.get("server_cert_path"),
            "artifact_location": extra.get("artifact_location"),
        }

    @property
    def tracking_uri(self) -> str:
        return self.settings["tracking_uri"]

    @property
    def registry_uri(self) -> str:
        return self.settings["registry_uri"] or self.settings["tracking_uri"]

    def _host_creds(self, uri: str):
        from mlflow.utils.rest_utils import MlflowHostCreds

        s = self.settings
        return MlflowHostCreds(
            host=uri, username=s["username"], password=s["password"], token=s["token"],
            ignore_tls_verification=s["insecure_tls"], server_cert_path=s["server_cert_path"],
        )

    # -- client ----------------------------------------------------------------------------
    def get_conn(self) -> MlflowClient:
        return self.client

    @cached_property
    def client(self) -> MlflowClient:
        """An ``MlflowClient`` bound to this connection, built once per hook."""
        from airflow_mlops_provider.core.optional import require

        require("mlflow")
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        _quiet_sagemaker_header_provider(self.tracking_uri)
        try:
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        except MlflowException as err:
            raise MlflowConnectionError(
                f"Connection {self.mlflow_conn_id!r}: cannot open MLflow store "
                f"{_without_userinfo(self.tracking_uri)!r}: {err.message}", conn_id=self.mlflow_conn_id) from err
        if urlsplit(self.tracking_uri).scheme in _REST_SCHEMES and self._has_credentials:
            self._bind_credentials(client)
        self._share_credentials()  # the newest hook's credentials, never an earlier hook's
        return client

    @property
    def _has_credentials(self) -> bool:
        s = self.settings
        return bool(s["token"] or s["username"] or s["insecure_tls"] or s["server_cert_path"])

    def _bind_credentials(self, client: MlflowClient) -> None:
        """Give the client REST stores whose credentials come from this connection.

        MLflow's default REST stores read credentials from environment variables; its REST
        stores accept a ``get_host_creds`` callable, which is how the connection's secret
        reaches them without touching ``os.environ``.
        """
        from mlflow.store.model_registry.rest_store import RestStore as RegistryRestStore
        from mlflow.store.tracking.rest_store import RestStore as TrackingRestStore
        from mlflow.tracking._model_registry.client import ModelRegistryClient
        from mlflow.tracking._tracking_service.client import TrackingServiceClient

        tracking_store = TrackingRestStore(lambda: self._host_creds(self.tracking_uri))
        registry_store = RegistryRestStore(lambda: self._host_creds(self.registry_uri))

        class _ConnTrackingServiceClient(TrackingServiceClient):
            store = property(lambda _self: tracking_store)

        class _ConnModelRegistryClient(ModelRegistryClient):
            store = property(lambda _self: registry_store)

        client._tracking_client = _ConnTrackingServiceClient(self.tracking_uri)
        client._registry_client_lazy = _ConnModelRegistryClient(self.registry_uri, self.tracking_uri)

    # -- helpers ---------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Airflow's "Test" button: one authenticated API call, no retries, short timeout."""
        try:
            if urlsplit(self.tracking_uri).scheme in _REST_SCHEMES:
                from mlflow.utils.rest_utils import http_request

                resp = http_request(self._host_creds(self.tracking_uri),
                                    "/api/2.0/mlflow/experiments/search", "POST",
                                    json={"max_results": 1}, max_retries=0, timeout=10,
                                    raise_on_status=False)
                if resp.status_code != 200:
                    return False, (f"MLflow at {_without_userinfo(self.tracking_uri)} answered HTTP {resp.status_code}: "
                                   f"{resp.text[:200]}")
            else:
                self.client.search_experiments(max_results=1)
        except Exception as err:  # noqa: BLE001 - the UI wants a message, not a traceback
            message = getattr(err, "message", None) or str(err)
            return False, f"MLflow at {_without_userinfo(self.tracking_uri)} is not reachable: {message.splitlines()[0][:300]}"
        return True, f"Connected to MLflow at {_without_userinfo(self.tracking_uri)}"

    def get_or_create_experiment(self, name: str) -> str:
        """Return the experiment id for ``name``, creating it with the connection's artifact location."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        from mlflow.exceptions import MlflowException

        try:
            return self.client.create_experiment(name, artifact_location=self.settings["artifact_location"])
        except MlflowException:
            # Another task created it between our read and our write.
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def activate(self) -> None:
        """Point MLflow's process-global fluent API (``mlflow.start_run``, ``log_model``) here.

        Also hands the connection's credentials, in memory, to the provider's MLflow
        request-auth plugin (:mod:`airflow_mlops_provider.hooks.mlflow_auth`), so the fluent
        API, model loading and artifact downloads and uploads authenticate like the client does;
        nothing is written to ``os.environ``. Airflow runs each task in its own process, so the
        global URI and credentials are scoped to the task.
        """
        import mlflow

        _quiet_sagemaker_header_provider(self.tracking_uri)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        self._share_credentials()

    def _share_credentials(self) -> None:
        """Give the provider's MLflow auth plugin this connection's ``Authorization`` (or none).

        Only the plugin's name goes to the environment (``MLFLOW_TRACKING_AUTH``), never a secret;
        a name the deployment set there already is left alone.
        """
        import os

        from airflow_mlops_provider.hooks import mlflow_auth

        header = None
        if urlsplit(self.tracking_uri).scheme in _REST_SCHEMES:
            s = self.settings
            if s["username"] and s["password"]:
                import base64

                header = "Basic " + base64.b64encode(f"{s['username']}:{s['password']}".encode()).decode()
            elif s["token"]:
                header = f"Bearer {s['token']}"
        mlflow_auth.set_authorization(header, (self.tracking_uri, self.registry_uri))
        if header:
            current = os.environ.setdefault("MLFLOW_TRACKING_AUTH", mlflow_auth.PROVIDER_NAME)
            if current != mlflow_auth.PROVIDER_NAME:
                self.log.warning("MLFLOW_TRACKING_AUTH=%s is set: MLflow's own calls (model loading, artifacts) "
                                 "use that auth provider, not connection %r", current, self.mlflow_conn_id)

    def unavailable(self, err: BaseException, doing: str) -> MlflowConnectionError:
        """An :class:`MlflowConnectionError` saying what failed and how, naming server and connection."""
        what = describe_failure(err)
        # MLflow retries refused connections, timeouts and 429/5xx answers, not a refused login.
        retried = "" if "credentials" in what else ("; MLflow retried with backoff first "
                                                    "(MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR)")
        return MlflowConnectionError(
            f"MLflow at {_without_userinfo(self.tracking_uri)} (connection {self.mlflow_conn_id!r}) {what} while {doing}{retried}",
            conn_id=self.mlflow_conn_id, doing=doing)

    # -- registry --------------------------------------------------------------------------
    def get_version_by_alias(self, name: str, alias: str, required: bool = True):
        """The model version an alias names; None (or ModelNotFoundError) when unset."""
        from mlflow.exceptions import MlflowException

        from airflow_mlops_provider.exceptions import ModelNotFoundError

        try:
            return self.client.get_model_version_by_alias(name, alias)
        except MlflowException as err:
            if not is_not_found(err):
                raise self.unavailable(err, f"reading alias {alias!r} of model {name!r}") from None
            if not required:
                return None
            raise ModelNotFoundError(
                f"registered model {name!r} has no alias {alias!r} ({err.message.splitlines()[0]})",
                model=name, alias=alias) from err

    def resolve_version(self, name: str, version: str | int | None = None, alias: str | None = None):
        """The model version ``version`` names (a number, or ``@alias``), else the one ``alias`` names.

        Raises :class:`ModelNotFoundError` naming the model and the version or alias.
        """
        from mlflow.exceptions import MlflowException

        from airflow_mlops_provider.exceptions import ModelNotFoundError

        raw = "" if version in (None, "None") else str(version).strip()
        if raw.startswith("@"):
            return self.get_version_by_alias(name, raw[1:])
        if raw:
            try:
                return self.client.get_model_version(name, raw)
            except MlflowException as err:
                if not is_not_found(err):
                    raise self.unavailable(err, f"reading version {raw} of model {name!r}") from None
                raise ModelNotFoundError(f"registered model {name!r} has no version {raw}",
                                         model=name, version=raw) from err
        if alias:
            return self.get_version_by_alias(name, alias)
        raise ModelNotFoundError(f"registered model {name!r}: give a version or an alias", model=name)

    def version_storage_uri(self, name: str, version: str | int) -> str:
        """Where a registered version's artifacts live (what a serving platform reads)."""
        uri = self.client.get_model_version_download_uri(name, str(version))
        if "://" not in uri:  # a bare local path from a file store
            from pathlib import Path

            uri = Path(uri).resolve().as_uri()
        return uri

    def load_pyfunc(self, model_uri: str) -> Any:
        """An MLflow pyfunc model from this connection's stores (any flavor)."""
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException

        from airflow_mlops_provider.exceptions import ModelLoadError, ModelNotFoundError
        from airflow_mlops_provider.version_compat import airflow_deprecations_silenced

        self.activate()
        try:
            with airflow_deprecations_silenced():
                return mlflow.pyfunc.load_model(model_uri)
        except MlflowException as err:
            if is_not_found(err):
                raise ModelNotFoundError(f"cannot load {model_uri}: {err.message.splitlines()[0][:300]}",
                                         model_uri=model_uri) from err
            if "API request" in err.message:
                raise self.unavailable(err, f"loading {model_uri}") from None
            raise ModelLoadError(f"cannot load {model_uri}: {err.message.splitlines()[0][:300]}",
                                 model_uri=model_uri) from err
        except OSError as err:  # artifacts deleted from the store: FileNotFoundError / OSError
            raise ModelNotFoundError(f"cannot load {model_uri}: its artifacts are missing or unreadable "
                                     f"({type(err).__name__}: {str(err)[:300]})", model_uri=model_uri) from err
        except Exception as err:  # a flavor that cannot load here: missing library, untrusted types, ...
            raise ModelLoadError(f"cannot load {model_uri}: {type(err).__name__}: {str(err).splitlines()[0][:300]}",
                                 model_uri=model_uri) from err

    def load_holdout(self, run_id: str) -> Any:
        """The holdout rows :class:`MlflowTrainModelOperator` logged with a run (a DataFrame)."""
        import mlflow
        import pandas as pd

        from airflow_mlops_provider.core.tasks import HOLDOUT_ARTIFACT

        self.activate()
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=HOLDOUT_ARTIFACT,
                                                    tracking_uri=self.tracking_uri)
        return pd.read_parquet(local)

    def load_baseline(self, name: str, version: str | int) -> Baseline:
        """The drift baseline stored with a model version at training time, in one download.

        ``predictions`` is None for a version trained without a prediction baseline.
        """
        import json
        import tempfile
        from pathlib import Path

        import mlflow
        import pandas as pd
        from mlflow.exceptions import MlflowException

        from airflow_mlops_provider.core import baseline as files
        from airflow_mlops_provider.exceptions import ModelNotFoundError

        self.activate()
        try:
            mv = self.client.get_model_version(name, str(version))
        except MlflowException as err:
            if not is_not_found(err):
                raise self.unavailable(err, f"reading version {version} of model {name!r}") from None
            raise ModelNotFoundError(f"registered model {name!r} has no version {version}",
                                     model=name, version=version) from err
        uri = (mv.tags or {}).get("mlops.baseline_uri")
        if not uri:
            raise ModelNotFoundError(f"model {name!r} v{version} has no drift baseline (tag mlops.baseline_uri); "
                                     "it was not trained by MlflowTrainModelOperator", model=name, version=version)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp,
                                                             tracking_uri=self.tracking_uri))
            found = files.Baseline(profile=json.loads((local / files.PROFILE_FILE).read_text()),
                                   sample=pd.read_parquet(local / files.SAMPLE_FILE))
            if (local / files.PREDICTIONS_FILE).is_file():
                found.predictions = json.loads((local / files.PREDICTIONS_FILE).read_text())
                found.predictions_sample = pd.read_parquet(local / files.PREDICTIONS_SAMPLE_FILE)
        return found

    def logged_model_uri(self, run_id: str) -> str:
        """``models:/<model_id>`` of the model a run logged (MLflow 3 LoggedModel)."""
        from airflow_mlops_provider.exceptions import ModelNotFoundError

        outputs = self.client.get_run(run_id).outputs
        models = list(getattr(outputs, "model_outputs", None) or [])
        if not models:
            raise ModelNotFoundError(f"MLflow run {run_id!r} logged no model", run_id=run_id)
        if len(models) > 1:
            raise ModelNotFoundError(f"MLflow run {run_id!r} logged {len(models)} models; pass model_uri "
                                     f"explicitly", run_id=run_id)
        return f"models:/{models[0].model_id}"

    def wait_version_ready(self, name: str, version: str, timeout: float = 300, poll: float = 1.0):
        import time

        from airflow_mlops_provider.exceptions import ModelNotFoundError

        deadline = time.monotonic() + timeout
        while True:
            mv = self.client.get_model_version(name, version)
            if mv.status == "READY":
                return mv
            if mv.status == "FAILED_REGISTRATION":
                raise ModelNotFoundError(f"model {name!r} version {version} failed registration: "
                                         f"{mv.status_message}", model=name, version=version)
            if time.monotonic() > deadline:
                raise TimeoutError(f"model {name!r} version {version} not READY after {timeout}s")
            time.sleep(poll)


class _SageMakerHeaderNoise:
    """Drop one known-harmless warning: the ``sagemaker-mlflow`` package (installed with the
    SageMaker SDK) registers a request-header provider that fails with ``IndexError`` on every
    MLflow request whose tracking URI is not a SageMaker ARN; MLflow logs each failure, hundreds of
    lines per task. Other header-provider errors still show."""

    def filter(self, record: Any) -> bool:
        message = record.getMessage()
        return not (message.startswith("Encountered unexpected error during resolving request headers")
                    and message.endswith("list index out of range"))


_HEADER_NOISE = _SageMakerHeaderNoise()


def _quiet_sagemaker_header_provider(tracking_uri: str) -> None:
    """Install :class:`_SageMakerHeaderNoise` (once) unless the tracking server is SageMaker's own."""
    import logging

    if tracking_uri.startswith("arn:aws:sagemaker"):
        return
    logger = logging.getLogger("mlflow.tracking.request_header.registry")
    if _HEADER_NOISE not in logger.filters:
        logger.addFilter(_HEADER_NOISE)
