"""The one place that branches on Airflow versions; everything else imports from here."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from airflow import __version__ as _airflow_version
from packaging.version import Version

_BASE = Version(Version(_airflow_version).base_version)
AIRFLOW_V_3_1_PLUS = _BASE >= Version("3.1.0")
AIRFLOW_V_3_2_PLUS = _BASE >= Version("3.2.0")

from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator  # noqa: E402


@contextlib.contextmanager
def airflow_deprecations_silenced() -> Iterator[None]:
    """Silence Airflow's deprecated-import warnings while skops probes every loaded module.

    skops finds the module of each function it (de)serializes by trying ``getattr(module, name)``
    on every module in ``sys.modules``; on Airflow's deprecation shims each probe emits (and logs)
    a ``DeprecatedImportWarning``: about a thousand log lines and a second per task process. Only
    that category is silenced, only around the probe; every other warning (e.g. scikit-learn's
    ``InconsistentVersionWarning`` on load) still shows. skops probes at its first import too
    (for scipy's ufuncs), so ``import skops.io`` belongs inside the block.
    """
    with warnings.catch_warnings():
        try:
            from airflow.utils.deprecation_tools import DeprecatedImportWarning
        except ImportError:  # an Airflow without the shim: nothing to silence
            yield
            return
        warnings.simplefilter("ignore", DeprecatedImportWarning)
        yield


__all__ = ["AIRFLOW_V_3_1_PLUS", "AIRFLOW_V_3_2_PLUS", "BaseHook", "BaseOperator", "BaseSensorOperator",
           "airflow_deprecations_silenced"]
