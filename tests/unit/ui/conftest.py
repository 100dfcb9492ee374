"""The Models view's app in-process, for the route tests of its sections."""

from __future__ import annotations

import pytest


@pytest.fixture
def view_app(monkeypatch, tmp_path):
    """The Models view's app with Airflow's login guard and user lookup replaced: every request comes
    from the user ``"someone"`` (what the auth manager then allows is each test's monkeypatch)."""
    from airflow.api_fastapi.core_api.security import get_user

    from airflow_mlops_provider.ui.models_view import create_app

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    app = create_app()
    for dependency in app.router.dependencies:
        app.dependency_overrides[dependency.dependency] = lambda: None
    app.dependency_overrides[get_user] = lambda: "someone"
    return app
