"""The quality canary: the same rows to the candidate and the champion, their answers compared.

While the candidate holds its canary share, a sample of recent rows is sent to both; what comes
back is compared three ways, each judged by a declared limit (defined once, in
:data:`CANARY_LIMITS`; the targets' schema, defaults and the operator's arguments derive from it):

- **class agreement**: the share of rows on which both predict the same class (labels compared
  as they are; scores in [0, 1] turned into classes at ``canary_threshold``). Not judged for
  scores outside [0, 1] (a regression): there is no class to agree on.
- **score-distribution distance**: the population stability index (PSI, ten bins on the
  champion's quantiles, or one bin per class) and the two-sample Kolmogorov-Smirnov statistic.
- **mean absolute difference** of the scores, row by row.

A canary with no errors and low latency is rolled back when any of these breaks its limit.
"""

from __future__ import annotations

import math
from typing import Any

from airflow_mlops_provider.core.load import check_limits

CANARY_LIMITS: dict[str, dict[str, Any]] = {
    "canary_rows": {"type": "integer", "minimum": 0, "maximum": 10000, "default": 0,
                    "description": "rows sent to both candidate and champion; 0: no quality canary"},
    "canary_min_agreement": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.95},
    "canary_max_psi": {"type": "number", "minimum": 0, "default": 0.25},
    "canary_max_ks": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.3},
    "canary_max_mean_abs_diff": {"type": "number", "minimum": 0, "default": 0.1},
    "canary_threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                         "description": "the score at which a probability becomes the positive class"},
}


def canary_policy(**given: Any) -> dict[str, Any]:
    """A canary policy from (possibly templated) values, checked against :data:`CANARY_LIMITS`."""
    unknown = sorted(set(given) - set(CANARY_LIMITS))
    if unknown:
        raise ValueError(f"{unknown[0]} is not a canary policy field; known: {sorted(CANARY_LIMITS)}")
    return check_limits(CANARY_LIMITS, given)


def _flat(prediction: Any) -> Any:
    """One prediction as a scalar: ``[p0, p1]`` -> p1 (the positive class), ``{"k": v}`` -> its one value."""
    if isinstance(prediction, dict) and len(prediction) == 1:
        prediction = next(iter(prediction.values()))
    if isinstance(prediction, (list, tuple)):
        if len(prediction) == 1:
            return _flat(prediction[0])
        if len(prediction) == 2:
            return _flat(prediction[1])
        raise ValueError(f"cannot compare a prediction of {len(prediction)} values: {str(prediction)[:80]}")
    return prediction


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def psi(reference: list[Any], current: list[Any], *, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index of ``current`` against ``reference``: one bin per class when the
    values are labels (not numbers, or whole numbers), else ``bins`` quantile bins of ``reference``."""
    import numpy as np

    ref_numbers = [_number(v) for v in reference]
    cur_numbers = [_number(v) for v in current]
    numbers = (*ref_numbers, *cur_numbers)
    categorical = any(v is None for v in numbers) or all(float(v).is_integer() for v in numbers)  # type: ignore[arg-type]
    if categorical:
        keys = sorted({str(v) for v in (*reference, *current)})
        ref_counts = np.array([sum(str(v) == k for v in reference) for k in keys], dtype=float)
        cur_counts = np.array([sum(str(v) == k for v in current) for k in keys], dtype=float)
    else:
        ref = np.asarray(ref_numbers, dtype=float)
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
        ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1).astype(float)
        cur_counts = np.bincount(np.searchsorted(edges, np.asarray(cur_numbers, dtype=float), side="right"),
                                 minlength=len(edges) + 1).astype(float)
    p = np.clip(ref_counts / max(ref_counts.sum(), 1), eps, None)
    q = np.clip(cur_counts / max(cur_counts.sum(), 1), eps, None)
    return float(np.sum((q - p) * np.log(q / p)))


def compare_predictions(candidate: list[Any], champion: list[Any], *, threshold: float = 0.5) -> dict[str, Any]:
    """Class agreement, PSI, KS statistic and mean absolute difference of two answers to the same rows.

    Returns ``{"rows", "agreement", "psi", "ks", "mean_abs_diff", "kind"}``; ``kind`` is ``labels``
    (non-numeric or whole-number classes), ``probabilities`` (scores in [0, 1]) or ``scores``;
    figures that do not apply to the kind are None. Raises ``ValueError`` when the lengths differ.
    """
    if len(candidate) != len(champion):
        raise ValueError(f"the candidate answered {len(candidate)} predictions and the champion {len(champion)} "
                         "for the same rows")
    if not candidate:
        raise ValueError("no rows to compare")
    cand, champ = [_flat(v) for v in candidate], [_flat(v) for v in champion]
    cand_n, champ_n = [_number(v) for v in cand], [_number(v) for v in champ]
    numeric = all(v is not None for v in (*cand_n, *champ_n))
    if not numeric:
        kind = "labels"
    elif all(float(v).is_integer() for v in (*cand_n, *champ_n)):  # type: ignore[arg-type]
        kind = "labels"
    elif all(0 <= v <= 1 for v in (*cand_n, *champ_n)):  # type: ignore[operator]
        kind = "probabilities"
    else:
        kind = "scores"
    out: dict[str, Any] = {"rows": len(cand), "kind": kind, "agreement": None, "psi": None, "ks": None,
                           "mean_abs_diff": None}
    if kind == "labels":
        out["agreement"] = sum(str(a) == str(b) for a, b in zip(cand, champ, strict=True)) / len(cand)
    elif kind == "probabilities":
        out["agreement"] = sum((a >= threshold) == (b >= threshold)  # type: ignore[operator]
                               for a, b in zip(cand_n, champ_n, strict=True)) / len(cand)
    out["psi"] = round(psi(champ, cand), 6)
    if numeric:
        from scipy import stats

        out["ks"] = round(float(stats.ks_2samp(cand_n, champ_n).statistic), 6)
        out["mean_abs_diff"] = round(sum(abs(a - b) for a, b in zip(cand_n, champ_n, strict=True)) / len(cand), 6)  # type: ignore[operator]
    if out["agreement"] is not None:
        out["agreement"] = round(out["agreement"], 6)
    return out


# (limit, measured field, how the message names it, True: the figure must stay at or above the limit)
_CHECKS = (
    ("canary_min_agreement", "agreement", "class agreement with the champion", True),
    ("canary_max_psi", "psi", "PSI of the candidate's scores against the champion's", False),
    ("canary_max_ks", "ks", "KS statistic of the candidate's scores against the champion's", False),
    ("canary_max_mean_abs_diff", "mean_abs_diff", "mean absolute difference from the champion's scores", False),
)


def judge_canary(figures: dict[str, Any], policy: dict[str, Any]) -> list[dict[str, Any]]:
    """Every limit of ``policy`` the figures break: ``{"limit", "limit_value", "measured", "message"}``.
    A figure that does not apply (None) is not judged."""
    broken = []
    for limit, measured_field, what, at_least in _CHECKS:
        bound, measured = policy.get(limit), figures.get(measured_field)
        if bound is None or measured is None:
            continue
        if (measured < bound) if at_least else (measured > bound):
            relation = "below" if at_least else "above"
            shown = f"{measured:.1%}" if at_least else f"{measured:.4g}"
            limit_shown = f"{bound:.1%}" if at_least else f"{bound:g}"
            broken.append({"limit": limit, "limit_value": bound, "measured": measured,
                           "message": f"{what} {shown} is {relation} the {limit} limit of {limit_shown}"})
    return broken
