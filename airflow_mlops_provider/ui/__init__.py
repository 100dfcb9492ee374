"""Airflow UI extensions of the provider, served by the api-server through ``plugins/``.

Airflow imports plugin modules in every process that loads plugins, task processes included
(for macros), so what a plugin module imports from here must stay cheap: the Models view's
FastAPI app is built on its first request, not at import (building it costs ~1.5 s), and that
first request (any request: ``make ui`` sends one before it reports ready, and a browser's
redirect to the login page is one) starts a background warm-up that imports MLflow and opens
the registry, so the first page a user sees does not pay for them.
"""

from __future__ import annotations

import threading
from typing import Any


class LazyModelsApp:
    """An ASGI app that builds :func:`~airflow_mlops_provider.ui.models_view.create_app` on first use."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        with self._lock:
            if self._app is None:
                from airflow_mlops_provider.ui.models_view import create_app, warm_up

                self._app = create_app()
                threading.Thread(target=warm_up, name="mlops-models-warm-up", daemon=True).start()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app if self._app is not None else self._build()
        await app(scope, receive, send)


models_app = LazyModelsApp()
