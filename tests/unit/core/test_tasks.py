"""Task types: metrics per type from scikit-learn, policy checks, scoring output columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from airflow_mlops_provider.core.policy import PromotionPolicy
from airflow_mlops_provider.core.scoring import task_scorer
from airflow_mlops_provider.core.tasks import (
    METRICS,
    TaskTypeError,
    check_policy_metrics,
    compute_metrics,
    default_policy,
    output_columns,
    parse_task_type,
)


def test_unknown_task_type_is_named():
    with pytest.raises(TaskTypeError, match="'ranking' is not one of"):
        parse_task_type("ranking")


def test_binary_accepts_a_positive_probability_vector_or_two_columns_and_any_labels():
    y = np.array(["no", "yes", "yes", "no", "yes"])
    p = np.array([0.1, 0.8, 0.6, 0.3, 0.4])
    one = compute_metrics("binary", y, p, classes=["no", "yes"])
    two = compute_metrics("binary", y, np.column_stack([1 - p, p]), classes=["no", "yes"])
    assert one == two
    assert one["roc_auc"] == pytest.approx(metrics.roc_auc_score(y == "yes", p))


def test_multiclass_metrics_match_sklearn_and_a_third_class_is_not_an_error():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], 300)
    proba[np.arange(300), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    got = compute_metrics("multiclass", y, proba, classes=[0, 1, 2])
    assert set(got) == {"accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc_ovr"}
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, proba.argmax(1)))
    assert got["f1_macro"] == pytest.approx(metrics.f1_score(y, proba.argmax(1), average="macro"))
    assert got["log_loss"] == pytest.approx(metrics.log_loss(y, proba))
    assert got["roc_auc_ovr"] == pytest.approx(metrics.roc_auc_score(y, proba, multi_class="ovr"))


def test_multiclass_needs_one_probability_per_class():
    with pytest.raises(TaskTypeError, match="one probability per class"):
        compute_metrics("multiclass", [0, 1, 2], [0.2, 0.3, 0.5], classes=[0, 1, 2])
    with pytest.raises(TaskTypeError, match=r"values \[7\] the model never saw"):
        compute_metrics("multiclass", [0, 1, 7], np.full((3, 3), 1 / 3), classes=[0, 1, 2])


def test_regression_metrics_and_mape_only_where_defined():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.1, 1.9, 3.2, 3.7])
    got = compute_metrics("regression", y, p)
    assert got["rmse"] == pytest.approx(metrics.root_mean_squared_error(y, p))
    assert got["r2"] == pytest.approx(metrics.r2_score(y, p))
    assert got["mape"] == pytest.approx(metrics.mean_absolute_percentage_error(y, p))
    assert "mape" not in compute_metrics("regression", np.array([0.0, 1.0, 2.0]), np.array([0.1, 1.0, 2.0]))


@pytest.mark.parametrize("task_type", ["binary", "multiclass", "regression"])
def test_default_policy_names_only_metrics_of_its_type_with_their_directions(task_type):
    policy = default_policy(task_type)
    check_policy_metrics(task_type, policy)
    PromotionPolicy.from_dict(policy)
    for rule in policy["metrics"]:
        assert METRICS[task_type][rule["name"]] == rule["direction"]


def test_policy_naming_another_types_metric_is_refused_with_the_options():
    with pytest.raises(TaskTypeError, match=r"policy.metrics\[0\] names metric 'roc_auc', which a regression model"):
        check_policy_metrics("regression", {"metrics": [{"name": "roc_auc"}]})
    with pytest.raises(TaskTypeError, match="'rmse' is better when lower"):
        check_policy_metrics("regression", {"metrics": [{"name": "rmse", "direction": "higher"}]})


def test_relative_regression_threshold_for_unit_metrics():
    policy = PromotionPolicy.from_dict(default_policy("regression"))
    ok = policy.decide({"r2": 0.8, "rmse": 10.4}, {"r2": 0.8, "rmse": 10.0}, 500)
    assert ok.promote, ok.reasons
    worse = policy.decide({"r2": 0.8, "rmse": 10.6}, {"r2": 0.8, "rmse": 10.0}, 500)
    assert not worse.promote and "max_relative_regression=0.05" in worse.reasons[0]


def test_output_columns_per_type():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    multi = output_columns("multiclass", proba, ["cat", "dog", "owl"])
    assert list(multi) == ["prediction", "proba_cat", "proba_dog", "proba_owl"]
    assert list(multi["prediction"]) == ["cat", "owl"]
    assert list(output_columns("binary", proba[:, :2], [0, 1])) == ["score"]
    assert list(output_columns("regression", pd.DataFrame({"y": [1.0, 2.0]}))) == ["prediction"]


class _Pyfunc:
    """A pyfunc-like wrapper of an estimator (not an sklearn-loader model: no fast path)."""

    def __init__(self, est, method):
        self.est, self.method = est, method

    def predict(self, frame):
        return getattr(self.est, self.method)(frame)


def test_task_scorer_types_its_columns():
    from sklearn.linear_model import LinearRegression, LogisticRegression

    X = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) % 3})
    clf = LogisticRegression(max_iter=500).fit(X, X["b"].astype(int))
    scorer = task_scorer(_Pyfunc(clf, "predict_proba"), "multiclass", [0, 1, 2])
    assert scorer.columns == {"prediction": "int64", "proba_0": "float64", "proba_1": "float64",
                              "proba_2": "float64"}
    out = scorer(X)
    assert set(out) == set(scorer.columns) and len(out["prediction"]) == 30
    reg = task_scorer(_Pyfunc(LinearRegression().fit(X, X["a"] * 2), "predict"), "regression")
    assert np.allclose(reg(X)["prediction"], X["a"] * 2)
    with pytest.raises(TaskTypeError, match="class labels"):
        task_scorer(_Pyfunc(clf, "predict_proba"), "multiclass", None)
