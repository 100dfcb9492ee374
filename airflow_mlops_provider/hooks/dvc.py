"""DvcHook: resolve, read, push and pull DVC-tracked data through ``dvc.api`` / ``dvc.repo.Repo``.

Connection fields (type ``dvc``): ``host`` is the repository (a local path or a git URL),
``schema`` the default rev, ``login``/``password`` the remote's access key id and secret
(passed to DVC as ``remote_config``, never through ``os.environ``); extras ``remote`` (remote
name) and ``remote_config`` (a JSON object of remote options). With no connection configured
the hook uses the local repo under ``MLOPS_HOME/data-repo``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

from airflow_mlops_provider.core.settings import mlops_home
from airflow_mlops_provider.exceptions import ConnectionConfigError, DataVersionError
from airflow_mlops_provider.version_compat import BaseHook


@dataclass(frozen=True)
class DataVersion:
    """A data version: which file, at which git commit, with which DVC content hash."""

    repo: str
    path: str
    rev: str
    commit: str
    md5: str
    size: int | None

    @property
    def id(self) -> str:
        """Short, stable identifier: ``<commit[:12]>:<md5>``."""
        return f"{self.commit[:12]}:{self.md5}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id": self.id}


class DvcHook(BaseHook):
    """Work with a DVC repository.

    :param dvc_conn_id: Airflow connection of type ``dvc``; when the default one does not exist
        the embedded repo under ``MLOPS_HOME`` is used.
    """

    conn_name_attr = "dvc_conn_id"
    default_conn_name = "dvc_default"
    conn_type = "dvc"
    hook_name = "DVC"

    def __init__(self, dvc_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dvc_conn_id = dvc_conn_id

    @classmethod
    def for_repo(cls, repo: str, rev: str | None = None, remote: str | None = None) -> DvcHook:
        """A hook on ``repo`` without an Airflow connection (triggers, scripts)."""
        hook = cls()
        hook.__dict__["settings"] = {"repo": str(repo), "rev": rev, "remote": remote, "remote_config": None}
        return hook

    @cached_property
    def settings(self) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.dvc_conn_id)
        except AirflowNotFoundException:
            if self.dvc_conn_id != self.default_conn_name:
                raise
            return {"repo": str(mlops_home().dvc_repo), "rev": None, "remote": None,
                    "remote_config": None}
        repo = (conn.host or "").strip()
        if not repo:
            raise ConnectionConfigError(
                f"Connection {self.dvc_conn_id!r} has no repository in its host field",
                conn_id=self.dvc_conn_id, field="host")
        extra = conn.extra_dejson
        remote_config = extra.get("remote_config") or {}
        if not isinstance(remote_config, dict):
            raise ConnectionConfigError(
                f"Connection {self.dvc_conn_id!r}: extra.remote_config must be a JSON object, "
                f"got {type(remote_config).__name__}", conn_id=self.dvc_conn_id,
                field="extra.remote_config")
        remote_config = dict(remote_config)
        if conn.login:
            remote_config.setdefault("access_key_id", conn.login)
        if conn.password:
            remote_config.setdefault("secret_access_key", conn.password)
        return {"repo": repo, "rev": conn.schema or None, "remote": extra.get("remote"),
                "remote_config": remote_config or None}

    @property
    def repo(self) -> str:
        return self.settings["repo"]

    @property
    def is_local(self) -> bool:
        return "://" not in self.repo and not self.repo.startswith("git@")

    def get_conn(self) -> str:
        return self.repo

    # -- reading ---------------------------------------------------------------------------
    def _fs(self, rev: str | None):
        from airflow_mlops_provider.core.optional import require

        require("dvc")
        from dvc.api import DVCFileSystem
        from dvc.exceptions import DvcException

        if self.is_local and not (Path(self.repo) / ".dvc").is_dir():
            raise DataVersionError(f"{self.repo!r} is not a DVC repository (no .dvc folder)",
                                   repo=self.repo)
        try:
            return DVCFileSystem(self.repo, rev=rev, remote=self.settings["remote"],
                                 remote_config=self.settings["remote_config"])
        except DvcException as err:
            raise DataVersionError(f"cannot open rev {rev!r} of DVC repo {self.repo!r}: {err}",
                                   repo=self.repo, rev=rev) from err

    def _rev(self, rev: str | None) -> str:
        return rev or self.settings["rev"] or "HEAD"

    def data_version(self, path: str, rev: str | None = None) -> DataVersion:
        """Resolve ``path`` at ``rev`` to its git commit and DVC md5."""
        from dvc.exceptions import DvcException

        rev = self._rev(rev)
        fs = self._fs(rev)
        try:
            info = fs.info(path)
            commit = fs.repo.get_rev()
        except FileNotFoundError as err:
            raise DataVersionError(f"path {path!r} does not exist at rev {rev!r} of DVC repo "
                                   f"{self.repo!r}", repo=self.repo, rev=rev, path=path) from err
        except DvcException as err:
            raise DataVersionError(f"cannot resolve rev {rev!r} of DVC repo {self.repo!r}: {err}",
                                   repo=self.repo, rev=rev, path=path) from err
        dvc_info = info.get("dvc_info")
        md5 = (dvc_info or {}).get("md5")
        if not md5:
            what = "a directory without a DVC hash" if info.get("type") == "directory" else "tracked by git, not by DVC"
            raise DataVersionError(f"path {path!r} at rev {rev!r} of {self.repo!r} is {what}; "
                                   f"track it with `dvc add {path}`", repo=self.repo, rev=rev, path=path)
        return DataVersion(repo=self.repo, path=path, rev=rev, commit=commit, md5=md5,
                           size=info.get("size"))

    @contextlib.contextmanager
    def open(self, path: str, rev: str | None = None, mode: str = "rb") -> Iterator[IO]:
        """Open ``path`` as it was at ``rev`` (streams from the cache or the remote)."""
        version = self.data_version(path, rev)  # clear errors for unknown revs and untracked paths
        import dvc.api
        from dvc.exceptions import FileMissingError, PathMissingError

        try:
            with dvc.api.open(path, repo=self.repo, rev=self._rev(rev), mode=mode,
                              remote=self.settings["remote"],
                              remote_config=self.settings["remote_config"]) as fh:
                yield fh
        except (PathMissingError, FileMissingError) as err:
            # DVC says "does not exist ... neither as a DVC output nor as a Git-tracked file", but the
            # path was just resolved to its md5: what is missing is the data, in cache and remote.
            raise self._missing_data_error(version, err) from err

    def _missing_data_error(self, version: DataVersion, err: Exception) -> DataVersionError:
        """Name what is really missing: the object ``version.md5`` in the cache and in which remote."""
        remote, where = self.settings["remote"], "the remote"
        try:
            fs = self._fs(version.rev)
            cloud = fs.repo.cloud.get_remote(remote)
            name, remote = cloud.name, cloud.fs.unstrip_protocol(cloud.path)
            try:
                reachable = cloud.fs.exists(cloud.path)
                present = reachable and cloud.odb.exists(version.md5)
            except Exception as probe:  # noqa: BLE001 - an unreachable remote is what we report
                reachable, present = False, False
                where = f"remote {name!r} ({remote}), which cannot be reached: {probe}"
            else:
                if not reachable:
                    where = f"remote {name!r} ({remote}), which does not exist or cannot be reached"
                elif present:
                    where = f"remote {name!r} ({remote}), which holds it but could not be read"
                else:
                    where = f"remote {name!r} ({remote}), which does not hold it (was `dvc push` run?)"
        except Exception as probe:  # noqa: BLE001 - no remote configured, or DVC cannot build it
            where = f"any remote: {probe}"
        return DataVersionError(
            f"the data of {version.path!r} at rev {version.rev!r} of DVC repo {self.repo!r} (md5 {version.md5}) "
            f"is not in the local DVC cache nor in {where}", repo=self.repo, rev=version.rev, path=version.path,
            md5=version.md5, remote=str(remote) if remote else None, reason="data_missing", cause=str(err))

    def read_bytes(self, path: str, rev: str | None = None) -> bytes:
        with self.open(path, rev, mode="rb") as fh:
            return fh.read()

    def get_url(self, path: str, rev: str | None = None) -> str:
        """The remote storage URL of ``path`` at ``rev``."""
        import dvc.api

        self.data_version(path, rev)
        return dvc.api.get_url(path, repo=self.repo, rev=self._rev(rev),
                               remote=self.settings["remote"],
                               remote_config=self.settings["remote_config"])

    # -- writing (local repositories) ------------------------------------------------------
    @contextlib.contextmanager
    def _local_repo(self):
        if not self.is_local:
            raise DataVersionError(f"push/pull/commit need a local checkout; {self.repo!r} is remote",
                                   repo=self.repo)
        from airflow_mlops_provider.core.optional import require

        require("dvc")
        from dvc.repo import Repo

        with Repo(self.repo) as repo:
            if self.settings["remote_config"] and self.settings["remote"]:
                # In-memory override: credentials never land in .dvc/config.
                remote = repo.config["remote"].setdefault(self.settings["remote"], {})
                remote.update(self.settings["remote_config"])
            yield repo

    @staticmethod
    def _targets(repo, targets: list[str] | None) -> list[str] | None:
        # DVC resolves relative targets against the process cwd; ours are repo-relative.
        return [str(Path(repo.root_dir) / t) for t in targets] if targets else None

    def push(self, targets: list[str] | None = None) -> int:
        """Push ``targets`` (repo-relative paths; all when None) to the remote."""
        with self._local_repo() as repo:
            return repo.push(targets=self._targets(repo, targets), remote=self.settings["remote"])

    def pull(self, targets: list[str] | None = None) -> dict[str, Any]:
        """Pull ``targets`` (repo-relative paths; all when None) from the remote."""
        with self._local_repo() as repo:
            return repo.pull(targets=self._targets(repo, targets), remote=self.settings["remote"])

    def commit_version(self, path: str, message: str, push: bool = True) -> DataVersion:
        """Track the current content of ``path`` as a new data version: dvc add, git commit, push.

        Idempotent: when the content is unchanged no commit is made and the current version is
        returned.
        """
        with self._local_repo() as repo:
            root = Path(repo.root_dir)
            repo.add(str(root / path))  # DVC resolves relative paths against the cwd
            scm = repo.scm
            gitignore = root / Path(path).parent / ".gitignore"
            scm.add([str(root / f"{path}.dvc")] + ([str(gitignore)] if gitignore.exists() else []))
            if scm.is_dirty(untracked_files=False):
                scm.commit(message)
            if push:
                repo.push(targets=self._targets(repo, [path]), remote=self.settings["remote"])
        return self.data_version(path, "HEAD")

    def test_connection(self) -> tuple[bool, str]:
        try:
            fs = self._fs(self._rev(None))
            fs.ls("/", detail=False)
            commit = fs.repo.get_rev()
        except Exception as err:  # noqa: BLE001 - the UI wants a message
            return False, f"DVC repo {self.repo!r} is not usable: {str(err).splitlines()[0][:300]}"
        return True, f"DVC repo {self.repo!r} at {commit[:12]}"


def init_local_repo(path: Path, remote: Path, remote_name: str = "local") -> Path:
    """Create a git + DVC repository at ``path`` with a local-folder default remote (idempotent)."""
    import subprocess

    from airflow_mlops_provider.core.optional import require

    require("dvc")
    from dvc.repo import Repo

    path, remote = Path(path), Path(remote)
    if (path / ".dvc").is_dir():
        return path
    path.mkdir(parents=True, exist_ok=True)
    remote.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    with Repo.init(str(path)) as repo:
        with repo.config.edit() as conf:
            conf["remote"][remote_name] = {"url": str(remote)}
            conf["core"]["remote"] = remote_name
            conf["core"]["autostage"] = True  # `dvc add` stages its .dvc files in git
        repo.scm.add([str(path / ".dvc"), str(path / ".dvcignore")])
        repo.scm.commit("Initialise DVC with a local remote")
    return path
