"""Airflow 3 plugin: the MLOps Models view, served by the api-server under Airflow's login.

Mounts the Models view (:mod:`airflow_mlops_provider.ui.models_view`) at ``/mlops`` and adds
"Models" to the UI's navigation (an external view shown inside the Airflow UI). Read-only.
Put this folder on ``[core] plugins_folder`` (``make ui`` and docker-compose.yaml do).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_mlops_provider.ui import models_app  # cheap: the app is built on its first request


class MlopsModelsPlugin(AirflowPlugin):
    name = "mlops_models"
    fastapi_apps = [{"app": models_app, "url_prefix": "/mlops", "name": "MLOps Models view"}]
    external_views = [{
        "name": "Models",
        "href": "/mlops/models",
        "url_route": "mlops-models",
        "destination": "nav",
        "nav_top_level": True,
    }]
