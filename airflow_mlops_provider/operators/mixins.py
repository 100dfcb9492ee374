"""Hook plumbing declared once for the operators (as the amazon provider's ``AwsBaseOperator``).

Each mixin is a ``BaseOperator`` so that Airflow applies ``default_args`` to its connection
argument (``default_args={"mlflow_conn_id": "mlflow_prod"}`` reaches every operator that uses it).
An operator lists the connection ids in its ``template_fields``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.hooks.storage import ObjectStorageHook
from airflow_mlops_provider.version_compat import BaseOperator


class MlflowHookMixin(BaseOperator):
    """``mlflow_conn_id`` (the MLflow connection; list it in ``template_fields``) and a cached
    :class:`~airflow_mlops_provider.hooks.mlflow.MlflowHook` as ``hook``."""

    def __init__(self, *, mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)


class ObjectStorageMixin(BaseOperator):
    """``conn_id`` (the object store's Airflow connection; None: the scheme's default) and a cached
    :class:`~airflow_mlops_provider.hooks.storage.ObjectStorageHook` as ``storage``."""

    def __init__(self, *, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    @cached_property
    def storage(self) -> ObjectStorageHook:
        return ObjectStorageHook(conn_id=self.conn_id or None)
