"""Shim for a ``plugins_folder`` that holds this repository's ``plugins/`` (``make ui``, docker-compose.yaml).

The Models view plugin ships with the package: :class:`airflow_mlops_provider.ui.plugin.MlopsModelsPlugin`,
registered through the ``airflow.plugins`` entry point of the installed distribution (a plain
``pip install`` or this repository's editable install). Airflow loads the plugins folder first
and then skips an entry-point plugin of the same name with an "already registered" import error,
so this file exposes the class only where the package is importable but not installed as a
distribution (e.g. the source tree on ``PYTHONPATH``).
"""

from __future__ import annotations

from importlib.metadata import entry_points

if not any(ep.value.startswith("airflow_mlops_provider.") for ep in entry_points(group="airflow.plugins")):
    from airflow_mlops_provider.ui.plugin import MlopsModelsPlugin  # noqa: F401
