"""Feature attributions and reason codes (core/explain.py) on tiny scikit-learn models.

The models are real scikit-learn estimators; ``_Pyfunc`` stands in for MLflow's pyfunc wrapper
(``predict`` + ``get_raw_model``), as in test_tasks.py, so these stay unit tests. The integration
test (tests/integration/test_explanations.py) runs the same code through real MLflow models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("shap")

from airflow_mlops_provider.core.explain import (
    Explainer,
    ExplainError,
    ReasonCodeScorer,
    attribution_shift,
    global_attributions,
    reason_columns,
    version_explanations,
)
from airflow_mlops_provider.core.scoring import score_file, task_scorer


class _Pyfunc:
    """A pyfunc-like wrapper: ``predict`` as MLflow's sklearn flavor answers, and the raw model."""

    def __init__(self, est, method="predict_proba", raw=True):
        self.est, self.method, self.raw = est, method, raw

    def predict(self, frame):
        return getattr(self.est, self.method)(frame)

    def get_raw_model(self):
        if not self.raw:
            raise ValueError("this flavor exposes no raw model")
        return self.est


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n),
                          "color": rng.choice(["red", "blue", "green"], size=n)})
    logit = 3 * frame["signal"] + np.where(frame["color"] == "red", 2.0, -1.0)
    y = (logit + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return frame, y


def _ranked(result):
    return list(result["features"])


def test_tree_model_ranks_the_informative_feature_above_noise():
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = _data()
    X = X[["signal", "noise"]]
    model = _Pyfunc(GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, y))
    ex = Explainer(model, X, features=["signal", "noise"], scorer=task_scorer(model, "binary"))
    result = global_attributions(ex, X, rows=200, seed=1)
    assert ex.method == result["method"] == "shap.tree"
    assert result["rows"] == 200 and result["shift"] is None
    assert _ranked(result) == ["signal", "noise"]
    assert result["features"]["signal"] > 5 * result["features"]["noise"]


def test_linear_model_attributions_are_exact_and_rank_signal_first():
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    X = X[["signal", "noise"]]
    est = LogisticRegression().fit(X, y)
    ex = Explainer(_Pyfunc(est), X, features=["signal", "noise"], background_rows=600)
    assert ex.method == "shap.linear"
    values = ex.contributions(X.iloc[:50])
    # Interventional linear SHAP: coef * (x - background mean), summing to the margin's deviation.
    expected = (X.iloc[:50] - X.mean()).to_numpy() * est.coef_[0]
    assert np.allclose(values, expected)
    assert _ranked(global_attributions(ex, X))[0] == "signal"


def test_pipeline_contributions_are_in_terms_of_the_input_columns():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = _data()
    pre = ColumnTransformer([("num", StandardScaler(), ["signal", "noise"]),
                             ("cat", OneHotEncoder(sparse_output=False), ["color"])])
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, y)
    ex = Explainer(_Pyfunc(pipe), X, features=["signal", "noise", "color"], background_rows=600)
    assert ex.method == "shap.linear"
    values = ex.contributions(X.iloc[:40])
    assert values.shape == (40, 3)  # three one-hot columns summed back into "color"
    margin = pipe.decision_function(X.iloc[:40])
    base = pipe.decision_function(X).mean()
    assert np.allclose(values.sum(axis=1), margin - base, atol=1e-6)  # additive in input space
    ranked = _ranked(global_attributions(ex, X))
    assert ranked.index("noise") == 2


def test_a_rare_category_absent_from_the_sample_is_still_placed_by_name():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = _data()
    X.loc[:4, "color"] = "violet"  # a category the background sample below never holds
    pre = ColumnTransformer([("cat", OneHotEncoder(sparse_output=False), ["color"])], remainder="passthrough")
    pipe = Pipeline([("pre", pre), ("clf", RandomForestClassifier(n_estimators=10, random_state=0))]).fit(X, y)
    ex = Explainer(_Pyfunc(pipe), X.iloc[10:], features=["signal", "noise", "color"], background_rows=100)
    assert ex.method == "shap.tree"
    assert ex.contributions(X.iloc[:5]).shape == (5, 3)


def test_a_pipeline_mixing_inputs_falls_back_to_the_model_agnostic_method():
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures
    from sklearn.tree import DecisionTreeClassifier

    X, y = _data()
    X = X[["signal", "noise"]]
    # signal*noise depends on both inputs: no input owns it, so SHAP on the tree cannot be mapped back.
    pipe = Pipeline([("poly", PolynomialFeatures(2, interaction_only=True, include_bias=False)),
                     ("clf", DecisionTreeClassifier(max_depth=3, random_state=0))]).fit(X, y)
    model = _Pyfunc(pipe)
    ex = Explainer(model, X, features=["signal", "noise"], scorer=task_scorer(model, "binary"), background_rows=30)
    assert ex.method == "shap.permutation"
    assert _ranked(global_attributions(ex, X, rows=40))[0] == "signal"


def test_model_agnostic_path_for_a_flavor_without_a_raw_model_handles_text_columns():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = _data()
    target = 4 * X["signal"] + np.where(X["color"] == "red", 3.0, 0.0)
    pre = ColumnTransformer([("cat", OneHotEncoder(sparse_output=False), ["color"])], remainder="passthrough")
    pipe = Pipeline([("pre", pre), ("reg", RandomForestRegressor(n_estimators=10, random_state=0))]).fit(X, target)
    model = _Pyfunc(pipe, "predict", raw=False)
    ex = Explainer(model, X, features=["signal", "noise", "color"], scorer=task_scorer(model, "regression"),
                   background_rows=25)
    assert ex.method == "shap.permutation"
    result = global_attributions(ex, X, rows=30, seed=3)
    assert _ranked(result)[-1] == "noise", result
    with pytest.raises(ExplainError, match="needs the flavor's native model"):
        Explainer(model, X, features=["signal", "noise", "color"], method="shap.tree")


def test_multiclass_rows_are_explained_toward_their_predicted_class():
    from sklearn.ensemble import RandomForestClassifier

    X, _ = _data()
    X = X[["signal", "noise"]]
    y = np.digitize(X["signal"], [-0.5, 0.5])  # three classes from the signal alone
    est = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    ex = Explainer(_Pyfunc(est), X, features=["signal", "noise"])
    assert ex.contributions(X.iloc[:10]).shape == (10, 2)
    assert _ranked(global_attributions(ex, X))[0] == "signal"


def test_reason_codes_are_written_for_every_row_chunk_by_chunk(tmp_path):
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = _data(n=2500)
    X = X[["signal", "noise"]].assign(third=np.random.default_rng(1).normal(size=2500) * 0.1)
    model = _Pyfunc(GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y))
    features = ["signal", "noise", "third"]
    scorer = ReasonCodeScorer(task_scorer(model, "binary"), Explainer(model, X, features=features), top_k=3)
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.Table.from_pandas(X.assign(id=np.arange(len(X))), preserve_index=False), src,
                   row_group_size=700)
    stats = score_file(src, out, scorer, features, ["id"], chunk_rows=500)
    table = pq.read_table(out).to_pandas()
    assert stats.rows == len(table) == 2500 and stats.batches == 5
    assert list(table.columns) == ["id", "score", *reason_columns(3)]
    for i in (1, 2, 3):
        assert table[f"reason_{i}_feature"].isin(features).all()
        assert table[f"reason_{i}_contribution"].notna().all()
    # Each row names three different features, most important first.
    assert (table[[f"reason_{i}_feature" for i in (1, 2, 3)]].nunique(axis=1) == 3).all()
    mags = table[[f"reason_{i}_contribution" for i in (1, 2, 3)]].abs().to_numpy()
    assert (np.diff(mags, axis=1) <= 1e-12).all()
    assert (table["reason_1_feature"] == "signal").mean() > 0.8
    # Same rows, same reasons: the contribution of a row does not depend on its chunk.
    direct = scorer.explainer.contributions(X.iloc[[1234]])
    assert table.loc[1234, "reason_1_contribution"] == pytest.approx(direct[0][np.abs(direct[0]).argmax()])


def test_reason_codes_of_an_empty_partition_keep_the_typed_columns(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    X = X[["signal", "noise"]]
    model = _Pyfunc(LogisticRegression().fit(X, y))
    scorer = ReasonCodeScorer(task_scorer(model, "binary"), Explainer(model, X, features=["signal", "noise"]), 5)
    assert scorer.top_k == 2  # capped at the number of features
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.Table.from_pandas(X.iloc[:0], preserve_index=False), src)
    score_file(src, out, scorer, ["signal", "noise"], chunk_rows=100)
    schema = pq.read_schema(out)
    assert schema.names == ["score", *reason_columns(2)]
    assert schema.field("reason_1_feature").type == pa.string()
    with pytest.raises(ExplainError, match="explain_top_k must be >= 1"):
        ReasonCodeScorer(task_scorer(model, "binary"), scorer.explainer, 0)


def test_shift_against_the_champion():
    current = {"a": 0.9, "b": 0.5, "c": 0.2, "new": 0.1}
    reference = {"b": 0.8, "a": 0.6, "d": 0.3, "c": 0.05}
    shift = attribution_shift(current, reference, top_k=2)
    assert shift["top_k_overlap"] == 1.0 and shift["entered_top_k"] == shift["left_top_k"] == []
    assert shift["rank_changes"] == {"a": 1, "b": -1, "c": 1}
    assert shift["added_features"] == ["new"] and shift["removed_features"] == ["d"]
    assert shift["rank_correlation"] == pytest.approx(0.5)
    moved = attribution_shift({"x": 1.0, "y": 0.1, "z": 0.0}, {"z": 1.0, "y": 0.5, "x": 0.1}, top_k=1)
    assert moved["top_k_overlap"] == 0.0 and moved["entered_top_k"] == ["x"] and moved["left_top_k"] == ["z"]
    assert moved["rank_correlation"] == pytest.approx(-1.0)


def test_gate_evidence_holds_both_versions_and_the_shift():
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    X = X[["signal", "noise"]]
    holdout = X.assign(label=y)
    challenger = _Pyfunc(GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y))
    champion = _Pyfunc(LogisticRegression().fit(X[["noise"]].assign(signal=0.0)[["signal", "noise"]], y))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("airflow_mlops_provider.core.tasks.model_features", lambda m: ["signal", "noise"])
        found = version_explanations(challenger, holdout, "binary", version="2", rows=100,
                                     champion=(champion, "1", None))
    assert found["version"] == "2" and found["method"] == "shap.tree" and found["rows"] == 100
    assert found["champion"]["version"] == "1" and found["champion"]["method"] == "shap.linear"
    assert found["shift"]["against_version"] == "1"
    assert found["shift"]["rank_changes"] == {"signal": 1, "noise": -1}
