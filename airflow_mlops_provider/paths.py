"""Allowed roots as configured in Airflow, for operators, sensors and pipeline tasks.

The checking itself is :mod:`airflow_mlops_provider.core.paths` (pure, no Airflow). This module
reads the configured roots: ``MLOPS_ALLOWED_ROOTS`` in the environment, else Airflow's
``[mlops] allowed_roots`` (``AIRFLOW__MLOPS__ALLOWED_ROOTS``), read on every call; and turns a
refused path into a task failure without retries.
"""

from __future__ import annotations

import os

from airflow_mlops_provider.core import paths as core
from airflow_mlops_provider.exceptions import PathNotAllowedError

ENV_VAR = "MLOPS_ALLOWED_ROOTS"


def configured_roots() -> str:
    """The comma-separated configured roots (empty: only ``MLOPS_HOME``)."""
    value = os.environ.get(ENV_VAR, "")
    if value.strip():
        return value
    try:
        from airflow.configuration import conf

        return conf.get(core.CONFIG_SECTION, core.CONFIG_KEY, fallback="") or ""
    except Exception:  # noqa: BLE001 - no Airflow config here: the default applies
        return ""


def allowed_roots() -> list[core.Root]:
    """``MLOPS_HOME`` plus the configured roots."""
    return core.allowed_roots(configured_roots())


def check_path(path: object, what: str) -> str:
    """:func:`airflow_mlops_provider.core.paths.check_path` against the configured roots."""
    return core.check_path(path, what, roots=allowed_roots())


def require_allowed(path: object, what: str) -> str:
    """:func:`check_path` for operators: a refused path fails the task at once (no retries)."""
    try:
        return check_path(path, what)
    except PathNotAllowedError as err:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(err)) from err
