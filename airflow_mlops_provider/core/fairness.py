"""Group (bias) metrics of a model on holdout rows, computed with fairlearn's ``MetricFrame``.

A model config may name sensitive attributes (``ModelConfig.sensitive_features``). The
champion/challenger comparison then scores both models on the same holdout and adds, per task
type, the figures below to each side's metrics, so the :class:`PromotionPolicy` can gate on
them like any other metric (``direction: lower``; ``floor`` is then a ceiling and
``max_regression`` how much worse than the champion the challenger may be):

- binary: ``demographic_parity_difference`` and ``equalized_odds_difference`` (largest gap
  between groups in selection rate, and in true/false positive rate), ``accuracy_group_min``;
- multiclass: ``accuracy_group_difference`` (largest gap in accuracy between groups),
  ``accuracy_group_min``;
- regression: ``rmse_group_difference`` and ``rmse_group_max`` (per-group error).

Several attributes are crossed (fairlearn's intersectional groups). Per-group values come back
under ``groups`` for the record (run, model version tags, ledger). Nothing here imports Airflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops_provider.core.task_types import get_task_type


class FairnessError(ValueError):
    """The holdout cannot be grouped: a sensitive column is missing or empty."""


def group_metric_names(task_type: str) -> tuple[str, ...]:
    return tuple(get_task_type(task_type).group_metrics)


def group_metrics(task_type: str, y_true: Any, raw_output: Any, sensitive: Any,
                  classes: Sequence[Any] | None = None, threshold: float = 0.5) -> dict[str, Any]:
    """``{"metrics": {name: value}, "groups": {metric: {group: value}}, "sizes": {group: rows}}``.

    ``sensitive`` is a DataFrame of the sensitive columns, aligned with ``y_true``. The figures
    are the task type's (:meth:`~airflow_mlops_provider.core.task_types.TaskType.group_frame`).
    """
    import numpy as np
    import pandas as pd

    task = get_task_type(task_type)
    if sensitive is None or sensitive.shape[1] == 0:
        raise FairnessError("no sensitive columns to group by")
    blank = [c for c in sensitive.columns if sensitive[c].isna().all()]
    if blank:
        raise FairnessError(f"sensitive column(s) {blank} hold no values on the holdout")
    groups = sensitive.astype(str).reset_index(drop=True)
    y = pd.Series(np.asarray(y_true)).reset_index(drop=True)
    metrics, by_group = task.group_frame(y, raw_output, groups, classes, threshold)
    sizes = groups.value_counts().to_dict()
    return {"metrics": metrics, "groups": by_group,
            "sizes": {_key(k): int(v) for k, v in sizes.items()}}


def regression_groups(y: Any, prediction: Any, groups: Any) -> tuple[dict[str, float], dict[str, Any]]:
    """``rmse_group_difference`` and ``rmse_group_max`` (per-group error)."""
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import mean_squared_error

    pred = pd.Series(np.asarray(prediction, dtype=float))
    frame = MetricFrame(metrics={"rmse": lambda t, p: float(np.sqrt(mean_squared_error(t, p)))},
                        y_true=y, y_pred=pred, sensitive_features=groups)
    rmse = frame.by_group["rmse"]
    return ({"rmse_group_difference": float(rmse.max() - rmse.min()), "rmse_group_max": float(rmse.max())},
            {"rmse": _flat(rmse)})


def binary_groups(y: Any, proba: Any, groups: Any, classes: Sequence[Any],
                  threshold: float) -> tuple[dict[str, float], dict[str, Any]]:
    """Selection-rate and error-rate gaps between groups, and the worst group's accuracy."""
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference

    truth = (y == classes[1]).astype(int)
    pred = pd.Series((np.asarray(proba[:, 1]) >= threshold).astype(int))
    metrics, by_group = _accuracy_groups(truth, pred, groups)
    metrics["demographic_parity_difference"] = float(
        demographic_parity_difference(truth, pred, sensitive_features=groups))
    metrics["equalized_odds_difference"] = float(equalized_odds_difference(truth, pred, sensitive_features=groups))
    selection = MetricFrame(metrics={"selection_rate": lambda t, p: float(np.mean(p))},
                            y_true=truth, y_pred=pred, sensitive_features=groups)
    by_group["selection_rate"] = _flat(selection.by_group["selection_rate"])
    return metrics, by_group


def multiclass_groups(y: Any, proba: Any, groups: Any,
                      classes: Sequence[Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """The largest accuracy gap between groups and the worst group's accuracy."""
    import numpy as np
    import pandas as pd

    pred = pd.Series(np.asarray(classes, dtype=object)[np.asarray(proba).argmax(axis=1)])
    metrics, by_group = _accuracy_groups(y, pred, groups)
    accuracy = by_group["accuracy"].values()
    metrics["accuracy_group_difference"] = float(max(accuracy) - min(accuracy))
    return metrics, by_group


def _accuracy_groups(truth: Any, pred: Any, groups: Any) -> tuple[dict[str, float], dict[str, Any]]:
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    frame = MetricFrame(metrics={"accuracy": accuracy_score}, y_true=truth, y_pred=pred, sensitive_features=groups)
    accuracy = frame.by_group["accuracy"]
    return {"accuracy_group_min": float(accuracy.min())}, {"accuracy": _flat(accuracy)}


def _key(index: Any) -> str:
    return "|".join(map(str, index)) if isinstance(index, tuple) else str(index)


def _flat(series: Any) -> dict[str, float]:
    return {_key(k): float(v) for k, v in series.items()}
