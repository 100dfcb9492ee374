"""A multiclass model (3 penguin species) from data to production, built from the pipeline builders."""

from __future__ import annotations

from airflow_mlops_provider.pipelines import ModelConfig, batch_scoring_dag, retraining_dag


def train_species(X, y, C=1.0, shuffle_labels=False):
    """One-hot island + scaled measurements -> multinomial logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if shuffle_labels:  # a deliberately weakened model: labels no longer match the rows
        y = y.sample(frac=1.0, random_state=0).to_numpy()
    numeric = [c for c in X.columns if c != "island"]
    pre = ColumnTransformer([("island", OneHotEncoder(handle_unknown="ignore"), ["island"]),
                             ("num", StandardScaler(), numeric)])
    return make_pipeline(pre, LogisticRegression(C=C, max_iter=1000)).fit(X, y)


SPECIES = ModelConfig(
    name="penguin-species",
    task_type="multiclass",
    target="species",
    id_columns=["bird_id"],
    train=train_species,
    train_params={"C": 1.0},
    data_path="species.parquet",
    pip_requirements=["scikit-learn", "skops", "numpy", "scipy", "pandas"],
)

retrain = retraining_dag(SPECIES, dag_id="species_retrain")
score = batch_scoring_dag(SPECIES, dag_id="species_batch_inference")
