"""Extra link from a drift check to its Evidently HTML report."""

from __future__ import annotations

from typing import ClassVar

from airflow_mlops_provider.links.base import ReportLink


class EvidentlyDriftReportLink(ReportLink):
    """"Drift Report": the Evidently data drift report rendered for this partition, served by the
    Models view plugin from ``MLOPS_HOME/reports/drift``."""

    name: ClassVar[str] = "Drift Report"
    key: ClassVar[str] = "drift_report"
    folder: ClassVar[str] = "drift"
