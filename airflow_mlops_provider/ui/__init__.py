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
from collections.abc import Callable
from typing import Any


class LazyApp:
    """An ASGI app that calls ``build()`` for the real app on its first request (once, under a lock)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build_app = build
        self._app: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        with self._lock:
            if self._app is None:
                self._app = self._build_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app if self._app is not None else self._build()
        await app(scope, receive, send)


def _models_view() -> Any:
    """:func:`~airflow_mlops_provider.ui.models_view.create_app`, and its background warm-up."""
    from airflow_mlops_provider.ui.models_view import create_app, warm_up

    app = create_app()
    threading.Thread(target=warm_up, name="mlops-models-warm-up", daemon=True).start()
    return app


models_app = LazyApp(_models_view)
