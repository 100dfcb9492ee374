"""Scoring backends: the seam between the batch pipeline and whatever engine scores a partition.

Every backend keeps the same promises, so the builder, drift and metrics never depend on it:

* the model version is pinned upstream (``resolve_champion``, once per run) and handed in;
* every output row carries ``model_version`` and ``model_run_id``;
* the output partition appears whole or not at all, with a manifest
  (:class:`~airflow_mlops_provider.results.ScoringManifest`) committed in the same step;
* the step the builder wires drift to returns a
  :class:`~airflow_mlops_provider.results.CommitResult` (output path, rows, version, run id,
  output columns, manifest): drift and the metrics read those facts, not the backend.

A backend is an object with a ``name``, ``tasks(...)`` (adds its tasks to the DAG being defined
and returns them, see :class:`ScoringTasks`) and ``score(job, storage)`` (scores one input file, or
part of it, into one output file inside a task, see :class:`ScoringJob`). ``local`` (streaming
Arrow batches, sharded over mapped tasks) is built in; another package registers its own through
the entry-point group ``airflow_mlops_provider.scoring_backends`` (``name = "module:attribute"``,
the attribute a backend object or a class to instantiate), or a test with
:func:`register_scoring_backend`. The batch builder and ``MlflowBatchScoreOperator`` select one by
name (``scoring_backend="local"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

ENTRY_POINT_GROUP = "airflow_mlops_provider.scoring_backends"
DEFAULT_BACKEND = "local"
MANIFEST_KEY = "mlops.manifest"  # the key of the manifest in the output's Parquet footer
_BUILTIN = {"local": "airflow_mlops_provider.scoring.local:LocalScoringBackend"}
_REGISTERED: dict[str, Any] = {}


@dataclass(frozen=True)
class ScoringJob:
    """One scoring step: a resolved model version, its scorer, an input and an output.

    ``scorer(frame) -> {column: values}`` carries the task type's output columns (``scorer.columns``,
    name -> Arrow type); ``constants`` (the version and its run id) are written on every row.
    """

    model_name: str
    model_version: str
    model_run_id: str
    task_type: str
    scorer: Callable[[Any], Any]
    features: Sequence[str]
    input_path: str
    output_path: str
    key_columns: Sequence[str] = ()
    expected_types: dict[str, str] | None = None
    row_groups: Sequence[int] | None = None
    chunk_rows: int = 100_000
    threads: int | None = None  # thread limit of the model's libraries (core/threads.py); None: none
    shadow_scorer: Callable[[Any], Any] | None = None
    shadow_threshold: float | None = None
    shadow_labels: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def constants(self) -> dict[str, str]:
        return {"model_version": str(self.model_version), "model_run_id": self.model_run_id}


@dataclass
class ScoringTasks:
    """What a backend's ``tasks()`` added: ``first`` runs after the input is validated; ``commit``'s
    result is the :class:`~airflow_mlops_provider.results.CommitResult`; ``score`` is the scoring
    task (or mapped task) for callers that want it."""

    first: Any
    score: Any
    commit: Any


@runtime_checkable
class ScoringBackend(Protocol):
    name: str

    def tasks(self, *, model_name: str, model_version: Any, input_path: str, output_path: str,
              expected_rows: Any, key_columns: Sequence[str], shadow_alias: str, shards: Any) -> ScoringTasks:
        """Add the scoring tasks to the DAG being defined (ids ``plan_shards``/``score``/``commit``
        for ``local``; a backend picks its own, ``commit`` at the end)."""

    def score(self, job: ScoringJob, storage: Any) -> Any:
        """Score ``job`` (inside a task) through ``storage`` (an
        :class:`~airflow_mlops_provider.hooks.storage.ObjectStorageHook`); returns
        :class:`~airflow_mlops_provider.core.scoring.ScoreStats`."""


def register_scoring_backend(backend: Any) -> Any:
    """Register ``backend`` under its ``name`` (a later registration of the same name replaces it)."""
    if not isinstance(backend, ScoringBackend):
        raise TypeError(f"{backend!r} is not a scoring backend: it needs a name, tasks() and score()")
    _REGISTERED[backend.name] = backend
    return backend


def _load(spec: str) -> Any:
    import importlib

    module, _, attribute = spec.partition(":")
    value = getattr(importlib.import_module(module), attribute)
    return value() if isinstance(value, type) else value


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def scoring_backend_names() -> list[str]:
    """Every backend that can be selected: built in, registered, or found by entry point."""
    return sorted({*_BUILTIN, *_REGISTERED, *_entry_points()})


def get_scoring_backend(name: str) -> Any:
    """The backend called ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    name = str(name or DEFAULT_BACKEND)
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        return register_scoring_backend(_load(_BUILTIN[name]))
    found = _entry_points().get(name)
    if found is None:
        raise ValueError(f"unknown scoring backend {name!r}; known: {scoring_backend_names()} (a backend "
                         f"package registers one in the entry-point group {ENTRY_POINT_GROUP!r})")
    value = found.load()
    return register_scoring_backend(value() if isinstance(value, type) else value)


__all__ = ["DEFAULT_BACKEND", "ENTRY_POINT_GROUP", "MANIFEST_KEY", "ScoringBackend", "ScoringJob", "ScoringTasks",
           "get_scoring_backend", "register_scoring_backend", "scoring_backend_names"]
