"""OpenLineage glue: the provider's datasets (:mod:`airflow_mlops_provider.core.lineage`) for Airflow.

- :func:`operator_lineage` is what the operators' ``get_openlineage_facets_on_complete``
  returns: an ``OperatorLineage`` of OpenLineage datasets with their facets, or None when the
  ``openlineage`` extra is not installed.
- :func:`report_storage_lineage` is for TaskFlow (``@task``) steps, which cannot define that
  method: it hands file and object-storage datasets to Airflow's hook lineage collector, which the
  OpenLineage provider reads for any task that reports no lineage of its own (the Python
  operator's extractor does not). Only URIs a provider can translate get through (``file://``,
  ``s3://``, ``gs://``...); MLflow datasets must come from an operator.

Nothing here imports OpenLineage or the OpenLineage provider at module level, and nothing here
may fail a task: lineage is best effort.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from airflow_mlops_provider.core.lineage import (
    DVC_FACET,
    MODEL_FACET,
    SYMLINKS_FACET,
    TYPE_FACET,
    VERSION_FACET,
    LineageDataset,
    storage_uri,
)

log = logging.getLogger(__name__)


def _facet(key: str, payload: dict[str, Any]) -> Any:
    from openlineage.client.facet_v2 import dataset_type_dataset, dataset_version_dataset, symlinks_dataset

    from airflow_mlops_provider.hooks.lineage_facets import MlopsDvcDatasetFacet, MlopsModelDatasetFacet

    if key == VERSION_FACET:
        return dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(payload["datasetVersion"]))
    if key == TYPE_FACET:
        return dataset_type_dataset.DatasetTypeDatasetFacet(datasetType=payload["datasetType"],
                                                           subType=payload.get("subType"))
    if key == SYMLINKS_FACET:
        return symlinks_dataset.SymlinksDatasetFacet(identifiers=[
            symlinks_dataset.Identifier(namespace=i["namespace"], name=i["name"], type=i["type"])
            for i in payload["identifiers"]])
    if key == DVC_FACET:
        return MlopsDvcDatasetFacet().with_additional_properties(**payload)
    if key == MODEL_FACET:
        return MlopsModelDatasetFacet().with_additional_properties(**payload)
    raise KeyError(f"unknown lineage facet {key!r}")


def to_openlineage(dataset: LineageDataset) -> Any:
    """An OpenLineage ``Dataset`` with the dataset's facets."""
    from openlineage.client.event_v2 import Dataset

    return Dataset(namespace=dataset.namespace, name=dataset.name,
                   facets={key: _facet(key, payload) for key, payload in dataset.facets.items()})


def _unique(datasets: Iterable[LineageDataset | None]) -> list[LineageDataset]:
    seen: dict[tuple[str, str], LineageDataset] = {}
    for dataset in datasets:
        if dataset is not None and dataset.key not in seen:
            seen[dataset.key] = dataset
    return list(seen.values())


def operator_lineage(inputs: Iterable[LineageDataset | None] = (),
                     outputs: Iterable[LineageDataset | None] = ()) -> Any:
    """``OperatorLineage(inputs, outputs)``; None when OpenLineage is not installed."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    return OperatorLineage(inputs=[to_openlineage(d) for d in _unique(inputs)],
                           outputs=[to_openlineage(d) for d in _unique(outputs)])


def report_storage_lineage(owner: Any, inputs: Iterable[LineageDataset | None] = (),
                           outputs: Iterable[LineageDataset | None] = ()) -> None:
    """Report file / object-storage datasets of a TaskFlow step to the hook lineage collector.

    ``owner`` is the object the collector files them under (its "context": the task). A no-op
    when no lineage reader (the OpenLineage provider) is installed; never raises.
    """
    try:
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector
    except ImportError:
        return
    try:
        collector = get_hook_lineage_collector()
        for dataset in _unique(inputs):
            collector.add_input_asset(owner, uri=storage_uri(dataset))
        for dataset in _unique(outputs):
            collector.add_output_asset(owner, uri=storage_uri(dataset))
    except Exception:  # lineage is best effort, never a task failure (logged)
        log.warning("Could not report lineage to the hook lineage collector", exc_info=True)


def safely(build: Any, default: Any = None) -> Any:
    """``build()``, or ``default`` when it raises: lineage state is recorded on the side of a task."""
    try:
        return build()
    except Exception:  # lineage is best effort, never a task failure (logged)
        log.debug("Lineage state not recorded", exc_info=True)
        return default
