"""Evaluation metrics for binary classifiers, computed the same way for challenger and champion."""

from __future__ import annotations

from typing import Any


def binary_classification_metrics(y_true: Any, proba: Any, threshold: float = 0.5) -> dict[str, float]:
    """roc_auc, log_loss, brier, accuracy, precision, recall, f1 from positive-class scores."""
    import numpy as np
    from sklearn import metrics

    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(proba, dtype=float), 1e-7, 1 - 1e-7)
    pred = (p >= threshold).astype(int)
    out = {
        "log_loss": float(metrics.log_loss(y, p, labels=[0, 1])),
        "brier": float(metrics.brier_score_loss(y, p)),
        "accuracy": float(metrics.accuracy_score(y, pred)),
        "precision": float(metrics.precision_score(y, pred, zero_division=0)),
        "recall": float(metrics.recall_score(y, pred, zero_division=0)),
        "f1": float(metrics.f1_score(y, pred, zero_division=0)),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
    }
    # AUC is undefined on a single-class holdout: leave it out rather than invent a number.
    if len(np.unique(y)) == 2:
        out["roc_auc"] = float(metrics.roc_auc_score(y, p))
        out["average_precision"] = float(metrics.average_precision_score(y, p))
    return out


def positive_scores(model: Any, frame: Any) -> Any:
    """Positive-class scores from an sklearn estimator or an MLflow pyfunc model."""
    import numpy as np

    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(frame))[:, 1]
    out = model.predict(frame)
    arr = np.asarray(getattr(out, "values", out), dtype=float)
    return arr[:, -1] if arr.ndim == 2 else arr
