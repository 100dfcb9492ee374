"""Notice a new DVC data version: for AssetWatchers (data-triggered retraining) and sensors."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent


def resolve_version(repo: str, path: str, rev: str | None) -> dict[str, Any]:
    """The data version of ``path`` at ``rev`` in ``repo`` as a JSON-safe dict."""
    from airflow_mlops_provider.hooks.dvc import DvcHook

    hook = DvcHook.for_repo(repo, rev=rev)
    return hook.data_version(path, rev).to_dict()


class DvcNewDataVersionTrigger(BaseEventTrigger):
    """Fire once when ``path`` in a DVC repo gets a data version other than the last one seen.

    Edge-triggered: it compares content hashes (md5), so a commit that leaves the data
    unchanged does not fire, and one version fires once. The last version seen is
    ``since_md5`` when given; else the one recorded in ``state_path`` (written before the
    event is yielded, so a restarted triggerer does not fire again for it); else the version
    found at start, which is taken as known.

    :param repo: local path or git URL of the DVC repository.
    :param path: tracked file inside the repository.
    :param rev: branch or tag to follow (None: HEAD of the default branch).
    """

    def __init__(self, repo: str, path: str, rev: str | None = None, since_md5: str | None = None,
                 state_path: str | None = None, poll_interval: float = 60.0) -> None:
        super().__init__()
        self.repo = repo
        self.path = path
        self.rev = rev
        self.since_md5 = since_md5
        self.state_path = state_path
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"repo": self.repo, "path": self.path, "rev": self.rev, "since_md5": self.since_md5,
                 "state_path": self.state_path, "poll_interval": self.poll_interval})

    def _load_state(self) -> str | None:
        if self.state_path and Path(self.state_path).is_file():
            return json.loads(Path(self.state_path).read_text()).get("md5")
        return None

    def _save_state(self, version: dict[str, Any]) -> None:
        if not self.state_path:
            return
        target = Path(self.state_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(version, sort_keys=True))
        os.replace(tmp, target)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        known = self.since_md5 or await asyncio.to_thread(self._load_state)
        while True:
            try:
                version = await asyncio.to_thread(resolve_version, self.repo, self.path, self.rev)
            except Exception as err:  # noqa: BLE001 - a repo being pushed to may be briefly unreadable
                self.log.warning("DVC version of %s in %s not readable yet: %s", self.path, self.repo, err)
                await asyncio.sleep(self.poll_interval)
                continue
            if known is None:
                known = version["md5"]
                await asyncio.to_thread(self._save_state, version)
                self.log.info("Watching %s in %s from version %s", self.path, self.repo, version["id"])
            elif version["md5"] != known:
                await asyncio.to_thread(self._save_state, version)
                self.log.info("New data version of %s: %s (was md5 %s)", self.path, version["id"], known)
                yield TriggerEvent({"status": "new_version", "previous_md5": known, **version})
                return
            await asyncio.sleep(self.poll_interval)
