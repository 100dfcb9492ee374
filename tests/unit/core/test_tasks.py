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


def test_a_rule_without_direction_takes_the_metrics_own():
    from airflow_mlops_provider.core.tasks import complete_policy

    policy = PromotionPolicy.from_dict(complete_policy("regression", {"metrics": [{"name": "rmse"}]}))
    assert policy.metrics[0].direction == "lower"
    assert not policy.decide({"rmse": 10.0}, {"rmse": 5.0}, 500).promote


def test_multiclass_metrics_do_not_depend_on_the_order_the_model_lists_its_classes():
    rng = np.random.default_rng(1)
    y = rng.choice(["a", "b", "c"], 200)
    proba = rng.dirichlet([1, 1, 1], 200)
    sorted_order = compute_metrics("multiclass", y, proba, classes=["a", "b", "c"])
    shuffled = compute_metrics("multiclass", y, proba[:, [2, 0, 1]], classes=["c", "a", "b"])
    assert shuffled == pytest.approx(sorted_order)


def test_multiclass_auc_over_the_classes_present_when_one_is_missing_from_the_holdout():
    y = np.array([0, 1, 0, 1, 2, 2, 0, 1])
    proba = np.full((8, 4), 0.1)
    proba[np.arange(8), y] = 0.7
    got = compute_metrics("multiclass", y, proba, classes=[0, 1, 2, 3])  # class 3 never in the holdout
    assert got["roc_auc_ovr"] == pytest.approx(1.0)
    assert got["f1_macro"] == pytest.approx(1.0)  # not dragged down by the absent class


def test_a_classifier_returning_labels_instead_of_probabilities_is_refused():
    from airflow_mlops_provider.core.tasks import check_classifier_output

    with pytest.raises(TaskTypeError, match="not a probability"):
        check_classifier_output("binary", np.array([0, 1, 1, 0]), 2, "lightgbm")
    with pytest.raises(TaskTypeError, match="not a probability"):
        check_classifier_output("multiclass", np.array([0, 2, 1]), 3, "xgboost")
    check_classifier_output("binary", np.array([0.1, 0.9, 0.4]), 2, "lightgbm")
    check_classifier_output("multiclass", np.full((2, 3), 1 / 3), 3, "lightgbm")


def test_shadow_of_integer_classes_counts_agreement_not_label_distance():
    from airflow_mlops_provider.core.scoring import _shadow_sums

    assert _shadow_sums(np.array([0, 2, 1]), np.array([0, 0, 1]), None, labels=True) == {"agree": 2.0}
    assert set(_shadow_sums(np.array([0.2, 0.8]), np.array([0.3, 0.9]), 0.5)) == {"abs_diff", "agree"}


def test_an_empty_partition_writes_the_same_columns_as_a_full_one(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.linear_model import LogisticRegression

    from airflow_mlops_provider.core.scoring import score_file

    X = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) % 3})
    scorer = task_scorer(_Pyfunc(LogisticRegression(max_iter=500).fit(X, X["b"].astype(int)), "predict_proba"),
                         "multiclass", [0, 1, 2])
    schemas = []
    for rows in (30, 0):
        src = tmp_path / f"in{rows}.parquet"
        pq.write_table(pa.table({"id": np.arange(rows), "a": X["a"][:rows], "b": X["b"][:rows]}), src)
        out = tmp_path / f"out{rows}.parquet"
        score_file(src, out, scorer, ["a", "b"], ["id"], constants={"model_version": "3"}, shadow_predict=scorer,
                   shadow_labels=True)
        schemas.append(pq.read_schema(out))
    assert schemas[0].names == schemas[1].names == ["id", "prediction", "proba_0", "proba_1", "proba_2",
                                                     "shadow_prediction", "model_version"]
    assert schemas[0].equals(schemas[1], check_metadata=False)
