"""Resolve a DVC-tracked data set to its version and materialise that exact version locally."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_mlops_provider.core.settings import mlops_home
from airflow_mlops_provider.hooks.dvc import DvcHook
from airflow_mlops_provider.results import DataVersionResult
from airflow_mlops_provider.version_compat import BaseOperator


class DvcGetDataVersionOperator(BaseOperator):
    """Resolve ``path`` at ``rev`` to (git commit, DVC md5) and copy that version to local disk.

    The copy lives under ``MLOPS_HOME/data/versions/<md5>/`` — content-addressed, so reruns and
    other DAG runs reuse it. Returns the data version plus ``local_path``.

    :param path: path of the tracked file inside the DVC repository.
    :param rev: git rev (branch, tag, sha); default: the connection's rev, else HEAD.
    :param dvc_conn_id: connection of type ``dvc``.
    :param materialize: copy the file locally (set False to only resolve the version).
    """

    template_fields: Sequence[str] = ("path", "rev", "dvc_conn_id")
    ui_color = "#945dd6"

    def __init__(self, *, path: str, rev: str | None = None, dvc_conn_id: str = DvcHook.default_conn_name,
                 materialize: bool = True, **kwargs: Any) -> None:
        # Each key of the returned dict is also its own XCom, so `op.output["key"]` works.
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.path = path
        self.rev = rev
        self.dvc_conn_id = dvc_conn_id
        self.materialize = materialize

    @cached_property
    def hook(self) -> DvcHook:
        return DvcHook(dvc_conn_id=self.dvc_conn_id)

    def execute(self, context: Any) -> DataVersionResult:
        from pathlib import PurePosixPath

        from airflow_mlops_provider.core.files import atomic_path, md5_file
        from airflow_mlops_provider.exceptions import PathNotAllowedError

        inside = PurePosixPath(str(self.path))
        if not str(self.path).strip() or inside.is_absolute() or ".." in inside.parts or "://" in str(self.path):
            raise PathNotAllowedError(f"path {self.path!r} must be a relative path inside the DVC repository "
                                      "(no leading '/', no '..', no URI)", argument="path", path=str(self.path))
        version = self.hook.data_version(self.path, self.rev or None)
        result = version.to_dict()
        self.log.info("Data version of %s at %s: commit %s md5 %s", self.path, version.rev,
                      version.commit, version.md5)
        if self.materialize:
            target = mlops_home().data_dir / "versions" / version.md5 / Path(self.path).name
            if target.exists() and md5_file(target) == version.md5:
                self.log.info("Reusing the local copy at %s", target)
            else:
                with self.hook.open(self.path, version.commit) as src, atomic_path(target) as tmp:
                    with open(tmp, "wb") as dst:
                        while block := src.read(1 << 20):
                            dst.write(block)
                    got = md5_file(tmp)
                    if got != version.md5:
                        raise OSError(f"copy of {self.path}@{version.commit[:12]} has md5 {got}, "
                                      f"expected {version.md5}")
            result["local_path"] = str(target)
        self._lineage_state = result
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input: the DVC-tracked file at its version. Output: the local copy, with the same version."""
        from airflow_mlops_provider.core.lineage import dvc_dataset, storage_dataset
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        version = getattr(self, "_lineage_state", None)
        if not version:
            return operator_lineage()
        tracked = dvc_dataset(version)
        copy = (storage_dataset(version["local_path"], **(tracked.facets if tracked else {}))
                if version.get("local_path") else None)
        return operator_lineage(inputs=[tracked], outputs=[copy])
