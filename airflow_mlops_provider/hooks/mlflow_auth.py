"""The connection's MLflow credentials for MLflow's own HTTP calls, without putting them in ``os.environ``.

MLflow's fluent API (``mlflow.start_run``, ``log_model``), ``mlflow.pyfunc.load_model`` and
artifact transfers build their REST clients from environment variables. A password there would be
readable by everything that reads the environment. Instead the provider registers this request
auth provider through MLflow's plugin entry point ``mlflow.request_auth_provider`` (see
``pyproject.toml``). :meth:`MlflowHook.activate` selects it by name (``MLFLOW_TRACKING_AUTH``, a
plugin name, not a secret) and hands it the connection's ``Authorization`` value and hosts, held
in memory for the task's process (Airflow runs each task in its own process).

The header is added only to requests whose host is the connection's tracking or registry host:
an artifact location pointing at another server never receives the credentials.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from requests.auth import AuthBase

PROVIDER_NAME = "airflow_mlops_connection"
_lock = threading.Lock()
_active: dict[str, object] = {}  # {"header": str, "hosts": frozenset[str]}; shared with MLflow's threads


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{parts.port or ''}"


def set_authorization(header: str | None, urls: tuple[str, ...] = ()) -> None:
    """Use ``header`` for requests to the hosts of ``urls`` (None: no credentials at all)."""
    with _lock:
        _active.clear()
        if header:
            _active.update(header=header, hosts=frozenset(_host(u) for u in urls))


def authorization_for(url: str) -> str | None:
    with _lock:
        if _active and _host(url) in _active["hosts"]:
            return str(_active["header"])
    return None


class _ConnectionAuth(AuthBase):
    def __call__(self, request):
        header = authorization_for(request.url)
        if header:
            request.headers["Authorization"] = header
        return request


def _provider_class() -> type:
    # MLflow's base class is imported only when MLflow loads the plugin (importing this module stays
    # cheap: the hook imports it for set_authorization).
    from mlflow.tracking.request_auth.abstract_request_auth_provider import RequestAuthProvider

    class ConnectionCredentialsAuthProvider(RequestAuthProvider):
        """MLflow request auth provider: the active MLflow connection's credentials, for its hosts only."""

        def get_name(self) -> str:
            return PROVIDER_NAME

        def get_auth(self) -> AuthBase:
            return _ConnectionAuth()

    ConnectionCredentialsAuthProvider.__module__ = __name__
    ConnectionCredentialsAuthProvider.__qualname__ = "ConnectionCredentialsAuthProvider"
    return ConnectionCredentialsAuthProvider


def __getattr__(name: str) -> Any:
    """``ConnectionCredentialsAuthProvider``, built on first access (the entry point's attribute)."""
    if name == "ConnectionCredentialsAuthProvider":
        cls = _provider_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
