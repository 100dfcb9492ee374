"""Import optional integrations lazily, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from airflow_mlops_provider.exceptions import MissingDependencyError

# module -> the provider extra that installs it
_EXTRAS = {
    "mlflow": "mlflow",
    "sklearn": "mlflow",
    "great_expectations": "great-expectations",
    "evidently": "evidently",
    "dvc": "dvc",
    "scmrepo": "dvc",
    "sagemaker": "amazon",
    "airflow.providers.amazon": "amazon",
    "airflow.providers.cncf.kubernetes": "kubernetes",
    "kubernetes": "kubernetes",
    "pandas": "mlflow",
    "pyarrow": "mlflow",
    "shap": "explain",
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = next((k for k in sorted(_EXTRAS, key=len, reverse=True)
                    if module == k or module.startswith(k + ".")), module.split(".")[0])
        extra = _EXTRAS.get(top, "all")
        raise MissingDependencyError(module=module, extra=extra) from err
