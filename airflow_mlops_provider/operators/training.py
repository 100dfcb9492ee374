"""Train the user's model inside an MLflow run with full lineage, then evaluate it on a holdout."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from airflow_mlops_provider.core.tasks import HOLDOUT_ARTIFACT
from airflow_mlops_provider.operators.mixins import MlflowHookMixin
from airflow_mlops_provider.results import EvaluateResult, TrainResult

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
    from airflow_mlops_provider.version_compat import airflow_deprecations_silenced

    with airflow_deprecations_silenced():
        # skops probes every loaded module for scipy's ufuncs when it is first imported, too.
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


class MlflowTrainModelOperator(MlflowHookMixin):
    """Run ``train_callable(X_train, y_train, **train_params)`` inside an MLflow run.

    Logs params, the fitted model (with signature and input example), the holdout split, the
    drift baseline profile of the training features and of the model's outputs on the holdout
    (for prediction drift). Tags the run with the task type (and class labels), and lineage:
    DVC path/rev/commit/md5, validation result id, Airflow dag_id/run_id/task_id/try number and
    code version. Registering the run copies those tags onto the model version, so evaluation,
    promotion, scoring and drift follow the task type without being told again.

    :param train_callable: the user's training code. Returns a fitted model: any estimator with
        ``fit``/``predict`` (and ``predict_proba`` for ``binary`` and ``multiclass``), logged
        with MLflow's sklearn flavor (skops format); or a model of another MLflow flavor with
        ``flavor`` (``"lightgbm"``, ``"xgboost"``, ...) or your own ``log_model``.
    :param model_task_type: ``binary``, ``multiclass``, ``regression`` or another registered task
        type (see :mod:`airflow_mlops_provider.core.task_types`); ``task_type`` is taken by BaseOperator.
    :param data_path: local file (CSV/Parquet) to train on, usually the validated copy.
    :param target: label column.
    :param experiment_name: MLflow experiment (created when missing).
    :param policy: the promotion policy the model will face; checked against the task type
        before anything is read or trained, so a metric the type does not produce fails early.
    :param flavor: MLflow flavor module that logs the model (``mlflow.<flavor>.log_model``);
        None: scikit-learn.
    :param log_model: ``log_model(model, signature=, input_example=, pip_requirements=)`` that
        logs the model under the name ``"model"`` in the active run and returns MLflow's
        ``ModelInfo``; for flavors that need more arguments.
    :param data_version: the data version dict from :class:`DvcGetDataVersionOperator`.
    :param validation: the validation result dict (its ``result_id`` is recorded).
    :param id_columns: columns that identify rows and are not features.
    :param feature_columns: explicit features; default: every other column.
    :param exclude_features: columns that are never features, yet stay in the holdout (e.g.
        sensitive attributes the promotion gate groups by).
    :param categorical_features: features profiled as categorical in the baseline.
    :param train_params: hyper-parameters passed to ``train_callable`` and logged.
    :param holdout_fraction: share of rows held out (stratified on ``target`` for classifiers).
    :param split_seed: seed of the split.
    :param skops_trusted_types: types to trust when the model is loaded again.
    :param pip_requirements: the model's serving requirements; a bare package name is pinned to
        the version installed where the model is trained (``"skops"`` → ``"skops==0.16.0"``).
        None lets MLflow infer them by loading the model in a subprocess, which takes ~20 s.

    Returns :class:`~airflow_mlops_provider.results.TrainResult`.
    """

    template_fields: Sequence[str] = ("data_path", "target", "experiment_name", "data_version", "validation",
                                      "train_params", "mlflow_conn_id", "run_name", "model_task_type", "policy")
    template_fields_renderers = {"train_params": "json", "data_version": "json", "validation": "json",
                                 "policy": "json"}
    ui_color = "#0194e2"

    def __init__(self, *, train_callable: Callable[..., Any], data_path: str, target: str,
                 experiment_name: str, model_task_type: str = "binary", policy: dict | None = None,
                 flavor: str | None = None, log_model: Callable[..., Any] | None = None,
                 data_version: dict | None = None, validation: dict | None = None,
                 id_columns: Sequence[str] = (), feature_columns: Sequence[str] | None = None,
                 exclude_features: Sequence[str] = (),
                 categorical_features: Sequence[str] | None = None, train_params: dict | None = None,
                 holdout_fraction: float = 0.2, split_seed: int = 42,
                 skops_trusted_types: Sequence[str] | None = None,
                 trusted_type_prefixes: Sequence[str] = DEFAULT_TRUSTED_PREFIXES,
                 run_name: str | None = None,
                 pip_requirements: Sequence[str] | None = None, **kwargs: Any) -> None:
        # Each key of the returned dict is also its own XCom, so `op.output["key"]` works.
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.train_callable = train_callable
        self.model_task_type = model_task_type
        self.policy = policy
        self.flavor = flavor
        self.log_model = log_model
        self.pip_requirements = pip_requirements
        self.data_path = data_path
        self.target = target
        self.experiment_name = experiment_name
        self.data_version = data_version
        self.validation = validation
        self.id_columns = id_columns
        self.feature_columns = feature_columns
        self.exclude_features = list(exclude_features or ())
        self.categorical_features = categorical_features
        self.train_params = train_params
        self.holdout_fraction = holdout_fraction
        self.split_seed = split_seed
        self.skops_trusted_types = skops_trusted_types
        self.trusted_type_prefixes = trusted_type_prefixes
        self.run_name = run_name

    def _split(self, frame: Any, task: Any) -> tuple[list[str], Any, Any]:
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
            features = [c for c in frame.columns if c != self.target
                        and c not in {*self.id_columns, *self.exclude_features}]
        from airflow_mlops_provider.exceptions import DataFileError

        if len(frame) == 0:
            raise DataFileError(f"training data {self.data_path!r} has 0 rows: nothing to train on",
                                path=str(self.data_path))
        empty = [c for c in [*features, self.target] if frame[c].isna().all()]
        if empty:
            raise DataFileError(f"training data {self.data_path!r}: columns {empty} hold only nulls; drop them "
                                "(feature_columns) or fix the data", path=str(self.data_path), columns=empty)
        if frame[self.target].isna().any():
            raise DataFileError(f"training data {self.data_path!r}: target column {self.target!r} has "
                                f"{int(frame[self.target].isna().sum())} null values", path=str(self.data_path),
                                column=self.target)
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        # The task type refuses a target it cannot learn and says what to stratify the split on.
        stratify = task.check_target(frame[self.target], self.target, str(self.data_path))
        train, holdout = train_test_split(frame, test_size=self.holdout_fraction,
                                          random_state=self.split_seed, stratify=stratify)
        return features, train, holdout

    def _check_model(self, model: Any, task: Any) -> None:
        if self.flavor or self.log_model:
            return  # another flavor: its pyfunc wrapper decides how it predicts
        task.check_model(model)

    def _log(self, model: Any, task: Any, example: Any, trusted: list[str] | None) -> Any:
        import importlib

        import mlflow
        from mlflow.models import infer_signature

        requirements = pin_requirements(self.pip_requirements) if self.pip_requirements else None
        sklearn_path = not (self.flavor or self.log_model)
        if sklearn_path:
            method = task.predict_method
            signature = infer_signature(example, getattr(model, method)(example))
            return mlflow.sklearn.log_model(
                model, name="model", signature=signature, input_example=example, pyfunc_predict_fn=method,
                serialization_format="skops", skops_trusted_types=trusted or None, pip_requirements=requirements)
        output = model.predict(example) if hasattr(model, "predict") else None
        signature = infer_signature(example, output)
        if self.log_model is not None:
            return self.log_model(model, signature=signature, input_example=example, pip_requirements=requirements)
        flavor = importlib.import_module(f"mlflow.{self.flavor}")
        return flavor.log_model(model, name="model", signature=signature, input_example=example,
                                pip_requirements=requirements)

    def execute(self, context: Any) -> TrainResult:
        from airflow_mlops_provider.core.optional import require

        require("mlflow")
        import mlflow
        import mlflow.pyfunc

        from airflow_mlops_provider.core import baseline as files
        from airflow_mlops_provider.core.baseline import compute_profile, sample_rows
        from airflow_mlops_provider.core.tables import read_table
        from airflow_mlops_provider.core.task_types import get_task_type
        from airflow_mlops_provider.core.tasks import CLASSES_TAG, TASK_TYPE_TAG, check_policy_metrics
        from airflow_mlops_provider.paths import require_allowed

        require_allowed(self.data_path, "data_path")
        task = get_task_type(self.model_task_type)
        task_type = task.name
        if self.policy:
            check_policy_metrics(task_type, self.policy)
        frame = read_table(self.data_path)
        features, train, holdout = self._split(frame, task)
        params = dict(self.train_params or {})
        self.hook.activate()
        experiment_id = self.hook.get_or_create_experiment(self.experiment_name)
        tags = {**_lineage_tags(context, self.data_version, self.validation, _code_version(context)),
                TASK_TYPE_TAG: task_type, "mlops.flavor": self.flavor or ("custom" if self.log_model else "sklearn")}
        with mlflow.start_run(experiment_id=experiment_id, run_name=self.run_name or f"{context['ti'].run_id}",
                              tags=tags) as run:
            run_id = run.info.run_id
            self.log.info("Training a %s model in MLflow run %s (experiment %s) on %d rows, %d features",
                          task_type, run_id, self.experiment_name, len(train), len(features))
            mlflow.log_params({**{f"param.{k}": v for k, v in params.items()},
                               "target": self.target, "features": ",".join(features), "task_type": task_type,
                               "holdout_fraction": self.holdout_fraction, "split_seed": self.split_seed,
                               "train_rows": len(train), "holdout_rows": len(holdout)})
            model = self.train_callable(train[features], train[self.target], **params)
            self._check_model(model, task)
            classes = task.classes(model, train[self.target])
            if classes is not None:
                mlflow.set_tag(CLASSES_TAG, json.dumps(classes))
            trusted = None
            if not (self.flavor or self.log_model):
                trusted = resolve_trusted_types(model, self.skops_trusted_types, self.trusted_type_prefixes)
                mlflow.set_tag("mlops.skops_trusted_types", json.dumps(trusted))
            from airflow_mlops_provider.version_compat import airflow_deprecations_silenced

            with airflow_deprecations_silenced():
                info = self._log(model, task, train[features].head(5), trusted)
            # The model's outputs on the holdout, read back through pyfunc as scoring will: the
            # reference for prediction drift (and a check that the logged model loads and predicts).
            with airflow_deprecations_silenced():
                loaded = mlflow.pyfunc.load_model(info.model_uri)
            raw = loaded.predict(holdout[features])
            task.check_output(raw, len(classes or ()), self.flavor or "logged")
            outputs = task.output_columns(raw, classes)
            primary = task.primary_output
            import pandas as pd

            predicted = pd.DataFrame({primary: outputs[primary]})
            with tempfile.TemporaryDirectory() as tmp:
                tmp_path = Path(tmp)
                holdout.to_parquet(tmp_path / "holdout.parquet", index=False)
                mlflow.log_artifact(str(tmp_path / "holdout.parquet"), artifact_path="holdout")
                # The drift baseline: features, and the model's outputs on the holdout.
                folder = tmp_path / "baseline"
                folder.mkdir()
                profile = compute_profile(train, features, self.categorical_features)
                (folder / files.PROFILE_FILE).write_text(json.dumps(profile))
                sample_rows(train)[features].to_parquet(folder / files.SAMPLE_FILE, index=False)
                prediction_profile = compute_profile(predicted, [primary],
                                                     [primary] if task.categorical_output else [])
                (folder / files.PREDICTIONS_FILE).write_text(json.dumps(prediction_profile))
                sample_rows(predicted).to_parquet(folder / files.PREDICTIONS_SAMPLE_FILE, index=False)
                mlflow.log_artifacts(str(folder), artifact_path="baseline")
        self._lineage_state = {"tracking_uri": self.hook.tracking_uri, "model_uri": info.model_uri,
                               "run_id": run_id, "experiment_id": experiment_id}
        return {
            "run_id": run_id, "experiment_id": experiment_id, "model_uri": info.model_uri,
            "task_type": task_type, "classes": classes,
            "features": features, "target": self.target,
            "train_rows": len(train), "holdout_rows": len(holdout),
            "holdout_uri": f"runs:/{run_id}/{HOLDOUT_ARTIFACT}",
            "baseline_uri": f"runs:/{run_id}/baseline",
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: the training data, with its DVC version (``mlops_dvc``, ``version``) when
        ``data_version`` is given. Outputs: the model the MLflow run logged (``logged_models/<id>``),
        which registration turns into a model version."""
        from airflow_mlops_provider.core.lineage import logged_model_dataset, training_data
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        data_version = self.data_version if isinstance(self.data_version, dict) else None
        state = getattr(self, "_lineage_state", None)
        return operator_lineage(inputs=[training_data(str(self.data_path), data_version)],
                                outputs=[logged_model_dataset(**state)] if state else [])


class MlflowEvaluateModelOperator(MlflowHookMixin):
    """Score a run's model on the holdout from the same data version and log the metrics.

    The metrics follow the task type recorded on the run (:mod:`airflow_mlops_provider.core.tasks`).
    Returns :class:`~airflow_mlops_provider.results.EvaluateResult`.
    """

    template_fields: Sequence[str] = ("run_id", "model_uri", "target", "mlflow_conn_id")
    ui_color = "#0194e2"

    def __init__(self, *, run_id: str, target: str, model_uri: str | None = None, **kwargs: Any) -> None:
        # Each key of the returned dict is also its own XCom, so `op.output["key"]` works.
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.run_id = run_id
        self.model_uri = model_uri
        self.target = target

    def execute(self, context: Any) -> EvaluateResult:
        from airflow_mlops_provider.core.task_types import task_type_of_tags
        from airflow_mlops_provider.core.tasks import classes_from_tags, score_holdout

        tags = self.hook.client.get_run(self.run_id).data.tags
        # Refused when the run lacks its mlops.task_type tag: no silent default.
        task_type = task_type_of_tags(tags, f"MLflow run {self.run_id}").name
        holdout = self.hook.load_holdout(self.run_id)
        uri = self.model_uri or self.hook.logged_model_uri(self.run_id)
        metrics = score_holdout(self.hook.load_pyfunc(uri), holdout, self.target, task_type,
                                classes_from_tags(tags), model_uri=uri)
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.hook.client.log_batch(self.run_id, metrics=[Metric(name, float(value), stamp, 0)
                                                         for name, value in metrics.items()])
        self.log.info("Holdout metrics (%s) of run %s on %d rows: %s", task_type, self.run_id, len(holdout), metrics)
        return {"run_id": self.run_id, "task_type": task_type, "metrics": metrics, "eval_rows": len(holdout)}
