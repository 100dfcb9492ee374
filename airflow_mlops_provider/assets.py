"""Asset builders shared by DAGs: one naming scheme for a model's lifecycle events.

Assets are identified by name and URI, so DAG files that build them with the same arguments
refer to the same Asset.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from airflow_mlops_provider.triggers.dvc import DvcNewDataVersionTrigger


def drift_detected(model_name: str) -> Asset:
    """Emitted by the batch DAG when the drift policy fires for ``model_name``."""
    return Asset(name=f"mlops_drift_detected__{model_name}", uri=f"mlops://drift/{model_name}")


def performance_degraded(model_name: str) -> Asset:
    """Emitted by the performance-monitoring DAG when the decay policy fires for ``model_name``'s champion."""
    return Asset(name=f"mlops_performance_degraded__{model_name}", uri=f"mlops://performance/{model_name}")


def champion_changed(model_name: str) -> Asset:
    """Emitted when ``@champion`` of ``model_name`` moves."""
    return Asset(name=f"mlops_champion_changed__{model_name}", uri=f"mlops://models/{model_name}/champion")


def dvc_data(name: str, repo: str, path: str, state_path: str | None = None, rev: str | None = None,
             poll_interval: float = 60.0) -> Asset:
    """A DVC-tracked file as an Asset whose watcher emits one event per new data version."""
    return Asset(
        name=name,
        uri=f"mlops://datasets/{name}",
        watchers=[AssetWatcher(
            name=f"{name}__dvc_version",
            trigger=DvcNewDataVersionTrigger(repo=repo, path=path, rev=rev, state_path=state_path,
                                             poll_interval=poll_interval),
        )],
    )
