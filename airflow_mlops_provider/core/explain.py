"""Feature attributions: why a model version decides what it decides.

Two uses of one explainer (:class:`Explainer`, built from an MLflow pyfunc model and a bounded,
seeded background sample of its input rows):

* **global attributions** of a version (:func:`global_attributions`): the mean absolute
  contribution of each input feature on a sample of rows, and the shift against another
  version's (:func:`attribution_shift`) — computed at the promotion gate on the holdout both
  versions are judged on;
* **per-row reason codes** (:class:`ReasonCodeScorer`): the ``top_k`` features of each scored row
  with their signed contributions, as extra output columns ``reason_<i>_feature`` /
  ``reason_<i>_contribution``, computed chunk by chunk beside the prediction (memory bounded by
  the chunk).

How a model is explained (the ``method`` recorded with every result):

* ``shap.tree``: the model (or a scikit-learn Pipeline's final step) is a tree ensemble SHAP's
  ``TreeExplainer`` reads (scikit-learn forests and boosting, LightGBM, XGBoost): exact,
  path-dependent, no background needed; contributions in the model's raw output (log-odds for
  boosted classifiers, probability for forests).
* ``shap.linear``: a linear model with ``coef_``: exact interventional SHAP against the
  background mean (log-odds for logistic regression).
* For a Pipeline, SHAP runs on the final estimator over the transformed columns, and each input
  feature receives the sum of the contributions of the transformed columns that depend on it
  alone (SHAP values are additive over such a group). Which input a transformed column depends on
  is checked on the sample by permuting one input column at a time (and, for columns the sample
  leaves constant, e.g. a rare one-hot category, by the names ``get_feature_names_out`` gives); a
  transformed column that depends on two inputs (PCA, polynomial features) or cannot be placed
  sends the model to the model-agnostic method.
* ``shap.permutation`` (any pyfunc flavor): SHAP's permutation explainer on the task type's
  numeric output (binary score, regression prediction, multiclass class probabilities) through
  ``model.predict``, masking with ``background_rows`` background rows and one antithetic
  permutation per row: each explained row costs about ``(2 × features + 1) × background_rows``
  predictions, so keep it for the gate's sample; per-row reason codes through it are slow.

Multiclass: a row's contributions are those toward the class the model predicts for it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from airflow_mlops_provider.core.optional import require

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_ROWS = 500
DEFAULT_BACKGROUND_ROWS = 100
DEFAULT_TOP_K = 5
AGNOSTIC_MAX_ROWS = 100


class ExplainError(ValueError):
    """The model cannot be explained as asked (no features, bad ``top_k``, empty sample)."""


def reason_columns(top_k: int) -> dict[str, str]:
    """The reason-code output columns for ``top_k`` reasons, name -> Arrow type."""
    out: dict[str, str] = {}
    for i in range(1, top_k + 1):
        out[f"reason_{i}_feature"] = "string"
        out[f"reason_{i}_contribution"] = "float64"
    return out


def shap_available() -> bool:
    """Whether the ``explain`` extra (shap) is installed, without importing it (it is slow to import)."""
    import importlib.util

    return importlib.util.find_spec("shap") is not None


def _shap() -> Any:
    return require("shap")


def _sample(frame: Any, rows: int, seed: int) -> Any:
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    return frame.sample(n=rows, random_state=seed).reset_index(drop=True)


def _dense(matrix: Any) -> Any:
    import numpy as np

    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=float)


def _raw_model(model: Any) -> Any:
    """The flavor's native model behind a pyfunc model, or None when the flavor does not expose it."""
    getter = getattr(model, "get_raw_model", None)
    if getter is None:
        return None
    try:
        return getter()
    except Exception:  # noqa: BLE001 - a flavor without a raw model: the agnostic path
        return None


def _is_pipeline(model: Any) -> bool:
    return hasattr(model, "steps") and hasattr(model, "__getitem__") and len(getattr(model, "steps", ())) > 1


def _column_owners(pre: Any, sample: Any, features: Sequence[str], seed: int) -> list[int] | None:
    """For each column ``pre`` outputs, the index of the one input feature it depends on (None if any
    column depends on several inputs or on none that can be named)."""
    import numpy as np

    base = _dense(pre.transform(sample))
    owner = np.full(base.shape[1], -1)
    rng = np.random.default_rng(seed)
    for j, column in enumerate(features):
        values = sample[column].to_numpy()
        if len(set(map(str, values))) < 2:
            continue
        perturbed = sample.copy()
        # A permutation that moves every row (a rotation of a shuffled order) keeps the column's values.
        order = rng.permutation(len(sample))
        perturbed[column] = values[np.roll(order, 1)][np.argsort(order)]
        changed = np.any(~np.isclose(_dense(pre.transform(perturbed)), base, equal_nan=True), axis=0)
        if np.any(owner[changed] >= 0):
            return None  # a transformed column moves with two inputs: not separable
        owner[changed] = j
    if np.any(owner < 0):
        names = _names_out(pre, features)
        if names is None:
            return None
        for i in np.flatnonzero(owner < 0):
            j = _owner_by_name(str(names[i]), features)
            if j is None:
                return None
            owner[i] = j
    return owner.tolist()


def _names_out(pre: Any, features: Sequence[str]) -> Any:
    try:
        return pre.get_feature_names_out(list(features))
    except Exception:  # noqa: BLE001 - a transformer without output names
        try:
            return pre.get_feature_names_out()
        except Exception:  # noqa: BLE001
            return None


def _owner_by_name(name: str, features: Sequence[str]) -> int | None:
    """``num__amount`` -> ``amount``; ``cat__country_FR`` / ``country_FR`` -> ``country`` (longest match)."""
    bare = name.rsplit("__", 1)[-1]
    best: int | None = None
    for j, feature in enumerate(features):
        if bare == feature or re.match(re.escape(feature) + r"_", bare):
            if best is None or len(feature) > len(features[best]):
                best = j
    return best


class Explainer:
    """Per-row contributions of each input feature to a pyfunc model's output.

    :param model: an MLflow pyfunc model (any flavor).
    :param background: input rows (a DataFrame holding at least the model's features) that stand
        for "typical" data: the baseline contributions are measured against them. Sampled down to
        ``background_rows`` (seeded).
    :param scorer: ``frame -> {column: values}`` (the task type's outputs,
        :class:`~airflow_mlops_provider.core.scoring.TaskScorer`) for the model-agnostic method; its
        numeric columns are explained.
    :param method: ``auto`` (tree, else linear, else permutation) or one of ``shap.tree``,
        ``shap.linear``, ``shap.permutation``.
    """

    def __init__(self, model: Any, background: Any, *, features: Sequence[str] | None = None,
                 scorer: Callable[[Any], Any] | None = None, method: str = "auto",
                 background_rows: int = DEFAULT_BACKGROUND_ROWS, seed: int = 0) -> None:
        if features is None:
            from airflow_mlops_provider.core.tasks import model_features

            features = model_features(model)
        self.features = list(features)
        if not self.features:
            raise ExplainError("the model has no input features to attribute to")
        missing = [c for c in self.features if c not in background.columns]
        if missing:
            raise ExplainError(f"the background rows lack the model's feature columns {missing}")
        if len(background) == 0:
            raise ExplainError("no background rows to explain against")
        if method not in ("auto", "shap.tree", "shap.linear", "shap.permutation"):
            raise ExplainError(f"unknown explanation method {method!r}; use auto, shap.tree, shap.linear "
                               "or shap.permutation")
        self.model, self.scorer, self.seed = model, scorer, seed
        self.background = _sample(background[self.features], max(1, int(background_rows)), seed)
        self.pre, self.owners, self.output = None, None, "prediction"
        self._explainer: Any = None
        self.method = self._build(method)

    # -- construction ---------------------------------------------------------------------------
    def _build(self, method: str) -> str:
        shap = _shap()
        raw = _raw_model(self.model) if method != "shap.permutation" else None
        if raw is not None:
            final, pre = raw, None
            if _is_pipeline(raw):
                final, pre = raw[-1], raw[:-1]
            owners = None
            if pre is not None:
                try:
                    owners = _column_owners(pre, self.background, self.features, self.seed)
                except Exception as err:  # noqa: BLE001 - a transformer that cannot run alone
                    log.info("pipeline preprocessing cannot be mapped to input features: %s", err)
                    owners = None
            if pre is None or owners is not None:
                data = self.background if pre is None else _dense(pre.transform(self.background))
                if method in ("auto", "shap.tree"):
                    try:
                        self._explainer = shap.TreeExplainer(final)
                        self.pre, self.owners = pre, owners
                        self.output = str(getattr(self._explainer.model, "tree_output", "raw"))
                        return "shap.tree"
                    except Exception as err:
                        if method == "shap.tree":
                            raise ExplainError(f"SHAP's tree explainer cannot read this model: {err}") from err
                if method in ("auto", "shap.linear") and hasattr(final, "coef_") and hasattr(final, "intercept_"):
                    self._explainer = shap.LinearExplainer(final, shap.maskers.Independent(
                        data if pre is not None else _dense(data), max_samples=len(data)))
                    self.pre, self.owners = pre, owners
                    self.output = "log_odds" if hasattr(final, "predict_proba") else "prediction"
                    return "shap.linear"
                if method == "shap.linear":
                    raise ExplainError("the model is not a linear model with coef_ (shap.linear)")
        elif method in ("shap.tree", "shap.linear"):
            raise ExplainError(f"{method} needs the flavor's native model; this pyfunc flavor exposes none")
        if self.scorer is None:
            raise ExplainError("the model-agnostic method needs the task type's scorer")
        # The masker compares values numerically: text columns travel as codes into the category list.
        self._categories = {c: [] for c in self.features if self.background[c].dtype.kind not in "fiub"}
        self._explainer = shap.PermutationExplainer(self._numeric_predict, shap.maskers.Independent(
            self._encode(self.background), max_samples=len(self.background)), seed=self.seed)
        self.output = "model output (score / prediction / class probability)"
        return "shap.permutation"

    def _encode(self, frame: Any) -> Any:
        import numpy as np

        out = np.empty((len(frame), len(self.features)), dtype=float)
        for j, column in enumerate(self.features):
            values = frame[column].to_numpy()
            if column not in self._categories:
                out[:, j] = values.astype(float)
                continue
            known = self._categories[column]
            index = {v: i for i, v in enumerate(known)}
            for v in values:
                if v not in index:
                    index[v] = len(known)
                    known.append(v)
            out[:, j] = [index[v] for v in values]
        return out

    def _numeric_predict(self, values: Any) -> Any:
        import numpy as np
        import pandas as pd

        frame = pd.DataFrame(values, columns=self.features)
        for column in self.features:  # codes back to the values and types the signature wants
            if column in self._categories:
                frame[column] = np.asarray(self._categories[column], dtype=object)[values[:, self.features.index(column)]
                                                                                   .astype(int)]
            frame[column] = frame[column].astype(self.background[column].dtype)
        out = self.scorer(frame)  # type: ignore[misc]
        numeric = [np.asarray(v, dtype=float) for v in out.values() if np.asarray(v).dtype.kind in "fiub"]
        if not numeric:
            raise ExplainError("the model's outputs have no numeric column to explain")
        return numeric[0] if len(numeric) == 1 else np.column_stack(numeric)

    # -- contributions --------------------------------------------------------------------------
    def contributions(self, frame: Any) -> Any:
        """An (rows × features) array: each row's contribution of each input feature."""
        import numpy as np

        x = frame[self.features]
        if self.method == "shap.permutation":
            n = len(self.features)
            explanation = self._explainer(self._encode(x), max_evals=2 * n + 1, silent=True)
            values, base = np.asarray(explanation.values, dtype=float), np.asarray(explanation.base_values)
        else:
            data = _dense(self.pre.transform(x)) if self.pre is not None else x
            if self.method == "shap.tree":
                values = self._explainer.shap_values(data, check_additivity=False)
            else:
                values = self._explainer.shap_values(_dense(data))
            if isinstance(values, list):
                values = np.stack(values, axis=-1)
            values = np.asarray(values, dtype=float)
            base = np.asarray(self._explainer.expected_value, dtype=float)
        values = self._one_output(values, base)
        if self.owners is not None:  # transformed columns -> the input feature each depends on
            grouped = np.zeros((values.shape[0], len(self.features)))
            np.add.at(grouped.T, np.asarray(self.owners), values.T)
            values = grouped
        return values

    @staticmethod
    def _one_output(values: Any, base: Any) -> Any:
        """(rows, columns, outputs) -> (rows, columns): binary = the positive class; more outputs =
        the output the row's prediction picks (largest base + sum, SHAP being additive)."""
        import numpy as np

        if values.ndim == 2:
            return values
        if values.shape[2] == 2:
            return values[:, :, 1]
        base = np.broadcast_to(base.reshape(-1, base.shape[-1]) if base.ndim else base,
                               (values.shape[0], values.shape[2]))
        picked = (base + values.sum(axis=1)).argmax(axis=1)
        return values[np.arange(values.shape[0]), :, picked]


def global_attributions(explainer: Explainer, frame: Any, *, rows: int = DEFAULT_SAMPLE_ROWS,
                        seed: int = 0) -> dict[str, Any]:
    """Mean absolute contribution per input feature on a seeded sample of at most ``rows`` rows.

    ``{"method", "rows", "features": {name: mean_abs}, "shift": None, "output"}``, features
    ordered from most to least important."""
    import numpy as np

    if len(frame) == 0:
        raise ExplainError("no rows to explain")
    sample = _sample(frame[explainer.features], rows, seed)
    values = explainer.contributions(sample)
    mean_abs = np.abs(values).mean(axis=0)
    order = sorted(range(len(explainer.features)), key=lambda j: (-mean_abs[j], explainer.features[j]))
    return {"method": explainer.method, "rows": len(sample), "output": explainer.output,
            "features": {explainer.features[j]: round(float(mean_abs[j]), 8) for j in order}, "shift": None}


def version_explanations(model: Any, holdout: Any, task_type: Any, classes: Sequence[Any] | None = None, *,
                         version: str, rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0,
                         background_rows: int = DEFAULT_BACKGROUND_ROWS, top_k: int = DEFAULT_TOP_K,
                         champion: tuple[Any, str, Sequence[Any] | None] | None = None) -> dict[str, Any]:
    """The gate's evidence: the challenger's global attributions on a seeded sample of ``holdout``
    and, with ``champion`` = (model, version, classes), the champion's on the same rows and the shift.

    ``{"version", "method", "rows", "output", "features", "shift", "champion"}``; ``shift`` and
    ``champion`` are None without a champion. The model-agnostic method explains at most
    ``AGNOSTIC_MAX_ROWS`` rows (it costs ``(2 × features + 1) × background_rows`` predictions a row).
    """
    from airflow_mlops_provider.core.scoring import task_scorer

    def explain(m: Any, m_classes: Sequence[Any] | None) -> dict[str, Any]:
        ex = Explainer(m, holdout, scorer=task_scorer(m, task_type, m_classes), background_rows=background_rows,
                       seed=seed)
        n = rows if ex.method != "shap.permutation" else min(rows, AGNOSTIC_MAX_ROWS)
        return global_attributions(ex, holdout, rows=n, seed=seed)

    result: dict[str, Any] = {"version": str(version), **explain(model, classes), "champion": None}
    if champion is not None:
        c_model, c_version, c_classes = champion
        theirs = {"version": str(c_version), **explain(c_model, c_classes)}
        result["shift"] = {"against_version": str(c_version),
                           **attribution_shift(result["features"], theirs["features"], top_k)}
        result["champion"] = theirs
    return result


def _ranks(features: dict[str, float]) -> dict[str, int]:
    return {f: i + 1 for i, f in enumerate(sorted(features, key=lambda f: (-features[f], f)))}


def attribution_shift(current: dict[str, float], reference: dict[str, float],
                      top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
    """How ``current``'s feature ranking moved against ``reference``'s (e.g. challenger vs champion).

    ``rank_changes``: reference rank minus current rank per shared feature (positive: more important
    now); ``top_k_overlap``: the share of the reference's top ``top_k`` still in the current top
    ``top_k``; ``rank_correlation``: Spearman's rho over the shared features (None below 2)."""
    rc, rr = _ranks(current), _ranks(reference)
    k = max(1, min(top_k, len(rc), len(rr))) if rc and rr else 0
    top_c = [f for f, r in sorted(rc.items(), key=lambda i: i[1])][:k]
    top_r = [f for f, r in sorted(rr.items(), key=lambda i: i[1])][:k]
    shared = [f for f in rc if f in rr]
    rho = None
    if len(shared) >= 2:
        # Spearman over the shared features, re-ranked among themselves.
        sc = _ranks({f: current[f] for f in shared})
        sr = _ranks({f: reference[f] for f in shared})
        n = len(shared)
        rho = round(1 - 6 * sum((sc[f] - sr[f]) ** 2 for f in shared) / (n * (n * n - 1)), 6)
    return {
        "top_k": k,
        "top_k_overlap": round(len(set(top_c) & set(top_r)) / k, 6) if k else None,
        "entered_top_k": [f for f in top_c if f not in top_r],
        "left_top_k": [f for f in top_r if f not in top_c],
        "rank_changes": {f: rr[f] - rc[f] for f in sorted(shared, key=lambda f: rc[f])},
        "rank_correlation": rho,
        "added_features": sorted(set(rc) - set(rr)),
        "removed_features": sorted(set(rr) - set(rc)),
    }


def top_reasons(values: Any, features: Sequence[str], top_k: int) -> dict[str, Any]:
    """The ``top_k`` largest absolute contributions of each row, as reason columns (see
    :func:`reason_columns`); ties keep the features' order."""
    import numpy as np

    names = np.asarray(list(features), dtype=object)
    k = min(top_k, values.shape[1])
    idx = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(values, idx, axis=1)
    out: dict[str, Any] = {}
    for i in range(k):
        out[f"reason_{i + 1}_feature"] = names[idx[:, i]]
        out[f"reason_{i + 1}_contribution"] = picked[:, i]
    return out


class ReasonCodeScorer:
    """A task scorer that also writes each row's ``top_k`` reasons (``reason_<i>_feature``,
    ``reason_<i>_contribution``, most important first) after the task type's outputs.

    Drop-in for :class:`~airflow_mlops_provider.core.scoring.TaskScorer` in
    :func:`~airflow_mlops_provider.core.scoring.score_file`: one chunk in, the chunk's outputs and
    reasons out, so memory stays bounded by the chunk. ``top_k`` is capped at the number of features.
    """

    def __init__(self, scorer: Callable[[Any], Any], explainer: Explainer, top_k: int) -> None:
        if int(top_k) < 1:
            raise ExplainError(f"explain_top_k must be >= 1, got {top_k}")
        self.scorer, self.explainer = scorer, explainer
        self.top_k = min(int(top_k), len(explainer.features))
        self.columns = {**getattr(scorer, "columns", {}), **reason_columns(self.top_k)}
        self.explain_seconds = 0.0

    def __call__(self, frame: Any) -> dict[str, Any]:
        import time

        out = self.scorer(frame)
        if not isinstance(out, dict):
            raise ExplainError("reason codes need a scorer that returns named output columns")
        started = time.monotonic()
        reasons = top_reasons(self.explainer.contributions(frame), self.explainer.features, self.top_k)
        self.explain_seconds += time.monotonic() - started
        return {**out, **reasons}


__all__ = ["DEFAULT_BACKGROUND_ROWS", "DEFAULT_SAMPLE_ROWS", "DEFAULT_TOP_K", "ExplainError", "Explainer",
           "ReasonCodeScorer", "attribution_shift", "global_attributions", "reason_columns", "shap_available", "top_reasons",
           "version_explanations"]
