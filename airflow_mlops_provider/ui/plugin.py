"""The Airflow 3 plugin that ships the Models view with the provider.

Registered through the ``airflow.plugins`` entry point (and listed in the provider info), so a
``pip install airflow-mlops-provider`` is enough: no file to copy into ``plugins_folder``. It
mounts the Models view (:mod:`airflow_mlops_provider.ui.models_view`) at ``/mlops`` and adds
"Models" to the UI's navigation (an external view shown inside the Airflow UI). Read-only.
It also registers the scheduler-side check that fails a run at its start when the promotion pool
is missing (:mod:`airflow_mlops_provider.listeners.promotion_pool`).

Airflow imports this module in every process that loads plugins, task processes included:
it stays cheap (the FastAPI app is built on its first request, see :mod:`airflow_mlops_provider.ui`).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_mlops_provider.listeners import promotion_pool
from airflow_mlops_provider.ui import models_app
from airflow_mlops_provider.ui.webhooks import URL_PREFIX as WEBHOOKS_URL_PREFIX
from airflow_mlops_provider.ui.webhooks import webhooks_app

#: The plugin's name: Airflow registers one plugin per name (the first one found wins).
PLUGIN_NAME = "mlops_models"


class MlopsModelsPlugin(AirflowPlugin):
    name = PLUGIN_NAME
    fastapi_apps = [{"app": models_app, "url_prefix": "/mlops", "name": "MLOps Models view"},
                    # MLflow's registry webhooks (signed; no Airflow login): alias moves to the ledger at once.
                    {"app": webhooks_app, "url_prefix": WEBHOOKS_URL_PREFIX, "name": "MLOps MLflow webhooks"}]
    external_views = [{
        "name": "Models",
        "href": "/mlops/models",
        "url_route": "mlops-models",
        "destination": "nav",
        "nav_top_level": True,
    }]
    listeners = [promotion_pool]
