"""Extra link from a drift check to its Evidently HTML report."""

from __future__ import annotations

from typing import ClassVar

from airflow_mlops_provider.links.base import XComUriLink


class EvidentlyDriftReportLink(XComUriLink):
    """"Drift Report": the Evidently data drift report rendered for this partition."""

    name: ClassVar[str] = "Drift Report"
    key: ClassVar[str] = "drift_report_uri"
