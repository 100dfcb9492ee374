"""Registered versions of a tiny sklearn model, as the training operator leaves them.

Each version has a signature (named input columns) and its run carries the holdout at
``holdout/holdout.parquet``, which is what the deploy targets' verify step reads.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

# Pinned requirements: MLflow's inference of them starts a subprocess (~10 s) per model.
REQUIREMENTS = [f"scikit-learn=={importlib.metadata.version('scikit-learn')}"]
COLUMNS = ["amount", "age"]


def register_versions(name: str, workdir: Path, count: int = 2, champion: int | None = 1,
                      flipped: tuple[int, ...] = ()) -> list[dict]:
    """``count`` versions of ``name`` in the store MlflowHook() points at; ``@champion`` on version ``champion``.
    The versions numbered in ``flipped`` (1-based) learn the inverted label: a model that disagrees.

    Returns the registration dicts (``{"name", "version", "run_id"}``) in version order.
    """
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    hook = MlflowHook()
    hook.activate()
    frame = pd.DataFrame({"amount": [0.0, 1.0, 2.0, 0.5, 3.0, 1.5, 0.2, 2.5],
                          "age": [1.0, 0.0, 1.0, 3.0, 0.5, 2.0, 1.0, 0.0]})
    label = [0, 1, 1, 0, 1, 0, 0, 1]
    holdout = workdir / "holdout.parquet"
    # Label and key columns are in the holdout but not in the signature: verify must drop them.
    frame.assign(is_fraud=label, tx_id=range(len(label))).to_parquet(holdout)
    experiment = hook.get_or_create_experiment(f"{name}-deploy")
    out = []
    for seed in range(1, count + 1):
        labels = [1 - y for y in label] if seed in flipped else label
        model = LogisticRegression(random_state=seed, C=seed).fit(frame, labels)
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                            signature=infer_signature(frame, model.predict(frame)),
                                            serialization_format="cloudpickle", pip_requirements=REQUIREMENTS)
            mlflow.log_artifact(str(holdout), artifact_path="holdout")
        out.append({"name": name, "version": str(info.registered_model_version), "run_id": run.info.run_id})
    if champion:
        hook.client.set_registered_model_alias(name, "champion", out[champion - 1]["version"])
    return out


def served_model(name: str, version: str):
    """``rows -> predictions`` of a registered version (columns :data:`COLUMNS`): what a fake serving
    platform answers when the test wants it to serve that version's real model."""
    import pandas as pd

    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    model = MlflowHook().load_pyfunc(f"models:/{name}/{version}")
    return lambda rows: [int(p) for p in model.predict(pd.DataFrame(rows, columns=COLUMNS))]
