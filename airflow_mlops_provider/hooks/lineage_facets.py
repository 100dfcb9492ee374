"""The provider's custom OpenLineage dataset facets (needs the ``openlineage`` extra).

Imported only from :mod:`airflow_mlops_provider.hooks.lineage`, inside functions that handle a
missing OpenLineage install. The classes live at module level so events that carry them can be
pickled; their fields are added per instance (``with_additional_properties``) because what a
model or data version is known by differs between tasks.
"""

from __future__ import annotations

import attr
from openlineage.client.facet_v2 import DatasetFacet

_DOCS = "https://github.com/airflow-mlops-provider/airflow-mlops-provider/blob/main/docs/lineage.md"


@attr.define
class MlopsDvcDatasetFacet(DatasetFacet):
    """``mlops_dvc``: the DVC data version of a file (path, rev, commit, md5, id, repo)."""

    @staticmethod
    def _get_schema() -> str:
        return f"{_DOCS}#mlops_dvc"


@attr.define
class MlopsModelDatasetFacet(DatasetFacet):
    """``mlops_model``: what identifies an MLflow model, version, alias or serving endpoint."""

    @staticmethod
    def _get_schema() -> str:
        return f"{_DOCS}#mlops_model"
