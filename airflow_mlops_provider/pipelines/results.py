"""The operators' result shapes; they live in :mod:`airflow_mlops_provider.results` (re-exported here)."""

from __future__ import annotations

from airflow_mlops_provider.results import *  # noqa: F403
from airflow_mlops_provider.results import __all__  # noqa: F401
