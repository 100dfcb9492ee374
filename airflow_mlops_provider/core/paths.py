"""Allowed roots: where the provider's operators may read inputs and write outputs.

Anyone who may trigger a DAG can set its Params (``input_path``, ``output_path``, ...), so every
operator that reads or writes a file checks the rendered path here first, in the task, not only
in the Param schema. The roots come from Airflow's config (read by
:mod:`airflow_mlops_provider.paths`, which operators call; this module stays free of Airflow)::

    [mlops]
    allowed_roots = /data/ml, s3://ml-bucket/scores, s3://landing

(``AIRFLOW__MLOPS__ALLOWED_ROOTS`` in the environment; ``MLOPS_ALLOWED_ROOTS`` works too), a
comma-separated list of local folders and object-store URIs. ``MLOPS_HOME`` is always allowed
(the pipelines stage shards, copy data versions and write reports there).

A local path is allowed when, with ``..`` and symlinks resolved, it lies inside a local root (so
neither ``MLOPS_HOME/../../etc/x`` nor a symlink inside ``MLOPS_HOME`` pointing out of it
passes). A URI is allowed when its scheme and bucket match a root's and its key starts with the
root's prefix (at a ``/`` boundary); keys with ``..`` segments are refused outright.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from airflow_mlops_provider.exceptions import PathNotAllowedError

CONFIG_SECTION, CONFIG_KEY = "mlops", "allowed_roots"


@dataclass(frozen=True)
class Root:
    scheme: str  # "" for a local folder
    location: str  # the resolved folder, or the bucket
    prefix: str = ""  # key prefix inside the bucket, without leading/trailing "/"

    def __str__(self) -> str:
        if not self.scheme:
            return self.location
        return f"{self.scheme}://{self.location}" + (f"/{self.prefix}" if self.prefix else "")


def _is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _parse_root(raw: str) -> Root:
    raw = raw.strip()
    if _is_uri(raw):
        parts = urlsplit(raw)
        if not parts.netloc:
            raise PathNotAllowedError(f"allowed root {raw!r} has no bucket", root=raw)
        return Root(parts.scheme.lower(), parts.netloc, parts.path.strip("/"))
    local = raw.removeprefix("file://")
    if not os.path.isabs(os.path.expanduser(local)):
        raise PathNotAllowedError(f"allowed root {raw!r} is not an absolute path", root=raw)
    return Root("", os.path.realpath(os.path.expanduser(local)))


def allowed_roots(configured: str = "") -> list[Root]:
    """``MLOPS_HOME`` (always: the pipelines stage, copy and report there) plus the roots in
    ``configured`` (the comma-separated config value)."""
    from airflow_mlops_provider.core.settings import mlops_home

    home = Root("", os.path.realpath(mlops_home().root))
    configured = [_parse_root(r) for r in configured.split(",") if r.strip()]
    return [home, *(r for r in configured if r != home)]


def check_path(path: object, what: str, *, roots: list[Root]) -> str:
    """Return ``path`` (stripped) when it lies inside an allowed root; else raise.

    ``what`` names the argument in the message (``"input_path"``, ``"output_path"`` ...).
    Raises :class:`~airflow_mlops_provider.exceptions.PathNotAllowedError` naming the path and
    the allowed roots.
    """
    text = "" if path is None else str(path)
    if not text.strip():
        raise PathNotAllowedError(f"{what} is empty", argument=what)
    # What is checked must be exactly what the operator will open: no surrounding blanks, no
    # control characters, and (in a URI) no '?' or '#', which URL parsing would cut off.
    if text != text.strip() or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise PathNotAllowedError(f"{what} {text!r} has leading/trailing blanks or control characters",
                                  argument=what, path=text)
    shown = ", ".join(str(r) for r in roots)
    hint = (f"allowed roots: {shown} (set [{CONFIG_SECTION}] {CONFIG_KEY}, e.g. "
            f"AIRFLOW__{CONFIG_SECTION.upper()}__{CONFIG_KEY.upper()}, to change them)")
    if _is_uri(text):
        if "?" in text or "#" in text:
            raise PathNotAllowedError(f"{what} {text!r} contains '?' or '#'; object keys with them are not "
                                      "accepted", argument=what, path=text)
        parts = urlsplit(text)
        key = parts.path.strip("/")
        if ".." in key.split("/"):
            raise PathNotAllowedError(f"{what} {text!r} contains a '..' segment; {hint}", argument=what,
                                      path=text, allowed_roots=shown)
        for root in roots:
            if root.scheme == parts.scheme.lower() and root.location == parts.netloc and (
                    not root.prefix or key == root.prefix or key.startswith(root.prefix + "/")):
                return text
        raise PathNotAllowedError(f"{what} {text!r} is outside the allowed roots; {hint}", argument=what,
                                  path=text, allowed_roots=shown)
    raw_local = os.path.expanduser(text.removeprefix("file://"))
    if not os.path.isabs(raw_local):
        # Relative to what? The worker's working directory differs from host to host.
        raise PathNotAllowedError(f"{what} {text!r} is a relative path; give an absolute path or a URI; {hint}",
                                  argument=what, path=text, allowed_roots=shown)
    local = os.path.realpath(raw_local)
    for root in roots:
        if not root.scheme and Path(local).is_relative_to(root.location):
            return text
    raise PathNotAllowedError(f"{what} {text!r} (resolved: {local}) is outside the allowed roots; {hint}",
                              argument=what, path=text, resolved=local, allowed_roots=shown)
