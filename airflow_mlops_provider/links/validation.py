"""Extra link from a validation task to its Great Expectations data docs page."""

from __future__ import annotations

from typing import ClassVar

from airflow_mlops_provider.links.base import XComUriLink


class GreatExpectationsDataDocsLink(XComUriLink):
    """"Data Docs": the HTML page GE rendered for this task's validation result."""

    name: ClassVar[str] = "Data Docs"
    key: ClassVar[str] = "data_docs_uri"
