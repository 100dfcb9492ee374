"""Silence Airflow's deprecated-import warnings while skops probes every loaded module.

skops finds the module of each function it (de)serializes by trying ``getattr(module, name)``
on every module in ``sys.modules``; on Airflow's deprecation shims each probe emits (and logs)
a ``DeprecatedImportWarning``: about a thousand log lines and a second per task process. Only
that category is silenced, only around the probe; every other warning (e.g. scikit-learn's
``InconsistentVersionWarning`` on load) still shows.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def airflow_deprecations_silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        try:
            from airflow.utils.deprecation_tools import DeprecatedImportWarning
        except ImportError:  # an Airflow without the shim: nothing to silence
            yield
            return
        warnings.simplefilter("ignore", DeprecatedImportWarning)
        yield
