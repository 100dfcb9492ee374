"""Evaluation plots for the model card, as inline PNG data URIs (a self-contained HTML page embeds them).

Classifiers: ROC, precision-recall, calibration (reliability) and confusion matrix; regression:
residuals and predicted-vs-actual. Challenger and champion are drawn on the same axes, on the
same holdout rows. matplotlib is imported lazily and drawn through ``matplotlib.figure.Figure``
with the Agg canvas — no pyplot global state, no display, safe in a worker thread.

Pure: no Airflow.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

_COLORS = {"challenger": "#d62728", "champion": "#1f77b4"}


def _figure(width: float = 4.2, height: float = 3.6) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def evaluation_plots(task_type: Any, y_true: Any, raw_by_side: Mapping[str, Any],
                     classes: Any) -> dict[str, str]:
    """``{plot name: data URI}`` for the task type; sides are drawn in a fixed order (challenger, champion)."""
    import numpy as np

    from airflow_mlops_provider.core.task_types import ClassifierTaskType, RegressionTaskType, get_task_type

    task = get_task_type(task_type)
    sides = {k: v for k, v in raw_by_side.items() if v is not None}
    y = np.asarray(y_true)
    if isinstance(task, RegressionTaskType):
        return _regression_plots(y.astype(float), {s: np.asarray(task.values(r), dtype=float)
                                                   for s, r in sides.items()})
    if isinstance(task, ClassifierTaskType):
        from airflow_mlops_provider.core.bootstrap import side_classes

        first = "challenger" if "challenger" in sides else next(iter(sides))
        labels = task._classes(y, side_classes(classes, first))
        proba = {}
        for side, raw in sides.items():  # each side's columns in the first side's class order
            own = task._classes(y, side_classes(classes, side))
            p = np.asarray(task.probabilities(raw, len(own)), dtype=float)
            proba[side] = p[:, [own.index(c) for c in labels]] if set(own) == set(labels) else p
        return _classifier_plots(y, proba, labels)
    return {}


def _curves(y: Any, proba: Mapping[str, Any], labels: Sequence[Any]) -> dict[str, list[tuple[str, Any, Any]]]:
    """One-vs-rest curve inputs: binary → the positive class; multiclass → each class of the challenger."""
    if len(labels) == 2:
        return {side: [(str(labels[1]), (y == labels[1]).astype(int), p[:, 1])] for side, p in proba.items()}
    side = "challenger" if "challenger" in proba else next(iter(proba))
    return {side: [(str(c), (y == c).astype(int), proba[side][:, i]) for i, c in enumerate(labels)]}


def _drawable(curves: Mapping[str, list[tuple[str, Any, Any]]], binary: bool) -> Iterator[tuple[str, Any, Any, Any]]:
    """(legend name, colour, truth, score) of every one-vs-rest curve that can be drawn (both classes present)."""
    for side, items in curves.items():
        for label, truth, score in items:
            if truth.min() != truth.max():
                yield (side if binary else f"{side} class {label}"), (_COLORS.get(side) if binary else None), truth, score


def _classifier_plots(y: Any, proba: Mapping[str, Any], labels: Sequence[Any]) -> dict[str, str]:
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    curves = _curves(y, proba, labels)
    binary = len(labels) == 2
    out: dict[str, str] = {}

    fig = _figure()
    ax = fig.subplots()
    for name, color, truth, score in _drawable(curves, binary):
        fpr, tpr, _ = roc_curve(truth, score)
        ax.plot(fpr, tpr, color=color, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(fontsize=7, loc="lower right")
    out["roc"] = _png(fig)

    fig = _figure()
    ax = fig.subplots()
    for name, color, truth, score in _drawable(curves, binary):
        precision, recall, _ = precision_recall_curve(truth, score)
        ax.plot(recall, precision, color=color, label=name)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower left")
    out["precision_recall"] = _png(fig)

    fig = _figure()
    ax = fig.subplots()
    for side, p in proba.items():
        if binary:
            truth, conf = (y == labels[1]).astype(int), p[:, 1]
        else:  # reliability of the top-class confidence
            top = p.argmax(axis=1)
            truth, conf = (np.asarray(labels, dtype=object)[top] == y).astype(int), p.max(axis=1)
        if truth.min() == truth.max():
            continue
        frac, mean = calibration_curve(truth, conf, n_bins=10, strategy="quantile")
        ax.plot(mean, frac, marker="o", ms=3, color=_COLORS.get(side), label=side)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(xlabel="predicted probability" if binary else "top-class confidence", ylabel="observed frequency",
           title="Calibration")
    ax.legend(fontsize=7, loc="upper left")
    out["calibration"] = _png(fig)

    fig = _figure(4.2 * len(proba), 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(proba)))
    for ax, (side, p) in zip(axes, proba.items(), strict=False):
        predicted = p.argmax(axis=1) if not binary else (p[:, 1] >= 0.5).astype(int)
        actual = np.full(len(y), -1)
        for i, label in enumerate(labels):
            actual[y == label] = i
        known = actual >= 0
        matrix = np.zeros((len(labels), len(labels)), dtype=int)
        np.add.at(matrix, (actual[known], predicted[known]), 1)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                    color="white" if v > matrix.max() / 2 else "black")
        ticks = range(len(labels))
        ax.set_xticks(list(ticks), [str(c) for c in labels], fontsize=7)
        ax.set_yticks(list(ticks), [str(c) for c in labels], fontsize=7)
        ax.set(xlabel="predicted", ylabel="actual", title=f"Confusion matrix ({side})")
    out["confusion_matrix"] = _png(fig)
    return out


def _regression_plots(y: Any, predictions: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    fig = _figure()
    ax = fig.subplots()
    for side, p in predictions.items():
        ax.scatter(p, p - y, s=5, alpha=0.4, color=_COLORS.get(side), label=side)
    ax.axhline(0, ls="--", color="grey", lw=0.8)
    ax.set(xlabel="predicted", ylabel="residual (predicted - actual)", title="Residuals")
    ax.legend(fontsize=7)
    out["residuals"] = _png(fig)

    fig = _figure()
    ax = fig.subplots()
    for side, p in predictions.items():
        ax.scatter(y, p, s=5, alpha=0.4, color=_COLORS.get(side), label=side)
    low, high = float(min(y.min(), *(p.min() for p in predictions.values()))), \
        float(max(y.max(), *(p.max() for p in predictions.values())))
    ax.plot([low, high], [low, high], ls="--", color="grey", lw=0.8)
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
    ax.legend(fontsize=7)
    out["predicted_vs_actual"] = _png(fig)
    return out
