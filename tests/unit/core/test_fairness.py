"""Group metrics from fairlearn's MetricFrame, per task type, on hand-made predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops_provider.core.fairness import FairnessError, group_metrics


def test_binary_parity_and_odds_differences_by_group():
    groups = pd.DataFrame({"region": ["A"] * 4 + ["B"] * 4})
    y = [0, 1, 0, 1, 0, 1, 0, 1]
    proba = np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8],   # A: perfect, selects 2/4
                      [0.1, 0.9], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])  # B: selects all 4/4
    result = group_metrics("binary", y, proba, groups, classes=[0, 1])
    assert result["metrics"]["demographic_parity_difference"] == pytest.approx(0.5)
    assert result["metrics"]["equalized_odds_difference"] == pytest.approx(1.0)  # FPR 0 vs 1
    assert result["metrics"]["accuracy_group_min"] == pytest.approx(0.5)
    assert result["groups"]["selection_rate"] == {"A": 0.5, "B": 1.0}
    assert result["sizes"] == {"A": 4, "B": 4}


def test_regression_per_group_error_and_crossed_attributes():
    groups = pd.DataFrame({"region": ["A", "A", "B", "B"], "age": ["young", "old", "young", "old"]})
    result = group_metrics("regression", [1.0, 2.0, 3.0, 4.0], np.array([1.0, 2.0, 5.0, 4.0]), groups)
    assert result["metrics"]["rmse_group_max"] == pytest.approx(2.0)
    assert result["metrics"]["rmse_group_difference"] == pytest.approx(2.0)
    assert set(result["groups"]["rmse"]) == {"A|young", "A|old", "B|young", "B|old"}


def test_multiclass_accuracy_gap():
    groups = pd.DataFrame({"g": ["x", "x", "y", "y"]})
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.8, 0.1, 0.1]])
    result = group_metrics("multiclass", ["a", "b", "c", "b"], proba, groups, classes=["a", "b", "c"])
    assert result["metrics"]["accuracy_group_difference"] == pytest.approx(1.0)
    assert result["metrics"]["accuracy_group_min"] == pytest.approx(0.0)


def test_an_empty_sensitive_column_is_named():
    with pytest.raises(FairnessError, match=r"\['region'\] hold no values"):
        group_metrics("binary", [0, 1], np.array([[0.5, 0.5]] * 2), pd.DataFrame({"region": [None, None]}))
