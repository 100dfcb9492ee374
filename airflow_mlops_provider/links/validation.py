"""Extra link from a validation task to its Great Expectations data docs page."""

from __future__ import annotations

from typing import ClassVar

from airflow_mlops_provider.links.base import ReportLink


class GreatExpectationsDataDocsLink(ReportLink):
    """"Data Docs": the HTML page GE rendered for this task's validation result, served by the
    Models view plugin from ``MLOPS_HOME/reports/data_docs``."""

    name: ClassVar[str] = "Data Docs"
    key: ClassVar[str] = "data_docs_page"
    folder: ClassVar[str] = "data_docs"
