"""One way to open storage: every partition, label file, baseline, output and report goes through here.

:class:`ObjectStorageHook` wraps ``airflow.sdk.ObjectStoragePath`` with a connection id (``None``:
the scheme's default connection, e.g. ``aws_default`` for ``s3://``). It adds what every caller
needs and none should redo: the allowed-roots check (:func:`airflow_mlops_provider.paths.require_allowed`),
refusals from the store named for what they are (:func:`~airflow_mlops_provider.core.storage.storage_errors`),
Parquet opened for streaming (local files by path, remote objects through a file handle), a
bounded local copy when a library needs a real file, and atomic publishing (a local file appears
whole through temp + rename; an object through one upload).

Local paths (``/x``, ``file:///x``) are used in place: no copy, no connection.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.exceptions import DataFileError
from airflow_mlops_provider.version_compat import BaseHook

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import ObjectStoragePath

#: Default limit of one local copy of a remote object (``[mlops] max_local_copy_bytes`` or the
#: ``MLOPS_MAX_LOCAL_COPY_BYTES`` environment variable override it).
DEFAULT_MAX_LOCAL_COPY_BYTES = 20 << 30
MAX_LOCAL_COPY_ENV = "MLOPS_MAX_LOCAL_COPY_BYTES"
_COPY_CHUNK = 8 << 20


class LocalCopyTooLargeError(DataFileError):
    """A remote object is larger than the local-copy limit (or the free disk space)."""


def is_remote(uri: object) -> bool:
    """True for an object-store URI (``s3://``, ``gs://``, ...); False for a local path or ``file://``."""
    return "://" in str(uri) and not str(uri).startswith("file://")


def local_file(uri: object) -> Path:
    """The local path of a local ``uri`` (``/x`` or ``file:///x``)."""
    return Path(str(uri).removeprefix("file://"))


def configured_copy_limit() -> int:
    """The local-copy limit in bytes: the environment, else Airflow's ``[mlops]`` section, else the default."""
    value = os.environ.get(MAX_LOCAL_COPY_ENV, "").strip()
    if not value:
        try:
            from airflow.configuration import conf

            value = str(conf.get("mlops", "max_local_copy_bytes", fallback="") or "").strip()
        except Exception:  # noqa: BLE001 - no Airflow config here: the default applies
            value = ""
    if not value:
        return DEFAULT_MAX_LOCAL_COPY_BYTES
    try:
        limit = int(value)
    except ValueError as err:
        raise ValueError(f"max_local_copy_bytes must be a whole number of bytes, got {value!r}") from err
    if limit < 1:
        raise ValueError(f"max_local_copy_bytes must be >= 1, got {limit}")
    return limit


class ObjectStorageHook(BaseHook):
    """Read and publish files on local disk or any ``ObjectStoragePath`` store, through one connection.

    :param conn_id: the Airflow connection of the store; None: the scheme's default connection.
    :param max_local_copy_bytes: refuse to copy a larger remote object to local disk; None: the
        configured limit (:func:`configured_copy_limit`).
    """

    conn_name_attr = "conn_id"
    default_conn_name = None  # ObjectStoragePath picks the scheme's default (aws_default for s3://)
    hook_name = "Object storage"

    def __init__(self, conn_id: str | None = None, *, max_local_copy_bytes: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or None
        self.max_local_copy_bytes = max_local_copy_bytes

    # -- paths -------------------------------------------------------------------------------
    @staticmethod
    def check(uri: object, what: str) -> str:
        """The allowed-roots check; a refused path fails the task at once (no retries)."""
        from airflow_mlops_provider.paths import require_allowed

        return require_allowed(uri, what)

    def path(self, uri: str) -> ObjectStoragePath:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(str(uri), conn_id=self.conn_id)

    def errors(self, uri: object) -> contextlib.AbstractContextManager[None]:
        """A store's refusal re-raised as ``PermissionError`` naming ``uri`` and the connection."""
        from airflow_mlops_provider.core.storage import storage_errors

        return storage_errors(str(uri), self.conn_id)

    # -- reading -----------------------------------------------------------------------------
    def status(self, uri: str) -> dict[str, Any] | None:
        """``{"path", "size"}`` when ``uri`` exists as a file, else None."""
        if not is_remote(uri):
            local = local_file(uri)
            return {"path": uri, "size": local.stat().st_size} if local.is_file() else None
        target = self.path(uri)
        with self.errors(uri):
            if target.is_file():
                return {"path": uri, "size": target.stat().st_size}
        return None

    @contextlib.contextmanager
    def open(self, uri: str, mode: str = "rb") -> Iterator[Any]:
        """A binary file object for ``uri``; a missing file is a ``FileNotFoundError`` naming it."""
        if not is_remote(uri):
            with open(local_file(uri), mode) as handle:
                yield handle
            return
        with self.errors(uri), self.path(uri).open(mode) as handle:
            yield handle

    def local_copy(self, uri: str, workdir: Path) -> Path:
        """A local file with ``uri``'s bytes, for a library that needs a path: ``uri`` itself when
        local, else a copy in ``workdir`` of at most the local-copy limit (checked before and
        while copying, and against the free space in ``workdir``)."""
        if not is_remote(uri):
            return local_file(uri)
        limit = self.max_local_copy_bytes or configured_copy_limit()
        src = self.path(uri)
        with self.errors(uri):
            size = src.stat().st_size
        if size > limit:
            raise LocalCopyTooLargeError(
                f"{uri!r} is {size} bytes, more than the local-copy limit of {limit} bytes; raise "
                f"[mlops] max_local_copy_bytes ({MAX_LOCAL_COPY_ENV}) or split the partition",
                path=uri, size=size, limit=limit)
        free = shutil.disk_usage(workdir).free
        if size > free:
            raise LocalCopyTooLargeError(f"{uri!r} is {size} bytes, but {workdir} has {free} bytes free",
                                         path=uri, size=size, free=free)
        target = workdir / (Path(src.path).name or "object")
        copied = 0
        with self.errors(uri), src.open("rb") as fh, open(target, "wb") as out:
            while block := fh.read(_COPY_CHUNK):
                copied += len(block)
                if copied > limit:  # the object grew while being copied
                    raise LocalCopyTooLargeError(f"{uri!r} grew past the local-copy limit of {limit} bytes "
                                                 "while being copied", path=uri, limit=limit)
                out.write(block)
        return target

    @contextlib.contextmanager
    def parquet(self, uri: str) -> Iterator[Any]:
        """A ``pyarrow.parquet.ParquetFile`` for streaming reads (bounded memory); a missing or
        unreadable file is a :class:`~airflow_mlops_provider.core.scoring.ScoringInputError` naming it."""
        from airflow_mlops_provider.core.scoring import ScoringInputError, open_parquet

        if not is_remote(uri):
            yield open_parquet(local_file(uri), name=str(uri))
            return
        with contextlib.ExitStack() as stack:
            try:
                handle = stack.enter_context(self.open(uri, "rb"))
            except FileNotFoundError as err:
                raise ScoringInputError(f"input partition {str(uri)!r} does not exist", path=str(uri)) from err
            yield open_parquet(handle, name=str(uri))

    def parquet_columns(self, uri: str) -> list[str]:
        """The column names of a Parquet file (its footer only)."""
        with self.parquet(uri) as pf:
            return list(pf.schema_arrow.names)

    def read_frame(self, uri: str, file_format: str, compression: str | None = None) -> pd.DataFrame:
        """A CSV or Parquet file as a DataFrame; a missing file is a ``FileNotFoundError`` naming it."""
        from airflow_mlops_provider.core.tables import read_frame

        if not is_remote(uri):
            if not local_file(uri).exists():
                raise FileNotFoundError(f"Data file {uri!r} does not exist")
            return read_frame(str(local_file(uri)), file_format, name=uri, compression=compression)
        source = self.path(uri)
        with self.errors(uri):
            if not source.exists():
                raise FileNotFoundError(f"Data file {uri!r} does not exist")
            with source.open("rb") as handle:
                return read_frame(handle, file_format, name=uri, compression=compression)

    # -- publishing --------------------------------------------------------------------------
    @staticmethod
    def local_target(uri: str, workdir: Path, name: str = "output") -> Path:
        """Where to write ``uri``'s content before :meth:`publish`: the final path when local (the
        writer writes it atomically, e.g. with :func:`~airflow_mlops_provider.core.files.atomic_path`),
        else a file in ``workdir``."""
        return workdir / name if is_remote(uri) else local_file(uri)

    def publish(self, local: Path, uri: str) -> str:
        """Publish the complete file ``local`` at ``uri``: nothing when it already is ``uri``'s local
        path, a temp copy + rename for another local path, one upload for an object store."""
        if not is_remote(uri):
            final = local_file(uri)
            if Path(local).resolve() != final.resolve():
                from airflow_mlops_provider.core.files import atomic_path

                with atomic_path(final) as tmp:
                    shutil.copyfile(local, tmp)
            return str(uri)
        from airflow.sdk import ObjectStoragePath

        # One PUT: an object store shows the object whole or not at all.
        with self.errors(uri):
            ObjectStoragePath(Path(local).resolve().as_uri()).copy(self.path(uri))
        return str(uri)

    def publish_bytes(self, data: bytes, uri: str) -> str:
        """Publish ``data`` at ``uri`` whole; returns the local file's ``file://`` URI, or ``uri``."""
        if not is_remote(uri):
            from airflow_mlops_provider.core.files import write_bytes_atomic

            return write_bytes_atomic(local_file(uri), data).resolve().as_uri()
        with self.errors(uri):
            self.path(uri).write_bytes(data)
        return str(uri)

    def remove(self, uri: str) -> None:
        """Withdraw a published file (missing is fine)."""
        if not is_remote(uri):
            local_file(uri).unlink(missing_ok=True)
            return
        target = self.path(uri)
        with self.errors(uri):
            if target.exists():
                target.unlink()
