"""The one place that branches on Airflow versions; everything else imports from here."""

from __future__ import annotations

from airflow import __version__ as _airflow_version
from packaging.version import Version

_BASE = Version(Version(_airflow_version).base_version)
AIRFLOW_V_3_1_PLUS = _BASE >= Version("3.1.0")
AIRFLOW_V_3_2_PLUS = _BASE >= Version("3.2.0")

from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator  # noqa: E402

__all__ = ["AIRFLOW_V_3_1_PLUS", "AIRFLOW_V_3_2_PLUS", "BaseHook", "BaseOperator", "BaseSensorOperator"]
