"""Wait for a path (local or any ObjectStoragePath URI) to exist, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def path_status(path: str, conn_id: str | None) -> dict[str, Any] | None:
    """``{"path", "size"}`` when ``path`` exists as a file, else None."""
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(path, conn_id=conn_id)
    if target.is_file():
        return {"path": path, "size": target.stat().st_size}
    return None


class ObjectStoragePathTrigger(BaseTrigger):
    """Poll until ``path`` exists; yields ``found`` with its size, or ``timeout`` at ``deadline``.

    :param deadline: a UNIX timestamp after which the trigger gives up (None: never).
    """

    def __init__(self, path: str, conn_id: str | None = None, poll_interval: float = 30.0,
                 deadline: float | None = None) -> None:
        super().__init__()
        self.path = path
        self.conn_id = conn_id
        self.poll_interval = poll_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"path": self.path, "conn_id": self.conn_id, "poll_interval": self.poll_interval,
                 "deadline": self.deadline})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                status = await asyncio.to_thread(path_status, self.path, self.conn_id)
            except Exception as err:  # noqa: BLE001 - reported to the task, which raises it clearly
                yield TriggerEvent({"status": "error", "path": self.path, "message": str(err)})
                return
            if status is not None:
                yield TriggerEvent({"status": "found", **status})
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "path": self.path})
                return
            await asyncio.sleep(self.poll_interval)
