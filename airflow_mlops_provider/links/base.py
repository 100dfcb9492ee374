"""Extra links whose target is stored in XCom by the task, then read back in ``get_link``.

Airflow 3 calls ``get_link`` in the worker when the task finishes (also when it failed) and
stores the result for the UI, so a failed gate still links to the page that explains it.

Two kinds: :class:`XComUriLink` stores a finished URL that lives elsewhere (an AWS console
page, an InferenceService URL); :class:`ReportLink` stores only a report's path relative to its
folder under ``MLOPS_HOME/reports`` and builds the http URL at which the Models view plugin
serves it, behind Airflow's login (the UI renders http(s) links only, never ``file://``).
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

REPORTS_URL_PREFIX = "/mlops/reports"
"""Where the Models view plugin (mounted at ``/mlops``) serves ``MLOPS_HOME/reports/<folder>``."""


def _read_xcom(link: BaseOperatorLink, key: str, ti_key: TaskInstanceKey) -> Any:
    from airflow.sdk.execution_time.xcom import XCom

    try:
        return XCom.get_value(ti_key=ti_key, key=key)
    except Exception:  # a missing link must never fail the task or the UI
        log.warning("Could not read the %s link of %s from XCom", link.name, ti_key, exc_info=True)
        return None


class XComUriLink(BaseOperatorLink):
    """Base class: subclasses set ``name`` (the button) and ``key`` (the XCom key)."""

    name: ClassVar[str]
    key: ClassVar[str]

    @classmethod
    def persist(cls, context: Context | dict[str, Any], uri: str) -> None:
        """Store ``uri`` in XCom for :meth:`get_link`."""
        context["ti"].xcom_push(key=cls.key, value=uri)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        value = _read_xcom(self, self.key, ti_key)
        return value if isinstance(value, str) else ""


def safe_relative(relative: str) -> str | None:
    """``relative`` as a POSIX path inside its folder, or None (absolute, ``..``, empty, backslash)."""
    if not isinstance(relative, str) or not relative or "\\" in relative or "\x00" in relative:
        return None
    path = PurePosixPath(relative)
    if path.is_absolute() or any(part in ("", "..", ".") for part in relative.split("/")):
        return None
    return path.as_posix()


def api_base_path() -> str:
    """The path of ``[api] base_url`` without its trailing slash ("" at the root): what report URLs
    start with.

    Only the path: the link is computed in the worker when the task ends and kept, so a host or
    port in it would go stale when the UI moves (another port, a proxy); a root-relative URL is
    resolved by the browser against the UI's own origin, and the UI renders same-origin links.
    """
    from urllib.parse import urlsplit

    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    return urlsplit(base).path.rstrip("/")


def report_url(folder: str, relative: str) -> str:
    """The http URL of ``MLOPS_HOME/reports/<folder>/<relative>`` served by the Models view plugin."""
    return f"{api_base_path()}{REPORTS_URL_PREFIX}/{folder}/{quote(relative)}"


class ReportLink(BaseOperatorLink):
    """A report under ``MLOPS_HOME/reports/<folder>``, linked through the Models view plugin.

    Subclasses set ``name``, ``key`` (the XCom key holding the relative path) and ``folder``.
    """

    name: ClassVar[str]
    key: ClassVar[str]
    folder: ClassVar[str]

    @classmethod
    def relative_path(cls, report: str | Path, reports_dir: str | Path) -> str:
        """``report``'s path inside ``reports_dir/<folder>``; ValueError when it is not inside it."""
        root = (Path(reports_dir) / cls.folder).resolve()
        target = Path(report).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"{cls.name} {target} is not under {root}: the Models view serves only that folder")
        relative = safe_relative(target.relative_to(root).as_posix())
        if relative is None:
            raise ValueError(f"{cls.name} {target} has no file name inside {root}")
        return relative

    @classmethod
    def persist(cls, context: Context | dict[str, Any], report: str | Path, reports_dir: str | Path) -> str:
        """Store ``report``'s path relative to ``reports_dir/<folder>`` in XCom; returns it."""
        relative = cls.relative_path(report, reports_dir)
        context["ti"].xcom_push(key=cls.key, value=relative)
        return relative

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        relative = safe_relative(_read_xcom(self, self.key, ti_key))
        return report_url(self.folder, relative) if relative else ""
