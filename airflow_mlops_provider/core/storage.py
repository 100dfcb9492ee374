"""Object-store errors named for what they are: a denied access is not a missing file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def storage_errors(path: str, conn_id: str | None) -> Iterator[None]:
    """Re-raise a refusal from the store (S3 ``AccessDenied``, expired or invalid keys, ...) as a
    ``PermissionError`` naming the path and the connection; other errors pass through."""
    try:
        yield
    except PermissionError as err:
        detail = (str(err).splitlines() or [type(err).__name__])[0][:300]
        raise PermissionError(f"access to {path!r} was denied (connection {conn_id or 'default'!r}): "
                              f"{detail}") from err
