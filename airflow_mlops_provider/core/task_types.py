"""Task types as objects: one registry of what a model predicts and everything that follows from it.

A :class:`TaskType` knows its holdout metrics and which way each is better, its default
promotion and decay policies, its group (fairness) metrics, how its model predicts
(``predict_proba`` or ``predict``) and how the pyfunc output becomes metrics and scoring
columns, which target it trains on and which model it accepts. Operators ask the object; no
operator branches on a task type's name.

The built-ins are ``binary``, ``multiclass`` and ``regression``. Another one is added with
:func:`register_task_type` (tests, a DAG file's import) or, from another pip package, through
the entry-point group ``airflow_mlops_provider.task_types`` (an object, or a class to
instantiate), discovered the first time a name is not found among the registered ones or the
whole registry is listed.

A model version carries its type in the tag ``mlops.task_type`` (set by training, copied on
registration); :func:`task_type_of_version` reads it and refuses a version without it.

Pure: no Airflow, nothing heavy at import (numpy, pandas, scikit-learn are imported inside).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from airflow_mlops_provider.core.tasks import (
    TASK_TYPE_TAG,
    TaskTypeError,
    binary_metrics,
    multiclass_metrics,
    output_matrix,
    proba_column,
    regression_metrics,
    regression_values,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "airflow_mlops_provider.task_types"


class TaskType:
    """What a model predicts. Subclass it (or one of the built-ins) and register an instance.

    Class attributes a subclass sets: ``name``; ``metrics`` (metric -> ``"higher"`` /
    ``"lower"`` is better, or None for a descriptive figure no policy may use);
    ``group_metrics`` (bias metrics -> direction); ``default_policy`` (a
    :class:`~airflow_mlops_provider.core.policy.PromotionPolicy` dict); ``default_decay_policy``
    (a :class:`~airflow_mlops_provider.core.decay.DecayPolicy` dict); ``primary_output`` (the
    scoring column shadow scoring and prediction drift compare); ``predict_method`` (what the
    model's pyfunc calls: ``predict`` or ``predict_proba``); ``has_classes`` (the model has
    class labels, recorded as ``mlops.classes``); ``categorical_output`` (the primary output is
    a class label, not a number); ``shadow_threshold`` (a score threshold shadow scoring
    compares decisions at, or None).
    """

    name: ClassVar[str]
    metrics: ClassVar[Mapping[str, str | None]]
    group_metrics: ClassVar[Mapping[str, str]] = {}
    default_policy: ClassVar[Mapping[str, Any]]
    default_decay_policy: ClassVar[Mapping[str, Any]]
    primary_output: ClassVar[str] = "prediction"
    predict_method: ClassVar[str] = "predict"
    has_classes: ClassVar[bool] = False
    categorical_output: ClassVar[bool] = False
    shadow_threshold: ClassVar[float | None] = None

    def __repr__(self) -> str:
        return f"<task type {self.name!r}>"

    # -- training ---------------------------------------------------------------------------
    def check_target(self, values: Any, column: str, source: str) -> Any:
        """Refuse a target column this type cannot learn; return what to stratify the split on (or None)."""
        return None

    def check_model(self, model: Any) -> None:
        """Refuse a fitted estimator (scikit-learn path) that cannot predict the way this type scores."""
        name = type(model).__name__
        if not hasattr(model, "predict"):
            raise TaskTypeError(f"train_callable returned a {name}, which has no predict(); return a fitted "
                                "estimator, or set flavor/log_model for another kind of model")

    def classes(self, model: Any, target: Any) -> list[Any] | None:
        """The model's class labels (JSON-safe, the model's order), or None for a type without classes."""
        return None

    def check_output(self, raw: Any, n_classes: int, flavor: str) -> None:
        """Refuse a logged model whose pyfunc output this type cannot read."""

    # -- outputs ----------------------------------------------------------------------------
    def output_types(self, classes: Sequence[Any] | None = None) -> dict[str, str]:
        """The scoring output columns and their Arrow type names."""
        return {self.primary_output: "float64"}

    def output_columns(self, raw_output: Any, classes: Sequence[Any] | None = None) -> dict[str, Any]:
        """The scoring output columns (name -> numpy array) from a pyfunc output."""
        return {self.primary_output: regression_values(raw_output)}

    def scored_columns(self, names: Sequence[str]) -> list[str]:
        """Which of a scored partition's columns (``names``) this type wrote."""
        return [c for c in self.output_types() if c in names]

    def metric_input_columns(self, classes: Sequence[Any] | None) -> list[str]:
        """The scored columns that, read back, stand for the model's raw output in :meth:`compute_metrics`."""
        return [self.primary_output]

    # -- metrics ----------------------------------------------------------------------------
    def compute_metrics(self, y_true: Any, raw_output: Any, classes: Sequence[Any] | None = None) -> dict[str, float]:
        raise NotImplementedError

    def group_frame(self, y_true: Any, raw_output: Any, groups: Any, classes: Sequence[Any] | None,
                    threshold: float) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """``(group metrics, per-group values)``: see :mod:`airflow_mlops_provider.core.fairness`."""
        raise NotImplementedError(f"task type {self.name!r} has no group metrics")


class ClassifierTaskType(TaskType):
    """A model that returns class probabilities (pyfunc ``predict_proba``), with class labels."""

    predict_method = "predict_proba"
    has_classes = True
    #: How many distinct target values training needs: (min, max); max None: no upper bound.
    n_classes: ClassVar[tuple[int, int | None]] = (2, None)

    def check_target(self, values: Any, column: str, source: str) -> Any:
        counts = values.value_counts()
        low, high = self.n_classes
        if low == high and len(counts) != low:
            raise TaskTypeError(f"task_type {self.name!r} needs exactly {low} classes in target column {column!r} "
                                f"of {source!r}, found {len(counts)}: {sorted(counts.index.tolist(), key=str)[:10]}")
        if len(counts) < low or (high is not None and len(counts) > high):
            raise TaskTypeError(f"task_type {self.name!r} needs at least {low} classes in target column "
                                f"{column!r} of {source!r}, found {len(counts)}")
        return values if counts.min() >= 2 else None

    def check_model(self, model: Any) -> None:
        super().check_model(model)
        if not hasattr(model, "predict_proba"):
            raise TaskTypeError(f"task_type {self.name!r} scores class probabilities, but the {type(model).__name__} "
                                "returned by train_callable has no predict_proba(); use a probabilistic classifier "
                                "(e.g. wrap it in CalibratedClassifierCV) or task_type='regression'")

    def classes(self, model: Any, target: Any) -> list[Any] | None:
        from airflow_mlops_provider.core.tasks import class_labels

        fitted = getattr(model, "classes_", None)
        return class_labels(fitted if fitted is not None else sorted(target.unique()))

    def check_output(self, raw: Any, n_classes: int, flavor: str) -> None:
        import numpy as np

        arr = output_matrix(raw)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim == 1:
            if not self._positive_vector_ok() or np.isin(arr, (0.0, 1.0)).all() or arr.min() < 0 or arr.max() > 1:
                raise TaskTypeError(
                    f"the {flavor} model's pyfunc returns one value per row that is not a probability of the "
                    f"positive class (values {np.unique(arr)[:5].tolist()}...): a {self.name} model must return "
                    "class probabilities; log a probabilistic model (e.g. a LightGBM Booster with a 'binary' or "
                    "'multiclass' objective) or use log_model with a pyfunc wrapper that calls predict_proba")
        elif arr.shape[1] != n_classes:
            raise TaskTypeError(f"the {flavor} model returns {arr.shape[1]} probability columns for {n_classes} "
                                "classes")

    def _positive_vector_ok(self) -> bool:
        """A model may return the positive class's probability alone (binary only)."""
        return False

    def probabilities(self, raw: Any, n_classes: int) -> Any:
        """(rows, classes) probabilities from the pyfunc output."""
        import numpy as np

        arr = output_matrix(raw)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim == 1:
            if self._positive_vector_ok():
                return np.column_stack([1 - arr, arr])
            raise TaskTypeError(f"a {self.name} model must return one probability per class; it returned one value "
                                "per row (log it with predict_proba as its pyfunc output)")
        if arr.shape[1] != n_classes:
            raise TaskTypeError(f"the model returned {arr.shape[1]} probability columns for {n_classes} classes")
        return arr

    def _classes(self, y_true: Any, classes: Sequence[Any] | None) -> list[Any]:
        import numpy as np

        return list(classes) if classes is not None else sorted(np.unique(np.asarray(y_true)).tolist())


class BinaryTaskType(ClassifierTaskType):
    name = "binary"
    metrics = {"roc_auc": "higher", "average_precision": "higher", "log_loss": "lower", "brier": "lower",
               "accuracy": "higher", "precision": "higher", "recall": "higher", "f1": "higher",
               "positive_rate": None}
    group_metrics = {"demographic_parity_difference": "lower", "equalized_odds_difference": "lower",
                     "accuracy_group_min": "higher"}
    # Floors only where the metric has a chance level that does not depend on the data (AUC 0.5).
    default_policy = {"metrics": [{"name": "roc_auc", "direction": "higher", "floor": 0.7, "max_regression": 0.01},
                                  {"name": "log_loss", "direction": "lower", "max_regression": 0.02}],
                      "min_eval_rows": 100}
    default_decay_policy = {"metrics": [{"name": "roc_auc", "max_degradation": 0.05}], "min_rows": 200,
                            "max_label_delay_days": 7}
    primary_output = "score"
    n_classes = (2, 2)
    shadow_threshold = 0.5

    def _positive_vector_ok(self) -> bool:
        return True

    def output_columns(self, raw_output: Any, classes: Sequence[Any] | None = None) -> dict[str, Any]:
        arr = output_matrix(raw_output)
        return {"score": arr[:, -1] if arr.ndim == 2 else arr}

    def compute_metrics(self, y_true: Any, raw_output: Any, classes: Sequence[Any] | None = None) -> dict[str, float]:
        import numpy as np

        classes = self._classes(y_true, classes)
        proba = self.probabilities(raw_output, len(classes))
        if len(classes) != 2:
            raise TaskTypeError(f"a binary model needs 2 classes, this one has {len(classes)}: {classes}")
        y = np.asarray(y_true)
        unknown = set(np.unique(y).tolist()) - set(classes)
        if unknown:
            raise TaskTypeError(f"the target holds values {sorted(unknown, key=str)} the model never saw "
                                f"(classes {classes})")
        return binary_metrics((y == classes[1]).astype(int), proba[:, 1])

    def group_frame(self, y_true: Any, raw_output: Any, groups: Any, classes: Sequence[Any] | None,
                    threshold: float) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        from airflow_mlops_provider.core.fairness import binary_groups

        classes = self._classes(y_true, classes)
        return binary_groups(y_true, self.probabilities(raw_output, len(classes)), groups, classes, threshold)


class MulticlassTaskType(ClassifierTaskType):
    name = "multiclass"
    metrics = {"accuracy": "higher", "f1_macro": "higher", "f1_weighted": "higher", "log_loss": "lower",
               "roc_auc_ovr": "higher"}
    group_metrics = {"accuracy_group_difference": "lower", "accuracy_group_min": "higher"}
    default_policy = {"metrics": [{"name": "roc_auc_ovr", "direction": "higher", "floor": 0.6, "max_regression": 0.01},
                                  {"name": "f1_macro", "direction": "higher", "max_regression": 0.02},
                                  {"name": "log_loss", "direction": "lower", "max_regression": 0.05}],
                      "min_eval_rows": 100}
    default_decay_policy = {"metrics": [{"name": "f1_macro", "max_degradation": 0.05}], "min_rows": 200,
                            "max_label_delay_days": 7}
    n_classes = (3, None)
    categorical_output = True

    def output_types(self, classes: Sequence[Any] | None = None) -> dict[str, str]:
        if not classes:
            raise TaskTypeError("a multiclass model needs its class labels (tag mlops.classes) to be scored")
        import pyarrow as pa

        label_type = str(pa.array(list(classes)).type)  # int64, string, double, bool
        return {"prediction": label_type, **{proba_column(c): "float64" for c in classes}}

    def output_columns(self, raw_output: Any, classes: Sequence[Any] | None = None) -> dict[str, Any]:
        import numpy as np

        if not classes:
            raise TaskTypeError("a multiclass model needs its class labels (tag mlops.classes) to name its outputs")
        proba = self.probabilities(raw_output, len(classes))
        labels = np.asarray(classes)
        out: dict[str, Any] = {"prediction": labels[proba.argmax(axis=1)]}
        for i, label in enumerate(classes):
            out[proba_column(label)] = proba[:, i]
        return out

    def scored_columns(self, names: Sequence[str]) -> list[str]:
        return [c for c in names if c == "prediction" or c.startswith("proba_")]

    def metric_input_columns(self, classes: Sequence[Any] | None) -> list[str]:
        if not classes:
            raise TaskTypeError("a multiclass version needs its class labels (tag mlops.classes) to be evaluated")
        return [proba_column(c) for c in classes]

    def compute_metrics(self, y_true: Any, raw_output: Any, classes: Sequence[Any] | None = None) -> dict[str, float]:
        classes = self._classes(y_true, classes)
        return multiclass_metrics(y_true, self.probabilities(raw_output, len(classes)), classes)

    def group_frame(self, y_true: Any, raw_output: Any, groups: Any, classes: Sequence[Any] | None,
                    threshold: float) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        from airflow_mlops_provider.core.fairness import multiclass_groups

        classes = self._classes(y_true, classes)
        return multiclass_groups(y_true, self.probabilities(raw_output, len(classes)), groups, classes)


class RegressionTaskType(TaskType):
    name = "regression"
    metrics = {"rmse": "lower", "mae": "lower", "r2": "higher", "mape": "lower"}
    group_metrics = {"rmse_group_difference": "lower", "rmse_group_max": "lower"}
    # R² has a data-independent chance level (0); RMSE carries units: judged relative to the champion.
    default_policy = {"metrics": [{"name": "r2", "direction": "higher", "floor": 0.0, "max_regression": 0.02},
                                  {"name": "rmse", "direction": "lower", "max_relative_regression": 0.05}],
                      "min_eval_rows": 100}
    default_decay_policy = {"metrics": [{"name": "rmse", "max_relative_degradation": 0.10}], "min_rows": 200,
                            "max_label_delay_days": 7}

    def check_target(self, values: Any, column: str, source: str) -> Any:
        import pandas as pd

        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise TaskTypeError(f"task_type {self.name!r} needs a numeric target; column {column!r} of "
                                f"{source!r} has dtype {values.dtype}")
        return None

    def values(self, raw_output: Any) -> Any:
        """One prediction per row from a pyfunc output."""
        return regression_values(raw_output)

    def compute_metrics(self, y_true: Any, raw_output: Any, classes: Sequence[Any] | None = None) -> dict[str, float]:
        return regression_metrics(y_true, self.values(raw_output))

    def group_frame(self, y_true: Any, raw_output: Any, groups: Any, classes: Sequence[Any] | None,
                    threshold: float) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        from airflow_mlops_provider.core.fairness import regression_groups

        return regression_groups(y_true, self.values(raw_output), groups)


BUILTIN: tuple[TaskType, ...] = (BinaryTaskType(), MulticlassTaskType(), RegressionTaskType())

_REGISTRY: dict[str, TaskType] = {t.name: t for t in BUILTIN}
_discovered = False
#: Entry points that failed to load: name -> why (named when the type is asked for).
_BROKEN: dict[str, str] = {}


def register_task_type(task_type: TaskType, *, replace: bool = False) -> TaskType:
    """Add ``task_type`` to the registry under its ``name`` and return it.

    Registering the same type again (the same object, or an instance of a class with the same
    qualified name, as when a module is imported twice) is a no-op; another type under a taken
    name is refused unless ``replace``.
    """
    if isinstance(task_type, type) and issubclass(task_type, TaskType):
        task_type = task_type()
    if not isinstance(task_type, TaskType):
        raise TypeError(f"register_task_type needs a TaskType instance, got {task_type!r}")
    name = getattr(task_type, "name", None)
    if not isinstance(name, str) or not name.strip() or name != name.strip().lower():
        raise TaskTypeError(f"a task type's name must be a non-empty lowercase string, got {name!r}")
    existing = _REGISTRY.get(name)
    if existing is not None and not replace and existing is not task_type \
            and type(existing).__qualname__ != type(task_type).__qualname__:
        raise TaskTypeError(f"task type {name!r} is already registered ({type(existing).__qualname__}); "
                            "pass replace=True to replace it")
    _REGISTRY[name] = task_type
    return task_type


def unregister_task_type(name: str) -> None:
    """Remove a registered type (tests); a built-in cannot be removed."""
    if any(t.name == name for t in BUILTIN):
        raise TaskTypeError(f"{name!r} is a built-in task type")
    _REGISTRY.pop(name, None)


def _discover(entry_points: Callable[..., Any] | None = None) -> None:
    """Load the ``airflow_mlops_provider.task_types`` entry points once (a broken one is logged and skipped)."""
    global _discovered
    if _discovered and entry_points is None:
        return
    if entry_points is None:
        from importlib.metadata import entry_points
    _discovered = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        try:
            registered = register_task_type(ep.load())
        except Exception as err:  # noqa: BLE001 - one broken plug-in must not hide the others; named on use
            _BROKEN[ep.name] = f"entry point {ep.name} = {ep.value} cannot be loaded: {type(err).__name__}: {err}"
            log.warning("task type %s", _BROKEN[ep.name])
            continue
        if registered.name != ep.name:
            log.warning("task type entry point %r registers a type named %r", ep.name, registered.name)


def task_types() -> dict[str, TaskType]:
    """Every registered task type by name (built-ins, registered ones, entry points)."""
    _discover()
    return dict(_REGISTRY)


def get_task_type(value: Any) -> TaskType:
    """The registered task type named ``value`` (case and spaces ignored), or ``value`` if it is one."""
    if isinstance(value, TaskType):
        return value
    text = str(value or "").strip().lower()
    found = _REGISTRY.get(text)
    if found is None:
        _discover()
        found = _REGISTRY.get(text)
    if found is None:
        why = f" ({_BROKEN[text]})" if text in _BROKEN else ""
        raise TaskTypeError(f"task_type {value!r} is not one of {sorted(_REGISTRY)}{why}")
    return found


def task_type_of_tags(tags: Mapping[str, str] | None, what: str) -> TaskType:
    """The task type recorded in ``tags`` (``mlops.task_type``); ``what`` names the run or version."""
    value = (tags or {}).get(TASK_TYPE_TAG)
    if not value:
        raise TaskTypeError(f"{what} has no {TASK_TYPE_TAG} tag, so its task type is unknown; train it with "
                            f"MlflowTrainModelOperator, or set the tag ({sorted(task_types())})")
    try:
        return get_task_type(value)
    except TaskTypeError as err:
        raise TaskTypeError(f"{what}: tag {TASK_TYPE_TAG}={value!r}: {err}") from err


def task_type_of_version(model: str, version: Any) -> TaskType:
    """The task type of an MLflow model version (an object with ``version`` and ``tags``)."""
    return task_type_of_tags(getattr(version, "tags", None),
                             f"model {model!r} version {getattr(version, 'version', version)}")
