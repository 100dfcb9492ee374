"""Extra link from a validation task to its Great Expectations data docs page.

The operator persists the page's URI in XCom while it runs; ``get_link`` reads it back. Airflow
3 calls ``get_link`` in the worker when the task finishes (also when it failed) and stores the
link for the UI, so a failed quality gate still links to the page that explains it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)


class GreatExpectationsDataDocsLink(BaseOperatorLink):
    """"Data Docs": the HTML page GE rendered for this task's validation result."""

    name: ClassVar[str] = "Data Docs"
    key: ClassVar[str] = "data_docs_uri"

    @classmethod
    def persist(cls, context: Context | dict[str, Any], uri: str) -> None:
        """Store ``uri`` in XCom for :meth:`get_link`."""
        context["ti"].xcom_push(key=cls.key, value=uri)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        try:
            value = XCom.get_value(ti_key=ti_key, key=self.key)
        except Exception:  # a missing link must never fail the task or the UI
            log.warning("Could not read the data docs URI of %s from XCom", ti_key, exc_info=True)
            return ""
        return value if isinstance(value, str) else ""
