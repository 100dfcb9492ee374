"""Extra links whose target is stored in XCom by the task, then read back in ``get_link``.

Airflow 3 calls ``get_link`` in the worker when the task finishes (also when it failed) and
stores the result for the UI, so a failed gate still links to the page that explains it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)


class XComUriLink(BaseOperatorLink):
    """Base class: subclasses set ``name`` (the button) and ``key`` (the XCom key)."""

    name: ClassVar[str]
    key: ClassVar[str]

    @classmethod
    def persist(cls, context: Context | dict[str, Any], uri: str) -> None:
        """Store ``uri`` in XCom for :meth:`get_link`."""
        context["ti"].xcom_push(key=cls.key, value=uri)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        try:
            value = XCom.get_value(ti_key=ti_key, key=self.key)
        except Exception:  # a missing link must never fail the task or the UI
            log.warning("Could not read the %s link of %s from XCom", self.name, ti_key, exc_info=True)
            return ""
        return value if isinstance(value, str) else ""
