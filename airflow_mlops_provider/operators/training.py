"""Train the user's model inside an MLflow run with full lineage, then evaluate it on a holdout."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.version_compat import BaseOperator

HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
BASELINE_PROFILE_ARTIFACT = "baseline/profile.json"
BASELINE_SAMPLE_ARTIFACT = "baseline/sample.parquet"
DEFAULT_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def _lineage_tags(context: Any, data_version: dict | None, validation: dict | None,
                  code_version: str | None) -> dict[str, str]:
    ti = context["ti"]
    tags = {
        "airflow.dag_id": ti.dag_id,
        "airflow.run_id": ti.run_id,
        "airflow.task_id": ti.task_id,
        "airflow.try_number": str(ti.try_number),
    }
    if data_version:
        for key in ("path", "rev", "commit", "md5", "id", "repo"):
            if data_version.get(key) is not None:
                tags[f"mlops.data.{key}"] = str(data_version[key])
    if validation:
        tags["mlops.validation.result_id"] = str(validation.get("result_id"))
        tags["mlops.validation.success"] = str(validation.get("success"))
    if code_version:
        tags["mlops.code_version"] = code_version
    return tags


def _code_version(context: Any) -> str:
    """The DAG bundle version when the bundle is versioned, else a hash of the DAG file."""
    from airflow_mlops_provider import __version__

    dag_run = context.get("dag_run")
    bundle_version = getattr(dag_run, "bundle_version", None) if dag_run else None
    if bundle_version:
        return f"bundle:{bundle_version}"
    fileloc = getattr(context.get("dag"), "fileloc", None)
    if fileloc and Path(fileloc).is_file():
        digest = hashlib.sha256(Path(fileloc).read_bytes()).hexdigest()[:16]
        return f"dagfile:{Path(fileloc).name}@{digest};provider:{__version__}"
    return f"provider:{__version__}"


def resolve_trusted_types(model: Any, explicit: Sequence[str] | None,
                          prefixes: Sequence[str]) -> list[str]:
    """Decide the skops trusted-type list explicitly.

    Types skops does not trust by default are accepted when listed in ``explicit`` or when their
    module starts with one of ``prefixes`` (scikit-learn, numpy and scipy by default); anything
    else (e.g. a user class) is refused with its name, rather than being trusted silently.
    """
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    explicit = list(explicit or [])
    refused = [t for t in untrusted if t not in explicit and not t.startswith(tuple(prefixes))]
    if refused:
        raise ValueError(f"the model contains types skops does not trust: {refused}; list them in "
                         f"skops_trusted_types if you trust them")
    return sorted(set(untrusted) | set(explicit))


def pin_requirements(requirements: Sequence[str]) -> list[str]:
    """Pin bare package names to the installed version; keep anything with a specifier as given."""
    import re
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for requirement in requirements:
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement):
            try:
                requirement = f"{requirement}=={version(requirement)}"
            except PackageNotFoundError as err:
                raise ValueError(f"pip_requirements: {requirement!r} is not installed here, so it cannot be "
                                 "pinned; give a version specifier") from err
        pinned.append(requirement)
    return pinned


class MlflowTrainModelOperator(BaseOperator):
    """Run ``train_callable(X_train, y_train, **train_params)`` inside an MLflow run.

    Logs params, the fitted model (sklearn flavor, with signature and input example, scored by
    ``predict_proba`` through pyfunc), the holdout split, and the drift baseline profile of the
    training features. Tags the run with lineage: DVC path/rev/commit/md5, validation result id,
    Airflow dag_id/run_id/task_id/try number and code version.

    :param train_callable: the user's training code; returns a fitted scikit-learn estimator.
    :param data_path: local file (CSV/Parquet) to train on, usually the validated copy.
    :param target: label column.
    :param experiment_name: MLflow experiment (created when missing).
    :param data_version: the data version dict from :class:`DvcGetDataVersionOperator`.
    :param validation: the validation result dict (its ``result_id`` is recorded).
    :param id_columns: columns that identify rows and are not features.
    :param feature_columns: explicit features; default: every other column.
    :param categorical_features: features profiled as categorical in the baseline.
    :param train_params: hyper-parameters passed to ``train_callable`` and logged.
    :param holdout_fraction: share of rows held out (stratified on ``target``).
    :param split_seed: seed of the split.
    :param skops_trusted_types: types to trust when the model is loaded again.
    :param pip_requirements: the model's serving requirements; a bare package name is pinned to
        the version installed where the model is trained (``"skops"`` → ``"skops==0.16.0"``).
        None lets MLflow infer them by loading the model in a subprocess, which takes ~20 s.
    """

    template_fields: Sequence[str] = ("data_path", "target", "experiment_name", "data_version", "validation",
                                      "train_params", "mlflow_conn_id", "run_name")
    template_fields_renderers = {"train_params": "json", "data_version": "json", "validation": "json"}
    ui_color = "#0194e2"

    def __init__(self, *, train_callable: Callable[..., Any], data_path: str, target: str,
                 experiment_name: str, data_version: dict | None = None, validation: dict | None = None,
                 id_columns: Sequence[str] = (), feature_columns: Sequence[str] | None = None,
                 categorical_features: Sequence[str] | None = None, train_params: dict | None = None,
                 holdout_fraction: float = 0.2, split_seed: int = 42,
                 skops_trusted_types: Sequence[str] | None = None,
                 trusted_type_prefixes: Sequence[str] = DEFAULT_TRUSTED_PREFIXES,
                 mlflow_conn_id: str = MlflowHook.default_conn_name, run_name: str | None = None,
                 pip_requirements: Sequence[str] | None = None, **kwargs: Any) -> None:
        # Each key of the returned dict is also its own XCom, so `op.output["key"]` works.
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.train_callable = train_callable
        self.pip_requirements = pip_requirements
        self.data_path = data_path
        self.target = target
        self.experiment_name = experiment_name
        self.data_version = data_version
        self.validation = validation
        self.id_columns = id_columns
        self.feature_columns = feature_columns
        self.categorical_features = categorical_features
        self.train_params = train_params
        self.holdout_fraction = holdout_fraction
        self.split_seed = split_seed
        self.skops_trusted_types = skops_trusted_types
        self.trusted_type_prefixes = trusted_type_prefixes
        self.mlflow_conn_id = mlflow_conn_id
        self.run_name = run_name

    @cached_property
    def hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def _split(self, frame: Any) -> tuple[list[str], Any, Any]:
        from sklearn.model_selection import train_test_split

        if self.target not in frame.columns:
            raise KeyError(f"target column {self.target!r} is not in {self.data_path!r} "
                           f"(columns: {list(frame.columns)})")
        if self.feature_columns:
            missing = [c for c in self.feature_columns if c not in frame.columns]
            if missing:
                raise KeyError(f"feature columns {missing} are not in {self.data_path!r}")
            features = list(self.feature_columns)
        else:
            features = [c for c in frame.columns if c != self.target and c not in set(self.id_columns)]
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        counts = frame[self.target].value_counts()
        stratify = frame[self.target] if len(counts) > 1 and counts.min() >= 2 else None
        train, holdout = train_test_split(frame, test_size=self.holdout_fraction,
                                          random_state=self.split_seed, stratify=stratify)
        return features, train, holdout

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops_provider.core.optional import require

        require("mlflow")
        import mlflow
        from mlflow.models import infer_signature

        from airflow_mlops_provider.core.baseline import compute_profile, sample_rows
        from airflow_mlops_provider.core.tables import read_table

        frame = read_table(self.data_path)
        features, train, holdout = self._split(frame)
        params = dict(self.train_params or {})
        self.hook.activate()
        experiment_id = self.hook.get_or_create_experiment(self.experiment_name)
        tags = _lineage_tags(context, self.data_version, self.validation, _code_version(context))
        with mlflow.start_run(experiment_id=experiment_id, run_name=self.run_name or f"{context['ti'].run_id}",
                              tags=tags) as run:
            run_id = run.info.run_id
            self.log.info("Training in MLflow run %s (experiment %s) on %d rows, %d features",
                          run_id, self.experiment_name, len(train), len(features))
            mlflow.log_params({**{f"param.{k}": v for k, v in params.items()},
                               "target": self.target, "features": ",".join(features),
                               "holdout_fraction": self.holdout_fraction, "split_seed": self.split_seed,
                               "train_rows": len(train), "holdout_rows": len(holdout)})
            model = self.train_callable(train[features], train[self.target], **params)
            trusted = resolve_trusted_types(model, self.skops_trusted_types, self.trusted_type_prefixes)
            example = train[features].head(5)
            signature = infer_signature(example, model.predict_proba(example))
            info = mlflow.sklearn.log_model(
                model, name="model", signature=signature, input_example=example,
                pyfunc_predict_fn="predict_proba", serialization_format="skops",
                skops_trusted_types=trusted or None,
                pip_requirements=pin_requirements(self.pip_requirements) if self.pip_requirements else None,
            )
            mlflow.set_tag("mlops.skops_trusted_types", json.dumps(trusted))
            with tempfile.TemporaryDirectory() as tmp:
                tmp_path = Path(tmp)
                holdout.to_parquet(tmp_path / "holdout.parquet", index=False)
                mlflow.log_artifact(str(tmp_path / "holdout.parquet"), artifact_path="holdout")
                profile = compute_profile(train, features, self.categorical_features)
                (tmp_path / "profile.json").write_text(json.dumps(profile))
                mlflow.log_artifact(str(tmp_path / "profile.json"), artifact_path="baseline")
                sample_rows(train[features]).to_parquet(tmp_path / "sample.parquet", index=False)
                mlflow.log_artifact(str(tmp_path / "sample.parquet"), artifact_path="baseline")
        return {
            "run_id": run_id, "experiment_id": experiment_id, "model_uri": info.model_uri,
            "features": features, "target": self.target,
            "train_rows": len(train), "holdout_rows": len(holdout),
            "holdout_uri": f"runs:/{run_id}/{HOLDOUT_ARTIFACT}",
            "baseline_uri": f"runs:/{run_id}/baseline",
        }


class MlflowEvaluateModelOperator(BaseOperator):
    """Score a run's model on the holdout from the same data version and log the metrics."""

    template_fields: Sequence[str] = ("run_id", "model_uri", "target", "mlflow_conn_id")
    ui_color = "#0194e2"

    def __init__(self, *, run_id: str, target: str, model_uri: str | None = None,
                 mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        # Each key of the returned dict is also its own XCom, so `op.output["key"]` works.
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.run_id = run_id
        self.model_uri = model_uri
        self.target = target
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops_provider.core.metrics import binary_classification_metrics, positive_scores

        self.hook.activate()
        holdout = load_holdout(self.hook, self.run_id)
        model = load_pyfunc(self.model_uri or self.hook.logged_model_uri(self.run_id))
        features = model.metadata.get_input_schema().input_names()
        metrics = binary_classification_metrics(holdout[self.target], positive_scores(model, holdout[features]))
        for name, value in metrics.items():
            self.hook.client.log_metric(self.run_id, name, value)
        self.log.info("Holdout metrics of run %s on %d rows: %s", self.run_id, len(holdout), metrics)
        return {"run_id": self.run_id, "metrics": metrics, "eval_rows": len(holdout)}


def load_holdout(hook: MlflowHook, run_id: str) -> Any:
    import mlflow
    import pandas as pd

    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=HOLDOUT_ARTIFACT,
                                                tracking_uri=hook.tracking_uri)
    return pd.read_parquet(local)


def load_pyfunc(model_uri: str) -> Any:
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(model_uri)
