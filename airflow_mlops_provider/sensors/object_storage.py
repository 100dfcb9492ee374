"""Wait for the day's input partition: a local file or any ObjectStoragePath URI."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.configuration import conf

from airflow_mlops_provider.hooks.storage import ObjectStorageHook
from airflow_mlops_provider.triggers.object_storage import ObjectStoragePathTrigger
from airflow_mlops_provider.version_compat import BaseSensorOperator


class ObjectStoragePartitionSensor(BaseSensorOperator):
    """Succeed when ``path`` exists; fail with a message naming the path after ``timeout``.

    Deferrable by default when ``[operators] default_deferrable`` is on: the wait then holds no
    worker slot. Returns ``{"path", "size"}``.
    """

    template_fields: Sequence[str] = ("path", "conn_id")
    ui_color = "#d6c8ff"

    def __init__(self, *, path: str, conn_id: str | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.conn_id = conn_id
        self.deferrable = deferrable

    @cached_property
    def storage(self) -> ObjectStorageHook:
        return ObjectStorageHook(conn_id=self.conn_id or None)

    def poke(self, context: Any) -> Any:
        from airflow.sdk.bases.sensor import PokeReturnValue

        self.storage.check(self.path, "path")

        status = self.storage.status(self.path)
        return PokeReturnValue(is_done=status is not None, xcom_value=status)

    def execute(self, context: Any) -> Any:
        self.storage.check(self.path, "path")
        if not self.deferrable:
            return super().execute(context)
        status = self.storage.status(self.path)  # already there: no deferral
        if status is not None:
            return status
        deadline = time.time() + self.timeout if self.timeout else None
        self.defer(
            trigger=ObjectStoragePathTrigger(self.path, self.conn_id, self.poke_interval, deadline),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + 60) if self.timeout else None,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSensorTimeout

        from airflow_mlops_provider.exceptions import DataFileError

        if event.get("status") == "found":
            return {"path": event["path"], "size": event["size"]}
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(f"input partition {event['path']!r} did not appear within "
                                       f"{self.timeout:.0f}s")
        raise DataFileError(f"cannot check input partition {self.path!r}: {event.get('message')}", path=self.path)
