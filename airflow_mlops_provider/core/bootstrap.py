"""Seeded bootstrap confidence intervals for holdout metrics, and the paired bootstrap of a difference.

The promotion gate judges a challenger and a champion on the same holdout rows; a point
difference of 0.002 AUC on 1,000 rows says little. Here every metric of the task type (and the
group/fairness metrics) gets a percentile interval from ``resamples`` bootstrap resamples of the
holdout rows, drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same
intervals on any machine. Challenger and champion are resampled with the **same** row indices,
so the interval of their difference (``paired``) is the interval of a paired bootstrap — the
gate uses it when a rule asks for a significant improvement.

Vectorised: a block of resamples is one index matrix (``resamples × rows``), turned into a count
matrix ``W`` (how often each row was drawn). Every metric below is a weighted statistic of the
rows, so one matrix product gives it for all resamples at once — AUC and average precision
included (rows sorted by score once, ties grouped, cumulative weighted counts). A task type
without a vectorised form (a plug-in) falls back to its own ``compute_metrics`` per resample.

Pure: no Airflow; numpy is imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: Resamples per block: fixed, so the random stream (and so the intervals) does not depend on memory.
BLOCK = 100


class BootstrapError(ValueError):
    """A bootstrap setting is malformed; names the field."""


@dataclass(frozen=True)
class BootstrapSpec:
    """How intervals are computed: ``resamples`` (0 turns them off), ``seed``, two-sided ``confidence``."""

    resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or not (
                self.resamples == 0 or 50 <= self.resamples <= 100_000):
            raise BootstrapError(f"bootstrap.resamples must be 0 (off) or an integer in 50..100000, "
                                 f"got {self.resamples!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise BootstrapError(f"bootstrap.seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.confidence, (int, float)) or not 0.5 <= float(self.confidence) < 1:
            raise BootstrapError(f"bootstrap.confidence must be in [0.5, 1), got {self.confidence!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> BootstrapSpec:
        data = dict(data or {})
        unknown = set(data) - {"resamples", "seed", "confidence"}
        if unknown:
            raise BootstrapError(f"bootstrap has unknown fields {sorted(unknown)}; known: "
                                 "['confidence', 'resamples', 'seed']")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def enabled(self) -> bool:
        return self.resamples > 0


def index_blocks(n: int, spec: BootstrapSpec) -> Any:
    """Yield the bootstrap index matrices (``block × n`` row indices), seeded, ``spec.resamples`` rows in all."""
    import numpy as np

    rng = np.random.default_rng(spec.seed)
    left = spec.resamples
    while left > 0:
        size = min(BLOCK, left)
        yield rng.integers(0, n, size=(size, n))
        left -= size


def counts(idx: Any, n: int) -> Any:
    """The count matrix of an index matrix: ``W[b, i]`` = how often row ``i`` is in resample ``b``."""
    import numpy as np

    b = idx.shape[0]
    flat = (idx + (np.arange(b) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(float)


# -- vectorised metrics: W (B, n) -> {metric: (B,) values} ------------------------------------------

def _ratio(num: Any, den: Any) -> Any:
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _tie_groups(score: Any) -> tuple[Any, Any]:
    """Row order (ascending score) and the start of each run of equal scores in that order."""
    import numpy as np

    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return order, starts


def weighted_auc(W: Any, positive: Any, score: Any, groups: tuple[Any, Any] | None = None) -> Any:
    """ROC AUC per resample (ties count one half), NaN where a resample lacks a class."""
    import numpy as np

    order, starts = groups or _tie_groups(score)
    Ws = W[:, order]
    pos = positive[order].astype(float)
    pos_g = np.add.reduceat(Ws * pos, starts, axis=1)
    neg_g = np.add.reduceat(Ws * (1 - pos), starts, axis=1)
    below = np.cumsum(neg_g, axis=1) - neg_g
    P, N = pos_g.sum(axis=1), neg_g.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((P > 0) & (N > 0), (pos_g * (below + 0.5 * neg_g)).sum(axis=1) / (P * N), np.nan)


def weighted_average_precision(W: Any, positive: Any, score: Any, groups: tuple[Any, Any] | None = None) -> Any:
    """Average precision per resample (scikit-learn's step definition, ties grouped)."""
    import numpy as np

    order, starts = groups or _tie_groups(score)
    Ws = W[:, order]
    pos = positive[order].astype(float)
    pos_g = np.add.reduceat(Ws * pos, starts, axis=1)[:, ::-1]
    neg_g = np.add.reduceat(Ws * (1 - pos), starts, axis=1)[:, ::-1]
    tp, fp = np.cumsum(pos_g, axis=1), np.cumsum(neg_g, axis=1)
    precision = _ratio(tp, tp + fp)
    P = pos_g.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(P > 0, (pos_g * precision).sum(axis=1) / P, np.nan)


def _binary(W: Any, y_true: Any, raw: Any, classes: Sequence[Any] | None, task: Any) -> dict[str, Any]:
    import numpy as np

    classes = task._classes(y_true, classes)
    y = (np.asarray(y_true) == classes[1]).astype(float)
    p = np.clip(task.probabilities(raw, len(classes))[:, 1].astype(float), 1e-7, 1 - 1e-7)
    n = W.sum(axis=1)
    pred = (p >= 0.5).astype(float)
    tp, fp, fn = W @ (pred * y), W @ (pred * (1 - y)), W @ ((1 - pred) * y)
    out = {
        "log_loss": W @ -(y * np.log(p) + (1 - y) * np.log(1 - p)) / n,
        "brier": W @ (p - y) ** 2 / n,
        "accuracy": W @ (pred == y).astype(float) / n,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "positive_rate": W @ y / n,
    }
    if len(np.unique(y)) == 2:
        groups = _tie_groups(p)
        out["roc_auc"] = weighted_auc(W, y, p, groups)
        out["average_precision"] = weighted_average_precision(W, y, p, groups)
    return out


def _multiclass(W: Any, y_true: Any, raw: Any, classes: Sequence[Any] | None, task: Any) -> dict[str, Any]:
    import numpy as np

    classes = task._classes(y_true, classes)
    order = np.argsort(np.asarray(classes), kind="stable")
    labels = np.asarray(classes)[order]
    proba = np.asarray(task.probabilities(raw, len(classes)), dtype=float)[:, order]
    proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-15, None)
    y = np.asarray(y_true)
    truth = (y[:, None] == labels[None, :]).astype(float)
    hit = (np.arange(len(labels))[None, :] == proba.argmax(axis=1)[:, None]).astype(float)
    n = W.sum(axis=1)
    tp, fp, fn = W @ (truth * hit), W @ ((1 - truth) * hit), W @ (truth * (1 - hit))
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    seen = (2 * tp + fp + fn) > 0  # scikit-learn averages over labels in y_true or y_pred
    support = tp + fn
    p_true = np.clip((proba * truth).sum(axis=1), 1e-15, 1)
    out = {
        "accuracy": W @ (truth * hit).sum(axis=1) / n,
        "f1_macro": _ratio((f1 * seen).sum(axis=1), seen.sum(axis=1)),
        "f1_weighted": _ratio((f1 * support).sum(axis=1), support.sum(axis=1)),
        "log_loss": W @ -np.log(p_true) / n,
    }
    present = [i for i in range(len(labels)) if truth[:, i].any()]
    if len(present) > 2:
        sub = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
        aucs = np.column_stack([weighted_auc(W, truth[:, k], sub[:, j]) for j, k in enumerate(present)])
        with np.errstate(invalid="ignore"):
            out["roc_auc_ovr"] = np.nanmean(np.where(np.isnan(aucs).all(axis=1, keepdims=True), 0, aucs), axis=1)
    elif len(present) == 2:
        out["roc_auc_ovr"] = weighted_auc(W, truth[:, present[1]], proba[:, present[1]])
    return out


def _regression(W: Any, y_true: Any, raw: Any, classes: Sequence[Any] | None, task: Any) -> dict[str, Any]:
    import numpy as np

    y = np.asarray(y_true, dtype=float)
    err = np.asarray(task.values(raw), dtype=float) - y
    n = W.sum(axis=1)
    sst = W @ y ** 2 - (W @ y) ** 2 / n
    out = {"rmse": np.sqrt(W @ err ** 2 / n), "mae": W @ np.abs(err) / n,
           "r2": np.where(sst > 0, 1 - _ratio(W @ err ** 2, sst), np.nan)}
    if len(y) and not np.any(y == 0):
        out["mape"] = W @ (np.abs(err) / np.abs(y)) / n
    return out


#: Vectorised metric functions by task type name; a type not listed is resampled with its own compute_metrics.
VECTORISED: dict[str, Callable[..., dict[str, Any]]] = {
    "binary": _binary, "multiclass": _multiclass, "regression": _regression}


def _vectorised(task: Any) -> Callable[..., dict[str, Any]] | None:
    """The vectorised form of ``task``'s metrics: a built-in, or a subclass that keeps the built-in's metrics."""
    from airflow_mlops_provider.core.task_types import BUILTIN

    for builtin in BUILTIN:
        if isinstance(task, type(builtin)) and type(task).compute_metrics is type(builtin).compute_metrics \
                and dict(type(task).metrics) == dict(type(builtin).metrics):
            return VECTORISED.get(builtin.name)
    return None


def metric_samples(task_type: Any, y_true: Any, raw: Any, classes: Sequence[Any] | None, W: Any,
                   idx: Any = None) -> dict[str, Any]:
    """``{metric: (B,) values}`` of ``task_type``'s metrics for each row of the count matrix ``W``."""
    import numpy as np

    from airflow_mlops_provider.core.task_types import get_task_type

    task = get_task_type(task_type)
    fn = _vectorised(task)
    if fn is not None:
        return fn(W, y_true, raw, classes, task)
    # A plug-in type: its own metrics on each resample (correct, not fast).
    y = np.asarray(y_true)
    raw_arr = np.asarray(getattr(raw, "values", raw))
    rows = idx if idx is not None else np.repeat(np.arange(W.shape[1])[None, :], W.shape[0], axis=0)
    per = [task.compute_metrics(y[r], raw_arr[r], classes) for r in rows]
    names = sorted({k for m in per for k in m})
    return {k: np.array([m.get(k, np.nan) for m in per], dtype=float) for k in names}


# -- group (fairness) metrics, vectorised --------------------------------------------------------

def group_codes(sensitive: Any) -> tuple[Any, list[str]]:
    """Integer group per row from the sensitive columns (crossed, as fairlearn does) and the group names."""
    import numpy as np

    frame = sensitive.astype(str).reset_index(drop=True)
    keys = frame.apply(lambda row: "|".join(row.values), axis=1) if frame.shape[1] > 1 else frame.iloc[:, 0]
    names, codes = np.unique(np.asarray(keys), return_inverse=True)
    return codes, [str(n) for n in names]


def group_samples(task_type: Any, y_true: Any, raw: Any, classes: Sequence[Any] | None, codes: Any,
                  W: Any, threshold: float = 0.5) -> dict[str, Any]:
    """The task type's group metrics (``core.fairness``) per resample; groups absent from a resample are ignored."""
    import numpy as np

    from airflow_mlops_provider.core.task_types import get_task_type

    task = get_task_type(task_type)
    onehot = (codes[:, None] == np.arange(codes.max() + 1)[None, :]).astype(float)

    def rate(values: Any, within: Any = None) -> Any:
        base = onehot if within is None else onehot * within[:, None]
        den = W @ base
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, (W @ (base * values[:, None])) / np.where(den > 0, den, 1), np.nan)

    def spread(values: Any) -> Any:
        with np.errstate(invalid="ignore"):
            return np.nanmax(values, axis=1) - np.nanmin(values, axis=1)

    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: a resample without a group
            if task.name == "binary":
                classes = task._classes(y_true, classes)
                truth = (np.asarray(y_true) == classes[1]).astype(float)
                pred = (task.probabilities(raw, len(classes))[:, 1] >= threshold).astype(float)
                accuracy = rate((pred == truth).astype(float))
                tpr, fpr = rate(pred, truth), rate(pred, 1 - truth)
                return {"demographic_parity_difference": spread(rate(pred)),
                        "equalized_odds_difference": np.fmax(spread(tpr), spread(fpr)),
                        "accuracy_group_min": np.nanmin(accuracy, axis=1)}
            if task.name == "multiclass":
                classes = task._classes(y_true, classes)
                proba = task.probabilities(raw, len(classes))
                pred = np.asarray(classes, dtype=object)[np.asarray(proba).argmax(axis=1)]
                accuracy = rate((pred == np.asarray(y_true, dtype=object)).astype(float))
                return {"accuracy_group_difference": spread(accuracy), "accuracy_group_min": np.nanmin(accuracy, axis=1)}
            if task.name == "regression":
                err2 = (np.asarray(task.values(raw), dtype=float) - np.asarray(y_true, dtype=float)) ** 2
                rmse = np.sqrt(rate(err2))
                return {"rmse_group_difference": spread(rmse), "rmse_group_max": np.nanmax(rmse, axis=1)}
    return {}


def side_classes(classes: Any, side: str) -> Sequence[Any] | None:
    """A side's class labels from ``classes``: one list for every side, or ``{side: labels}``."""
    if isinstance(classes, Mapping):
        return classes.get(side)
    return classes


# -- intervals ---------------------------------------------------------------------------------

def _interval(samples: Any, confidence: float) -> tuple[float | None, float | None]:
    import numpy as np

    finite = samples[np.isfinite(samples)]
    if finite.size < 2:
        return None, None
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return float(low), float(high)


def _clean(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def bootstrap(task_type: Any, y_true: Any, raw_by_side: Mapping[str, Any], classes: Any,
              spec: BootstrapSpec, *, directions: Mapping[str, str | None] | None = None,
              codes: Any = None, reference: str = "challenger", baseline: str = "champion") -> dict[str, Any]:
    """Intervals of every metric for each side (same resampled rows for all sides) and of the paired gain.

    :param raw_by_side: ``{"challenger": raw output, "champion": raw output}`` (a side may be absent).
    :param classes: class labels, one list for all sides or ``{side: labels}`` (versions may order them differently).
    :param directions: metric -> ``higher``/``lower``; the gain of ``reference`` over ``baseline``
        is signed so that positive means better (metrics without a direction get no gain).
    :param codes: group per row (:func:`group_codes`): the group metrics get intervals too.
    :returns: ``{"spec", "rows", "intervals": {side: {metric: {value, low, high}}},
        "groups": {side: {metric: {value, low, high}}}, "gains": {metric: {value, low, high,
        significant}}}``. ``value`` is the metric on the holdout itself (all weights 1).
    """
    import numpy as np

    from airflow_mlops_provider.core.task_types import get_task_type

    task = get_task_type(task_type)
    y = np.asarray(y_true)
    n = len(y)
    sides = {k: v for k, v in raw_by_side.items() if v is not None}
    directions = dict(directions if directions is not None else task.metrics)
    ones = np.ones((1, n))

    def evaluate(W: Any, idx: Any) -> dict[str, dict[str, Any]]:
        out = {}
        for side, raw in sides.items():
            labels = side_classes(classes, side)
            values = metric_samples(task, y, raw, labels, W, idx)
            if codes is not None:
                values.update({f"group:{k}": v for k, v in group_samples(task, y, raw, labels, codes, W).items()})
            out[side] = values
        return out

    point = evaluate(ones, np.arange(n)[None, :])
    collected: dict[str, dict[str, list[Any]]] = {side: {k: [] for k in point[side]} for side in sides}
    if spec.enabled and n > 0:
        for idx in index_blocks(n, spec):
            block = evaluate(counts(idx, n), idx)
            for side, values in block.items():
                for k, v in values.items():
                    if k in collected[side]:
                        collected[side][k].append(np.asarray(v, dtype=float))
    samples = {side: {k: np.concatenate(v) if v else np.array([]) for k, v in metrics.items()}
               for side, metrics in collected.items()}

    def summary(value: Any, draws: Any) -> dict[str, Any]:
        low, high = _interval(draws, spec.confidence) if draws.size else (None, None)
        return {"value": _clean(value), "low": low, "high": high}

    result: dict[str, Any] = {"spec": spec.to_dict(), "rows": n, "intervals": {}, "groups": {}, "gains": {}}
    for side in sides:
        for k, v in point[side].items():
            target = result["groups"] if k.startswith("group:") else result["intervals"]
            target.setdefault(side, {})[k.removeprefix("group:")] = summary(v[0], samples[side][k])
    if reference in sides and baseline in sides:
        for k in point[reference]:
            name = k.removeprefix("group:")
            direction = directions.get(name) or (task.group_metrics.get(name) if k.startswith("group:") else None)
            if not direction or k not in point[baseline]:
                continue
            sign = 1.0 if direction == "higher" else -1.0
            gain = sign * (point[reference][k][0] - point[baseline][k][0])
            a, b = samples[reference][k], samples[baseline][k]
            draws = sign * (a - b) if a.size and a.size == b.size else np.array([])
            entry = summary(gain, draws)
            entry["significant"] = entry["low"] is not None and entry["low"] > 0
            result["gains"][name] = entry
    return result
