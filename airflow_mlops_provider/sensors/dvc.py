"""Wait for a DVC-tracked file to get a new data version."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.configuration import conf

from airflow_mlops_provider.hooks.dvc import DvcHook
from airflow_mlops_provider.triggers.dvc import DvcNewDataVersionTrigger
from airflow_mlops_provider.version_compat import BaseSensorOperator


class DvcNewDataVersionSensor(BaseSensorOperator):
    """Succeed when ``path`` has a data version whose md5 differs from ``since_md5``.

    Returns the new data version (commit, md5, ...). Deferrable: the wait runs in the
    triggerer.
    """

    template_fields: Sequence[str] = ("path", "rev", "since_md5", "dvc_conn_id")
    ui_color = "#945dd6"

    def __init__(self, *, path: str, since_md5: str, rev: str | None = None,
                 dvc_conn_id: str = DvcHook.default_conn_name,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.since_md5 = since_md5
        self.rev = rev
        self.dvc_conn_id = dvc_conn_id
        self.deferrable = deferrable

    def poke(self, context: Any) -> Any:
        from airflow.sdk.bases.sensor import PokeReturnValue

        version = DvcHook(self.dvc_conn_id).data_version(self.path, self.rev or None)
        changed = version.md5 != self.since_md5
        return PokeReturnValue(is_done=changed, xcom_value=version.to_dict() if changed else None)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        hook = DvcHook(self.dvc_conn_id)
        version = hook.data_version(self.path, self.rev or None)
        if version.md5 != self.since_md5:
            return version.to_dict()
        self.defer(
            # The trigger has no connection: hand it the rev actually checked, the connection's
            # default included, so it does not fall back to HEAD.
            trigger=DvcNewDataVersionTrigger(repo=hook.repo, path=self.path,
                                             rev=version.rev, since_md5=self.since_md5,
                                             poll_interval=self.poke_interval),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") != "new_version":
            from airflow_mlops_provider.exceptions import DataVersionError

            raise DataVersionError(f"unexpected event from the DVC trigger for {self.path!r}: {event}",
                                   path=self.path)
        return {k: v for k, v in event.items() if k != "status"}
