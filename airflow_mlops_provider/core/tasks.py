"""Task types: what a model predicts, the metrics that judge it and what scoring writes.

A task type is declared once, on training (``MlflowTrainModelOperator(task_type=...)``), and
recorded on the MLflow run and so on every model version registered from it (tag
``mlops.task_type``; classifiers also record their class labels in ``mlops.classes``).
Evaluation, the champion re-scoring, the promotion policy, batch scoring, prediction drift and
serving checks read it from there.

=============  ==========================================================  ===================
task type      holdout metrics (scikit-learn's functions)                  scoring output
=============  ==========================================================  ===================
``binary``     roc_auc, average_precision, log_loss, brier, accuracy,      ``score`` (P(positive))
               precision, recall, f1, positive_rate
``multiclass`` accuracy, f1_macro, f1_weighted, log_loss, roc_auc_ovr      ``prediction`` (class)
                                                                           + ``proba_<class>``
``regression`` rmse, mae, r2, mape (only when no target value is 0)        ``prediction``
=============  ==========================================================  ===================

Model outputs are read the same way for every MLflow flavor through pyfunc: a classifier's
pyfunc returns class probabilities (one column per class; a binary model may return the
positive class's probability alone), a regressor's returns one value per row.

Each task type is an object in one registry (:mod:`airflow_mlops_provider.core.task_types`),
which may hold more types than the three above; the functions and tables here read it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

TASK_TYPE_TAG = "mlops.task_type"
CLASSES_TAG = "mlops.classes"
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"


class RegistryView(Mapping[str, Any]):
    """``{task type name: one attribute of it}`` over the registry (:mod:`.task_types`), read on access."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __getitem__(self, name: str) -> Any:
        from airflow_mlops_provider.core.task_types import get_task_type

        try:
            return getattr(get_task_type(name), self.attribute)
        except TaskTypeError as err:
            raise KeyError(name) from err

    def __iter__(self) -> Iterator[str]:
        from airflow_mlops_provider.core.task_types import task_types

        return iter(task_types())

    def __len__(self) -> int:
        from airflow_mlops_provider.core.task_types import task_types

        return len(task_types())


# Each table is one attribute of the registered task types (core.task_types), built-in or plug-in.
#: Metric -> direction ("higher" or "lower" is better); None: descriptive, not for a policy.
METRICS: Mapping[str, Mapping[str, str | None]] = RegistryView("metrics")
#: Default promotion policies, with the right directions per type. Floors only where the metric
#: has a chance level that does not depend on the data (AUC 0.5, R² 0); changes against the
#: champion are judged in absolute units for unit-free metrics and relative to the champion for
#: unit-bearing ones.
DEFAULT_POLICIES: Mapping[str, Mapping[str, Any]] = RegistryView("default_policy")
#: The primary output column per task type (the one shadow scoring and prediction drift compare).
PRIMARY_OUTPUT: Mapping[str, str] = RegistryView("primary_output")


class TaskTypeError(ValueError):
    """An unknown task type, or a model/policy/output that does not fit the declared one."""


def parse_task_type(value: Any) -> str:
    """The name of the registered task type ``value`` names; refused, listing the known ones, when unknown."""
    from airflow_mlops_provider.core.task_types import get_task_type

    return get_task_type(value).name


def default_policy(task_type: str) -> dict[str, Any]:
    """A fresh copy of the default promotion policy of ``task_type``."""
    return json.loads(json.dumps(DEFAULT_POLICIES[parse_task_type(task_type)]))


#: Group (bias) metrics per task type and which way is better (core.fairness computes them when a
#: model names sensitive attributes).
GROUP_METRICS: Mapping[str, Mapping[str, str]] = RegistryView("group_metrics")


def check_policy_metrics(task_type: str, policy: dict[str, Any], where: str = "policy") -> None:
    """Refuse a policy that names a metric the task type does not produce, naming it and the options."""
    task_type = parse_task_type(task_type)
    known = {**METRICS[task_type], **GROUP_METRICS[task_type]}
    sliced = (policy or {}).get("slices")
    lists = [("metrics", (policy or {}).get("metrics") or [], known)]
    if isinstance(sliced, dict):  # slice rules judge the task type's own metrics, not group metrics
        lists.append(("slices.metrics", sliced.get("metrics") or [], dict(METRICS[task_type])))
    for label, rules, allowed in lists:
        for i, rule in enumerate(rules):
            name = rule.get("name") if isinstance(rule, dict) else None
            if name not in allowed:
                raise TaskTypeError(
                    f"{where}.{label}[{i}] names metric {name!r}, which a {task_type} model does not produce; "
                    f"{task_type} metrics: {sorted(k for k, v in allowed.items() if v)}")
            direction = rule.get("direction")
            if direction and allowed[name] and direction != allowed[name]:
                raise TaskTypeError(f"{where}.{label}[{i}]: {name!r} is better when {allowed[name]}, not {direction}")


def complete_policy(task_type: str, policy: dict[str, Any]) -> dict[str, Any]:
    """``policy`` checked against ``task_type``, each rule's missing ``direction`` filled from the metric.

    ``{"name": "rmse"}`` means "lower is better", as RMSE is; never the rule's generic default.
    """
    check_policy_metrics(task_type, policy)
    task_type = parse_task_type(task_type)
    known = {**METRICS[task_type], **GROUP_METRICS[task_type]}
    rules = [{**rule, "direction": rule.get("direction") or known[rule["name"]] or "higher"}
             for rule in policy.get("metrics") or []]
    out = {**policy, "metrics": rules}
    if isinstance(policy.get("slices"), dict):
        out["slices"] = {**policy["slices"], "metrics": [
            {**rule, "direction": rule.get("direction") or known[rule["name"]] or "higher"}
            for rule in policy["slices"].get("metrics") or []]}
    return out


def check_classifier_output(task_type: str, raw: Any, n_classes: int, flavor: str) -> None:
    """Refuse a classifier whose pyfunc returns class labels where probabilities are needed."""
    from airflow_mlops_provider.core.task_types import get_task_type

    get_task_type(task_type).check_output(raw, n_classes, flavor)


def class_labels(classes: Sequence[Any]) -> list[Any]:
    """Class labels as JSON-safe scalars (numpy ints become ints) in the model's order."""
    out = []
    for c in classes:
        item = c.item() if hasattr(c, "item") else c
        out.append(item)
    return out


def classes_from_tags(tags: dict[str, str] | None) -> list[Any] | None:
    raw = (tags or {}).get(CLASSES_TAG)
    return json.loads(raw) if raw else None


def proba_column(label: Any) -> str:
    """``proba_<class>``, with anything but letters, digits, ``_``, ``-`` and ``.`` replaced by ``_``."""
    return "proba_" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(label))


def output_matrix(raw: Any) -> Any:
    """A pyfunc prediction (array, DataFrame, Series, list) as a float numpy array."""
    import numpy as np

    return np.asarray(getattr(raw, "values", raw), dtype=float)


def class_probabilities(task_type: str, raw: Any, n_classes: int) -> Any:
    """(rows, classes) probabilities from a classifier's pyfunc output.

    A binary model may return the positive class's probability alone (LightGBM, XGBoost).
    """
    from airflow_mlops_provider.core.task_types import get_task_type

    return get_task_type(task_type).probabilities(raw, n_classes)


def regression_values(raw: Any) -> Any:
    arr = output_matrix(raw)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise TaskTypeError(f"a regression model must return one value per row, it returned {arr.shape[1]}")
        arr = arr[:, 0]
    return arr


def compute_metrics(task_type: str, y_true: Any, raw_output: Any,
                    classes: Sequence[Any] | None = None) -> dict[str, float]:
    """Holdout metrics of ``task_type`` from a model's raw pyfunc output (the same for any model)."""
    from airflow_mlops_provider.core.task_types import get_task_type

    return get_task_type(task_type).compute_metrics(y_true, raw_output, classes)


def binary_metrics(y_true: Any, proba: Any, threshold: float = 0.5) -> dict[str, float]:
    """roc_auc, log_loss, brier, accuracy, precision, recall, f1 from positive-class scores (0/1 labels)."""
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


def multiclass_metrics(y_true: Any, proba: Any, classes: Sequence[Any]) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics

    y = np.asarray(y_true)
    unknown = set(np.unique(y).tolist()) - set(classes)
    if unknown:
        raise TaskTypeError(f"the target holds values {sorted(unknown, key=str)} the model never saw "
                            f"(classes {list(classes)})")
    # scikit-learn wants probability columns in sorted label order; a model may list its classes otherwise.
    order = np.argsort(np.asarray(classes), kind="stable")
    labels = np.asarray(classes)[order]
    proba = np.asarray(proba, dtype=float)[:, order]
    proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-15, None)
    pred = labels[proba.argmax(axis=1)]
    out = {
        "accuracy": float(metrics.accuracy_score(y, pred)),
        # Averaged over the classes in the holdout or the predictions (scikit-learn's default).
        "f1_macro": float(metrics.f1_score(y, pred, average="macro", zero_division=0)),
        "f1_weighted": float(metrics.f1_score(y, pred, average="weighted", zero_division=0)),
        "log_loss": float(metrics.log_loss(y, np.clip(proba, 1e-15, 1), labels=list(labels))),
    }
    # One-vs-rest AUC over the classes present in the holdout (a class absent from it has no AUC).
    present = [i for i, label in enumerate(labels) if np.any(y == label)]
    if len(present) > 2:
        sub = proba[:, present]
        out["roc_auc_ovr"] = float(metrics.roc_auc_score(y, sub / sub.sum(axis=1, keepdims=True), multi_class="ovr",
                                                         labels=list(labels[present])))
    elif len(present) == 2:
        out["roc_auc_ovr"] = float(metrics.roc_auc_score(y == labels[present[1]], proba[:, present[1]]))
    return out


def regression_metrics(y_true: Any, prediction: Any) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics

    y = np.asarray(y_true, dtype=float)
    p = np.asarray(prediction, dtype=float)
    out = {
        "rmse": float(metrics.root_mean_squared_error(y, p)),
        "mae": float(metrics.mean_absolute_error(y, p)),
        "r2": float(metrics.r2_score(y, p)) if len(y) > 1 else float("nan"),
    }
    # MAPE divides by the target: defined only when no target value is 0.
    if len(y) and not np.any(y == 0):
        out["mape"] = float(metrics.mean_absolute_percentage_error(y, p))
    return {k: v for k, v in out.items() if not math.isnan(v)}


def output_columns(task_type: str, raw_output: Any, classes: Sequence[Any] | None = None) -> dict[str, Any]:
    """The scoring output columns of ``task_type`` (name -> numpy array) from a pyfunc output.

    binary → ``score``; multiclass → ``prediction`` plus ``proba_<class>`` per class;
    regression → ``prediction``.
    """
    from airflow_mlops_provider.core.task_types import get_task_type

    return get_task_type(task_type).output_columns(raw_output, classes)


def model_features(model: Any) -> list[str]:
    """The input columns of an MLflow pyfunc model's signature."""
    schema = model.metadata.get_input_schema()
    if schema is None:
        raise TaskTypeError("the model has no input signature: log it with a signature (infer_signature)")
    return list(schema.input_names())


def score_holdout(model: Any, holdout: Any, target: str, task_type: str,
                  classes: Sequence[Any] | None = None, model_uri: str = "the model") -> dict[str, float]:
    """Metrics of a pyfunc model on holdout rows: the same code for challenger and champion."""
    features = model_features(model)
    missing = [c for c in [*features, target] if c not in holdout.columns]
    if missing:
        raise KeyError(f"{model_uri} needs columns {missing} that the holdout lacks")
    return compute_metrics(task_type, holdout[target], model.predict(holdout[features]), classes)
