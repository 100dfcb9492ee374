"""airflow-mlops-provider: validate, version, train, promote, deploy and monitor models in Airflow 3.

Public names are resolved lazily so that ``import airflow_mlops_provider`` stays cheap at DAG
parse time.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MlflowHook": "airflow_mlops_provider.hooks.mlflow",
    "DvcHook": "airflow_mlops_provider.hooks.dvc",
    "DataVersion": "airflow_mlops_provider.hooks.dvc",
    "mlops_home": "airflow_mlops_provider.core.settings",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
