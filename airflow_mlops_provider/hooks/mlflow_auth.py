"""The connection's MLflow credentials for MLflow's own HTTP calls, without ``os.environ``.

MLflow's fluent API (``mlflow.start_run``, ``log_model``), ``mlflow.pyfunc.load_model`` and
artifact downloads build their REST stores from environment variables. Putting a password there
would expose it to everything that reads the environment. Instead the provider registers this
request-header provider through MLflow's plugin entry point ``mlflow.request_header_provider``
(see ``pyproject.toml``); :meth:`MlflowHook.activate` hands it the connection's ``Authorization``
header, held in memory only, for the task process it runs in (Airflow runs each task in its own
process). A hook without credentials clears it.
"""

from __future__ import annotations

import threading

# Loaded by MLflow itself (its plugin entry point) or after MLflow is imported: never at DAG parse.
from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider  # noqa: TID253

_lock = threading.Lock()
_active: dict[str, str] = {}  # the header for the active connection; shared with MLflow's download threads


def set_authorization(header: str | None) -> None:
    with _lock:
        _active.clear()
        if header:
            _active["Authorization"] = header


class ConnectionCredentialsHeaderProvider(RequestHeaderProvider):
    """Adds the active MLflow connection's ``Authorization`` header to MLflow's REST requests."""

    def in_context(self) -> bool:
        return bool(_active)

    def request_headers(self) -> dict[str, str]:
        with _lock:
            return dict(_active)
