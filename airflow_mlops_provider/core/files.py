"""Atomic file writes: nothing is visible at the final path until it is complete."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from airflow_mlops_provider.exceptions import OutputSpaceError


def _read_umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


_UMASK = _read_umask()


def _temp_prefix(final: Path) -> str:
    return f".{final.name}."


def remove_orphaned_temps(final: Path) -> list[Path]:
    """Delete temp files a killed writer left beside ``final``; return what was removed.

    A live writer holds an exclusive ``flock`` on its temp file for as long as it writes; the
    kernel drops it when the process dies (even by ``kill -9``). A temp file whose lock can be
    taken therefore has no writer left, except one created a moment ago and still empty, which
    is left alone.
    """
    import fcntl
    import time

    removed = []
    try:
        candidates = [p for p in final.parent.iterdir()
                      if p.name.startswith(_temp_prefix(final)) and p.name.endswith(".tmp")]
    except FileNotFoundError:
        return removed
    for path in candidates:
        try:
            # O_RDWR: on NFS flock is emulated with fcntl locks, which need a writable descriptor.
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue  # gone, or not ours to open: leave it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            info = os.fstat(fd)
            if info.st_size > 0 or time.time() - info.st_mtime > 2:
                path.unlink(missing_ok=True)
                removed.append(path)
        except OSError:
            continue  # a live writer holds the lock (or the store cannot lock): leave it
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` only on success.

    Temp files left by an earlier writer that was killed are removed first; this writer's own
    temp file is locked (``flock``) while it writes, so a concurrent cleaner leaves it alone.
    """
    import fcntl

    final.parent.mkdir(parents=True, exist_ok=True)
    remove_orphaned_temps(final)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(final), suffix=".tmp", dir=final.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)
    # mkstemp makes 0600 files; outputs get the permissions any new file would (umask).
    os.fchmod(fd, 0o666 & ~_UMASK)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, final)
    except OSError as err:
        if not is_out_of_space(err):
            raise
        raise OutputSpaceError(
            f"No space left on device while writing {str(final)!r} (temporary file {tmp_path.name!r}, "
            f"removed); {'the previous file there is unchanged' if final.exists() else 'nothing was published'}",
            path=str(final), errno=errno.ENOSPC, cause=str(err)) from err
    finally:
        tmp_path.unlink(missing_ok=True)
        os.close(fd)


def is_out_of_space(err: BaseException) -> bool:
    """True for a full disk or quota, also when a library (pyarrow) re-raised it without an errno."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(err) or "Disk quota exceeded" in str(err)


def write_bytes_atomic(final: Path, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return final


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
