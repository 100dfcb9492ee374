"""Airflow UI extensions of the provider, served by the api-server through ``plugins/``.

Airflow imports plugin modules in every process that loads plugins, task processes included
(for macros), so what a plugin module imports from here must stay cheap: the Models view's
FastAPI app is built on its first request, not at import (building it costs ~1.5 s).
"""

from __future__ import annotations

from typing import Any


class LazyModelsApp:
    """An ASGI app that builds :func:`~airflow_mlops_provider.ui.models_view.create_app` on first use."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_mlops_provider.ui.models_view import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


models_app = LazyModelsApp()
