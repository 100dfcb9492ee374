"""Performance decay from late labels: join ground truth to scored rows, evaluate, apply a policy.

Ground truth arrives days after scoring, as a labels partition per day keyed by the model's id
columns. :func:`join_labels` finds each label's scored row in the scored partitions of a
lookback window and keeps the model version recorded on that row; :func:`evaluate_versions`
scores each version on the rows **it** scored with the same per-task-type metric code as the
training holdout (the task type's ``compute_metrics``); a
:class:`DecayPolicy` compares them with that version's holdout metrics.

Nothing is dropped silently. :class:`LabelCounts` counts every label row that was not used and
why: a null id or target, a duplicated key (same value: one kept), a conflicting key (different
values: none kept), an unmatched key (no scored row in the window), an ambiguous key (scored on
more than one day: none kept). Matched labels arriving later than the policy's
``max_label_delay_days`` are counted as late (and still used). Scored days that only part of
their rows got labels for are reported as partial coverage.

Pure: pandas, pyarrow and scikit-learn only (no Airflow, no MLflow).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from airflow_mlops_provider.core.task_types import TaskType, get_task_type, task_types
from airflow_mlops_provider.core.tasks import RegistryView, TaskTypeError
from airflow_mlops_provider.exceptions import DataFileError

#: Where the batch pipeline writes a day's scored partition: ``{date}`` is the scoring day
#: (YYYY-MM-DD), ``{home}`` is MLOPS_HOME.
DEFAULT_SCORES_PATH = "{home}/outputs/scores/date={date}.parquet"

#: Defaults per task type (each type's ``default_decay_policy``): for the built-ins a drop in the
#: ranking metric, a relative rise in the error.
DEFAULT_DECAY_POLICIES: Mapping[str, Mapping[str, Any]] = RegistryView("default_decay_policy")

#: JSON schema of a decay policy (the monitoring DAG's ``decay_policy`` Param).
DECAY_POLICY_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["metrics"],
    "properties": {
        "metrics": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string"},
                           "max_degradation": {"type": ["number", "null"], "minimum": 0},
                           "max_relative_degradation": {"type": ["number", "null"], "minimum": 0}}}},
        "min_rows": {"type": "integer", "minimum": 1},
        "max_label_delay_days": {"type": "integer", "minimum": 0},
    },
}


class LabelsError(DataFileError):
    """A labels partition cannot be used: missing key or target column, unreadable file."""


def default_decay_policy(task_type: str | TaskType) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(dict(get_task_type(task_type).default_decay_policy)))


@dataclass(frozen=True)
class DecayRule:
    name: str
    direction: str
    max_degradation: float | None = None
    max_relative_degradation: float | None = None


@dataclass(frozen=True)
class DecayPolicy:
    """When a version's live performance counts as degraded against its holdout.

    ``{"metrics": [{"name": "roc_auc", "max_degradation": 0.05}], "min_rows": 200}`` fires when
    roc_auc on the labelled rows is more than 0.05 below the version's holdout roc_auc, over at
    least 200 labelled rows. ``max_relative_degradation: 0.1`` on ``rmse`` fires when RMSE rose
    by more than 10 %. The direction (which way is worse) is the metric's own. Any rule firing
    fires the policy.
    """

    rules: tuple[DecayRule, ...]
    min_rows: int = 200
    max_label_delay_days: int = 7

    @classmethod
    def from_dict(cls, task_type: str | TaskType, data: Mapping[str, Any] | None,
                  where: str = "decay_policy") -> DecayPolicy:
        task = get_task_type(task_type)
        task_type = task.name
        data = dict(data) if data is not None else default_decay_policy(task)
        unknown = set(data) - {"metrics", "min_rows", "max_label_delay_days"}
        if unknown:
            raise ValueError(f"{where} has unknown fields {sorted(unknown)}; known: metrics, min_rows, "
                             "max_label_delay_days")
        rules = []
        known = {k: v for k, v in task.metrics.items() if v}
        for i, raw in enumerate(data.get("metrics") or []):
            if not isinstance(raw, Mapping):
                raise ValueError(f"{where}.metrics[{i}] must be an object, got {raw!r}")
            extra = set(raw) - {"name", "max_degradation", "max_relative_degradation"}
            if extra:
                raise ValueError(f"{where}.metrics[{i}] has unknown fields {sorted(extra)}")
            name = raw.get("name")
            if name not in known:
                raise ValueError(f"{where}.metrics[{i}] names {name!r}, which a {task_type} model does not report; "
                                 f"{task_type} metrics: {sorted(known)}")
            limits = {}
            for key in ("max_degradation", "max_relative_degradation"):
                value = raw.get(key)
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                    raise ValueError(f"{where}.metrics[{i}].{key} must be a number >= 0, got {value!r}")
                limits[key] = float(value)
            if not limits:
                raise ValueError(f"{where}.metrics[{i}] ({name}) sets neither max_degradation nor "
                                 "max_relative_degradation: it could never fire")
            rules.append(DecayRule(name=name, direction=known[name], **limits))
        if not rules:
            raise ValueError(f"{where}.metrics is empty: name at least one metric to watch")
        ints = {}
        for key, default in (("min_rows", 200), ("max_label_delay_days", 7)):
            value = data.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key == "min_rows" else 0):
                raise ValueError(f"{where}.{key} must be an integer >= {1 if key == 'min_rows' else 0}, "
                                 f"got {value!r}")
            ints[key] = value
        return cls(rules=tuple(rules), **ints)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": [{k: v for k, v in asdict(r).items() if v is not None and k != "direction"}
                            for r in self.rules],
                "min_rows": self.min_rows, "max_label_delay_days": self.max_label_delay_days}


@dataclass
class Verdict:
    """One version's live metrics against its holdout, and whether the policy fired."""

    version: str
    rows: int
    metrics: dict[str, float]
    holdout: dict[str, float]
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    degraded: bool = False
    reasons: list[str] = field(default_factory=list)
    too_few_rows: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(policy: DecayPolicy, version: str, rows: int, metrics: Mapping[str, float],
          holdout: Mapping[str, float]) -> Verdict:
    """Apply ``policy`` to one version's live ``metrics`` (on ``rows`` labelled rows) and its ``holdout``."""
    verdict = Verdict(version=str(version), rows=rows, metrics=dict(metrics), holdout={
        r.name: float(holdout[r.name]) for r in policy.rules if r.name in holdout})
    for rule in policy.rules:
        live, base = metrics.get(rule.name), holdout.get(rule.name)
        if live is None or base is None:
            side = "the labelled rows" if live is None else "the version's holdout"
            verdict.reasons.append(f"{rule.name}: not compared, {side} gave no value")
            continue
        # Degradation: how much worse live is than the holdout, in the metric's own direction.
        worse = (base - live) if rule.direction == "higher" else (live - base)
        # Relative to a holdout value of 0 is undefined (and infinity is not JSON): None.
        relative = worse / abs(base) if base else None
        verdict.figures[rule.name] = {"live": float(live), "holdout": float(base), "degradation": float(worse),
                                      "relative_degradation": None if relative is None else float(relative)}
        if rule.max_degradation is not None and worse > rule.max_degradation:
            verdict.reasons.append(f"{rule.name} {live:.4f} vs holdout {base:.4f}: degraded by {worse:.4f} "
                                   f"> {rule.max_degradation:g}")
        elif rule.max_relative_degradation is not None and relative is None:
            verdict.reasons.append(f"{rule.name}: not compared relatively, the holdout value is 0")
        elif rule.max_relative_degradation is not None and relative > rule.max_relative_degradation:
            verdict.reasons.append(f"{rule.name} {live:.4f} vs holdout {base:.4f}: degraded by {relative:.1%} "
                                   f"> {rule.max_relative_degradation:.0%}")
    fired = [r for r in verdict.reasons if "degraded by" in r]
    if rows < policy.min_rows:
        verdict.too_few_rows = (f"v{version}: {rows} labelled rows < min_rows {policy.min_rows}; the figures are "
                                "reported, the policy does not decide")
    else:
        verdict.degraded = bool(fired)
    return verdict


@dataclass
class LabelCounts:
    """What happened to every row of a labels partition."""

    label_rows: int = 0
    null_keys: int = 0  # an id column is null (a null id matches nothing)
    null_labels: int = 0
    duplicated: int = 0  # extra rows of a key whose rows all agree (one kept)
    conflicting: int = 0  # rows of keys labelled with different values (none kept)
    unmatched: int = 0  # keys with no scored row in the window
    ambiguous: int = 0  # keys scored on more than one day in the window (none kept)
    matched: int = 0
    late: int = 0  # matched, but scored more than max_label_delay_days before the labels day
    unmatched_examples: list[str] = field(default_factory=list)
    #: Per scored day: its rows and how many of them this labels partition labelled.
    coverage: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def partial_days(self) -> list[str]:
        return sorted(d for d, c in self.coverage.items() if 0 < c["labelled"] < c["rows"])

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "partial_days": self.partial_days}


def read_labels(path: str, key_columns: Sequence[str], target: str) -> Any:
    """The labels partition's key and target columns, refused by name when one is missing."""
    from airflow_mlops_provider.core.scoring import ScoringInputError, open_parquet

    try:
        pf = open_parquet(path)
    except ScoringInputError as err:
        raise LabelsError(str(err).replace("input partition", "labels partition"), path=path) from err
    missing = [c for c in [*key_columns, target] if c not in pf.schema_arrow.names]
    if missing:
        raise LabelsError(f"labels partition {path!r} lacks columns {missing} (needs the id columns "
                          f"{list(key_columns)} and the target {target!r})", path=path, columns=missing)
    return pf.read(columns=[*key_columns, target]).to_pandas()


def join_labels(labels: Any, scored: Sequence[tuple[date, str]], key_columns: Sequence[str], target: str,
                output_columns: Sequence[str] | None = None, *, labels_day: date,
                max_label_delay_days: int | None, examples: int = 5) -> tuple[Any, LabelCounts]:
    """Labels joined to their scored rows: ``(frame, counts)``.

    ``scored`` lists ``(scoring day, path)`` of the scored partitions in the window. The frame
    holds the keys, ``target``, ``model_version``, ``scored_day`` and the scoring outputs among
    ``output_columns`` that the partition has (None: the columns any registered task type writes,
    :func:`scored_output_columns`). ``max_label_delay_days`` None: lateness is not counted here
    (:func:`count_late` counts it once each version's policy is known).
    """
    import pandas as pd

    keys = list(key_columns)
    if not keys:
        raise LabelsError("labels cannot be joined to scored rows without id columns (ModelConfig.id_columns)")
    counts = LabelCounts(label_rows=len(labels))
    keyed = labels[labels[keys].notna().all(axis=1)]
    counts.null_keys = len(labels) - len(keyed)
    frame = keyed[keyed[target].notna()]
    counts.null_labels = len(keyed) - len(frame)
    # Duplicated keys: identical values keep one row; differing values keep none.
    grouped = frame.groupby(keys, dropna=False)[target]
    distinct = grouped.transform("nunique")
    conflicting = distinct > 1
    counts.conflicting = int(conflicting.sum())
    frame = frame[~conflicting]
    before = len(frame)
    frame = frame.drop_duplicates(subset=keys, keep="first")
    counts.duplicated = before - len(frame)

    parts = []
    for day, path in scored:
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        outputs = scored_output_columns(names) if output_columns is None else output_columns
        wanted = [c for c in [*keys, "model_version", *outputs] if c in names]
        missing = [c for c in [*keys, "model_version"] if c not in names]
        if missing:
            raise LabelsError(f"scored partition {path!r} lacks columns {missing}: labels cannot be matched to it",
                              path=path, columns=missing)
        table = pq.read_table(path, columns=wanted).to_pandas()
        table = table[table[keys].notna().all(axis=1)]
        for key in keys:  # a key typed differently on each side would match nothing (or fail in merge)
            if _kind(table[key]) != _kind(frame[key]):
                raise LabelsError(f"id column {key!r} is {table[key].dtype} in the scored partition {path!r} but "
                                  f"{frame[key].dtype} in the labels: write the labels with the ids as scored",
                                  path=path, column=key)
        counts.coverage[day.isoformat()] = {"rows": len(table), "labelled": 0}
        hit = table.merge(frame[keys], on=keys, how="inner")
        if len(hit):
            hit["scored_day"] = day.isoformat()
            parts.append(hit)
    scored_rows = pd.concat(parts, ignore_index=True) if parts else \
        pd.DataFrame(columns=[*keys, "model_version", "scored_day"])
    days_per_key = scored_rows.groupby(keys, dropna=False)["scored_day"].transform("nunique") if len(scored_rows) \
        else pd.Series(dtype=int)
    ambiguous = scored_rows[days_per_key > 1] if len(scored_rows) else scored_rows
    counts.ambiguous = int(len(ambiguous.drop_duplicates(subset=keys))) if len(ambiguous) else 0
    scored_rows = scored_rows[days_per_key <= 1] if len(scored_rows) else scored_rows
    # A key scored twice on the same day (a rerun that appended, or a duplicated input row) keeps one row.
    scored_rows = scored_rows.drop_duplicates(subset=keys, keep="last")
    joined = frame.merge(scored_rows, on=keys, how="inner")
    counts.matched = len(joined)
    counts.unmatched = len(frame) - counts.matched - counts.ambiguous
    if counts.unmatched:
        found = joined[keys].assign(_m=1)
        ambiguous_keys = ambiguous[keys].drop_duplicates().assign(_a=1) if len(ambiguous) else None
        rest = frame[keys].merge(found, on=keys, how="left")
        if ambiguous_keys is not None:
            rest = rest.merge(ambiguous_keys, on=keys, how="left")
            rest = rest[rest["_a"].isna()]
        rest = rest[rest["_m"].isna()]
        counts.unmatched_examples = ["/".join(str(v) for v in row) for row in rest[keys].head(examples).to_numpy()]
    if len(joined):
        counts.late = count_late(joined, labels_day, max_label_delay_days) if max_label_delay_days is not None else 0
        for day, n in joined["scored_day"].value_counts().items():
            counts.coverage[str(day)]["labelled"] = int(n)
    return joined, counts


def _kind(series: Any) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    return "text"


def scored_output_columns(names: Sequence[str]) -> list[str]:
    """The columns of a scored partition (``names``) that any registered task type writes as its outputs."""
    wanted = {c for task in task_types().values() for c in task.scored_columns(names)}
    return [c for c in names if c in wanted]


def version_outputs(task_type: str | TaskType, frame: Any, classes: Sequence[Any] | None) -> Any:
    """The scored rows' outputs back as a raw model output for the task type's ``compute_metrics``."""
    task = get_task_type(task_type)
    try:
        columns = task.metric_input_columns(classes)
    except TaskTypeError as err:
        raise LabelsError(str(err)) from err
    missing = [c for c in columns if c not in frame.columns]
    if missing and len(columns) > 1:
        raise LabelsError(f"the scored rows lack the probability columns {missing}")
    if missing:
        raise LabelsError(f"the scored rows lack the {task.name} output column {columns[0]!r}")
    if len(columns) > 1:
        return frame[columns].to_numpy(dtype=float)
    return frame[columns[0]].to_numpy(dtype=float)


def count_late(joined: Any, labels_day: date, max_label_delay_days: Mapping[str, int] | int) -> int:
    """Matched labels that came more than ``max_label_delay_days`` (per model version, or one
    figure for all) after their row was scored."""
    import pandas as pd

    if not len(joined):
        return 0
    delay = (pd.Timestamp(labels_day) - pd.to_datetime(joined["scored_day"])).dt.days
    if isinstance(max_label_delay_days, Mapping):
        limit = joined["model_version"].astype(str).map(dict(max_label_delay_days))
        return int((delay > limit).sum())
    return int((delay > max_label_delay_days).sum())


def evaluate_versions(task_type: str | TaskType | Mapping[str, TaskType], joined: Any, target: str,
                      classes_by_version: Mapping[str, Sequence[Any] | None]) -> dict[str, dict[str, Any]]:
    """Per model version: ``{"rows", "metrics"}`` on the labelled rows it scored.

    ``task_type``: one type for every version, or each version's (``{version: task type}``).
    """
    out: dict[str, dict[str, Any]] = {}
    if not len(joined):
        return out
    for version, rows in joined.groupby("model_version", sort=True):
        version = str(version)
        classes = classes_by_version.get(version)
        task = get_task_type(task_type[version] if isinstance(task_type, Mapping) else task_type)
        try:
            metrics = task.compute_metrics(rows[target].to_numpy(), version_outputs(task, rows, classes), classes)
        except ValueError as err:  # TaskTypeError: labels of another type than the model's classes
            raise LabelsError(f"labels of v{version} cannot be evaluated: {err}", version=version) from err
        out[version] = {"rows": len(rows), "metrics": metrics}
    return out
