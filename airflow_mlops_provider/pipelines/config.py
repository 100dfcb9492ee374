"""ModelConfig: everything the pipeline builders need to know about one model."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from airflow_mlops_provider.core.tasks import (
    TaskTypeError,
    check_policy_metrics,
    complete_policy,
    default_policy,
    parse_task_type,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_DRIFT_POLICY: dict[str, Any] = {"drift_share": 0.5, "key_features": [], "prediction_drift": False}
#: The 1-slot Airflow pool the promotion tasks run in: it serialises promotions across worker hosts
#: (the file lock under MLOPS_HOME only covers one host). Create it once per deployment:
#: ``airflow pools set mlops_promotion 1 "champion promotions, one at a time"`` (``make ui`` and the
#: compose init do); a task whose pool does not exist is never scheduled.
PROMOTION_POOL = "mlops_promotion"
MAX_EXPLAIN_TOP_K = 20  # reason columns per row in batch scoring


@dataclass(frozen=True)
class Connections:
    """The Airflow connection ids a model's pipelines use; None: each operator's own default.

    The ``*_dag`` builders put the ones set into the DAG's ``default_args`` (so every task that
    takes that argument gets it; an explicit ``default_args`` entry wins); in a DAG of your own,
    pass ``default_args=model.connections.default_args()``.

    :param mlflow: ``mlflow_conn_id`` of every MLflow task (default ``mlflow_default``).
    :param storage: ``conn_id`` of every task that reads or writes object storage (partitions,
        labels, scored outputs); default: the scheme's own (``aws_default`` for ``s3://``).
    :param aws: ``aws_conn_id`` of the SageMaker tasks (default ``aws_default``).
    :param kubernetes: ``kubernetes_conn_id`` of the KServe tasks (default ``kubernetes_default``).
    """

    mlflow: str | None = None
    storage: str | None = None
    aws: str | None = None
    kubernetes: str | None = None

    def __post_init__(self) -> None:
        for name in ("mlflow", "storage", "aws", "kubernetes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"Connections.{name} must be a connection id (a non-empty string) or None, "
                                 f"got {value!r}")

    def default_args(self) -> dict[str, str]:
        """``{"mlflow_conn_id": ..., "conn_id": ..., "aws_conn_id": ..., "kubernetes_conn_id": ...}``
        for the connections that are set."""
        names = {"mlflow": "mlflow_conn_id", "storage": "conn_id", "aws": "aws_conn_id",
                 "kubernetes": "kubernetes_conn_id"}
        return {arg: getattr(self, name) for name, arg in names.items() if getattr(self, name) is not None}


@dataclass(frozen=True)
class ModelConfig:
    """One model's pipeline configuration; checked when the DAG file is parsed.

    :param name: registered model name in MLflow (also names the Assets and the experiment).
    :param task_type: ``binary``, ``multiclass``, ``regression`` or another registered task type
        (:mod:`airflow_mlops_provider.core.task_types`).
    :param target: label column of the training data.
    :param train: ``train(X, y, **train_params)`` returning a fitted model (see
        :class:`~airflow_mlops_provider.operators.training.MlflowTrainModelOperator`).
    :param data_path: the training file's path inside the DVC repository.
    :param id_columns: row identifiers: not features, kept in scoring output.
    :param suite: Great Expectations suite (dict, JSON path or suite) for the training data;
        None: the target is not null and id columns are unique.
    :param policy: promotion policy; None: the task type's default
        (:data:`airflow_mlops_provider.core.tasks.DEFAULT_POLICIES`).
    :param train_params: default hyper-parameters (a Param, editable per run).
    :param pip_requirements: serving requirements of the model; bare names are pinned to the
        installed version at training time. None: MLflow infers them (slow).
    :param flavor: MLflow flavor that logs a non-scikit-learn model (``"lightgbm"``).
    :param log_model: custom logging callable (see the training operator).
    :param deploy_target: default of the ``deploy_target`` Param (``none`` or a target name).
    :param deploy_targets: the lanes to build; None: every registered target.
    :param deploy_config: per-target overrides of the target's default config.
    :param require_approval: default of the ``require_approval`` Param.
    :param dataset: Asset name of the training data; default: the file name's stem.
    :param dvc_conn_id: DVC connection the training task reads the data through (absent
        ``dvc_default``: ``MLOPS_HOME/data-repo``).
    :param dvc_repo: the repository the training-data AssetWatcher polls for new versions;
        None: ``MLOPS_HOME/data-repo``.
    :param drift_policy: default drift policy of the batch pipeline.
    :param sensitive_features: attributes the promotion gate groups the holdout by (fairlearn
        group metrics, e.g. ``demographic_parity_difference``, which the policy may then name).
    :param sensitive_as_features: also train on them (default: they are excluded from the
        features and used for grouping only).
    :param decay_policy: when live performance on late labels counts as degraded (the
        performance-monitoring pipeline; :class:`~airflow_mlops_provider.core.decay.DecayPolicy`);
        None: the task type's default (:data:`~airflow_mlops_provider.core.decay.DEFAULT_DECAY_POLICIES`).
    :param labels_lookback_days: how many days of scored partitions the labels of a day are matched to.
    :param explain_top_k: default of the batch pipeline's ``explain_top_k`` Param: per-row reason codes
        (the top k features and their contributions; 0: none; needs the ``explain`` extra).
    :param promotion_pool: the 1-slot pool every ``promote`` task runs in (:data:`PROMOTION_POOL`);
        None: Airflow's default pool (promotions then rely on the per-host lock alone).
    :param scoring_backend: the registered scoring backend of the batch pipeline
        (:mod:`airflow_mlops_provider.scoring`): ``local`` (streamed, sharded over mapped tasks) or
        ``spark`` (``mlflow.pyfunc.spark_udf`` on Spark Connect, :mod:`airflow_mlops_provider.scoring.spark`).
    :param scoring_config: the backend's settings; ``spark``: ``spark_conn_id`` (an Airflow
        connection of type ``spark_connect``; absent: a local Spark in the task), ``master`` (the
        local Spark's, default ``local[*]``), ``spark_staging_path`` (a folder both Spark and the
        worker reach, for a remote cluster), ``spark_input_path`` (the input as Spark names it,
        e.g. ``s3a://``, when it differs).
    :param connections: the connection ids of the model's pipelines (:class:`Connections`: MLflow,
        object storage, AWS, Kubernetes); a dict of the same keys is accepted.
    :param slices: holdout slices the gate reports and the policy's ``slices`` rules judge
        (:mod:`airflow_mlops_provider.core.slices`): ``{"column": c}`` (each value),
        ``{"column": c, "values": [...]}``, ``{"column": c, "bins": [0, 50, None]}``.
    :param owner: who answers for the model (shown on its model card).
    :param intended_use: what the model is for (model card).
    :param out_of_scope_uses: uses it must not be put to (model card).
    :param limitations: known limitations (model card).
    """

    name: str
    task_type: str
    target: str
    train: Callable[..., Any]
    data_path: str
    id_columns: Sequence[str] = ()
    suite: Any = None
    policy: Mapping[str, Any] | None = None
    train_params: Mapping[str, Any] = field(default_factory=dict)
    pip_requirements: Sequence[str] | None = None
    flavor: str | None = None
    log_model: Callable[..., Any] | None = None
    skops_trusted_types: Sequence[str] | None = None
    categorical_features: Sequence[str] | None = None
    holdout_fraction: float = 0.2
    deploy_target: str = "none"
    deploy_targets: Sequence[str] | None = None
    deploy_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    require_approval: bool = False
    dataset: str | None = None
    dvc_conn_id: str = "dvc_default"
    dvc_repo: str | None = None
    experiment: str | None = None
    drift_policy: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_DRIFT_POLICY))
    batch_shards: int = 2
    promotion_pool: str | None = PROMOTION_POOL
    sensitive_features: Sequence[str] = ()
    sensitive_as_features: bool = False
    decay_policy: Mapping[str, Any] | None = None
    labels_lookback_days: int = 14
    explain_top_k: int = 0
    connections: Connections = field(default_factory=Connections)
    scoring_backend: str = "local"
    scoring_config: Mapping[str, Any] = field(default_factory=dict)
    slices: Sequence[Mapping[str, Any]] = ()
    owner: str | None = None
    intended_use: str | None = None
    out_of_scope_uses: Sequence[str] = ()
    limitations: Sequence[str] = ()

    def __post_init__(self) -> None:
        self._check_card()
        if not _NAME.match(self.name or ""):
            raise ValueError(f"ModelConfig.name {self.name!r} must match {_NAME.pattern}")
        if isinstance(self.connections, Mapping):
            unknown = sorted(set(self.connections) - {"mlflow", "storage", "aws", "kubernetes"})
            if unknown:
                raise ValueError(f"ModelConfig({self.name!r}).connections: unknown keys {unknown}; known: "
                                 "['aws', 'kubernetes', 'mlflow', 'storage']")
            object.__setattr__(self, "connections", Connections(**self.connections))
        elif not isinstance(self.connections, Connections):
            raise TypeError(f"ModelConfig({self.name!r}).connections must be a Connections or a dict")
        try:  # any registered task type, by name
            object.__setattr__(self, "task_type", parse_task_type(self.task_type))
        except TaskTypeError as err:
            raise TaskTypeError(f"ModelConfig({self.name!r}).task_type: {err}") from None
        from airflow_mlops_provider.scoring import scoring_backend_names

        if self.scoring_backend not in scoring_backend_names():
            raise ValueError(f"ModelConfig({self.name!r}).scoring_backend {self.scoring_backend!r} is not a registered "
                             f"scoring backend; known: {scoring_backend_names()}")
        if not isinstance(self.scoring_config, Mapping):
            raise TypeError(f"ModelConfig({self.name!r}).scoring_config must be a dict of the backend's settings")
        if not callable(self.train):
            raise TypeError(f"ModelConfig.train of {self.name!r} must be a callable train(X, y, **params)")
        if not self.target:
            raise ValueError(f"ModelConfig.target of {self.name!r} is empty")
        check_policy_metrics(self.task_type, dict(self.effective_policy), where=f"ModelConfig({self.name!r}).policy")
        from airflow_mlops_provider.core.policy import PolicyError, PromotionPolicy

        try:  # bootstrap settings, slice rules: refused at parse, not at the gate
            PromotionPolicy.from_dict(self.effective_policy)
        except PolicyError as err:
            raise PolicyError(f"ModelConfig({self.name!r}): {err}") from None
        from airflow_mlops_provider.core.tasks import GROUP_METRICS

        grouped = [r["name"] for r in self.effective_policy["metrics"] if r["name"] in GROUP_METRICS[self.task_type]]
        if grouped and not self.sensitive_features:
            raise ValueError(f"ModelConfig({self.name!r}).policy gates on group metrics {grouped}, but no "
                             "sensitive_features are named to group the holdout by")
        if isinstance(self.sensitive_features, str):
            raise TypeError(f"ModelConfig({self.name!r}).sensitive_features must be a list of column names")
        clash = {self.target, *self.id_columns} & set(self.sensitive_features)
        if clash:
            raise ValueError(f"ModelConfig({self.name!r}).sensitive_features {sorted(clash)} are the target or "
                             "id columns")
        from airflow_mlops_provider.core.decay import DecayPolicy

        DecayPolicy.from_dict(self.task_type, self.decay_policy, where=f"ModelConfig({self.name!r}).decay_policy")
        if isinstance(self.labels_lookback_days, bool) or not isinstance(self.labels_lookback_days, int) \
                or not 0 <= self.labels_lookback_days <= 366:
            raise ValueError(f"ModelConfig({self.name!r}).labels_lookback_days must be an integer in 0..366, "
                             f"got {self.labels_lookback_days!r}")
        if isinstance(self.explain_top_k, bool) or not isinstance(self.explain_top_k, int) \
                or not 0 <= self.explain_top_k <= MAX_EXPLAIN_TOP_K:
            raise ValueError(f"ModelConfig({self.name!r}).explain_top_k must be an integer in 0..{MAX_EXPLAIN_TOP_K}, "
                             f"got {self.explain_top_k!r}")
        from airflow_mlops_provider.deploy.base import deploy_target_names

        known = deploy_target_names()
        for target in self.lanes:
            if target not in known:
                raise ValueError(f"ModelConfig({self.name!r}): unknown deploy target {target!r}; known: {known}")
        if self.deploy_target != "none" and self.deploy_target not in self.lanes:
            raise ValueError(f"ModelConfig({self.name!r}).deploy_target {self.deploy_target!r} is not one of the "
                             f"built lanes {list(self.lanes)}")
        unknown = set(self.deploy_config) - set(self.lanes)
        if unknown:
            raise ValueError(f"ModelConfig({self.name!r}).deploy_config names targets without a lane: {sorted(unknown)}")

    def _check_card(self) -> None:
        """Slices and the model card's identity fields, refused naming the field."""
        from airflow_mlops_provider.core.slices import parse_slices

        object.__setattr__(self, "slices", parse_slices(self.slices, where=f"ModelConfig({self.name!r}).slices"))
        for name in ("owner", "intended_use"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"ModelConfig({self.name!r}).{name} must be a string, got {type(value).__name__}")
        for name in ("out_of_scope_uses", "limitations"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"ModelConfig({self.name!r}).{name} must be a list of strings")
            object.__setattr__(self, name, list(value))
        policy = self.policy or {}
        if policy.get("slices") and not self.slices:
            raise ValueError(f"ModelConfig({self.name!r}).policy has slice rules, but no slices are declared "
                             "(ModelConfig.slices)")

    def card_identity(self) -> dict[str, Any]:
        """The model card's declared identity fields (owner, intended use, out-of-scope uses, limitations)."""
        return {"owner": self.owner, "intended_use": self.intended_use,
                "out_of_scope_uses": list(self.out_of_scope_uses), "limitations": list(self.limitations)}

    @property
    def effective_policy(self) -> dict[str, Any]:
        policy = dict(self.policy) if self.policy is not None else default_policy(self.task_type)
        return complete_policy(self.task_type, policy)

    @property
    def effective_decay_policy(self) -> dict[str, Any]:
        from airflow_mlops_provider.core.decay import DecayPolicy

        return DecayPolicy.from_dict(self.task_type, self.decay_policy).to_dict()

    @property
    def lanes(self) -> list[str]:
        if self.deploy_targets is not None:
            return list(self.deploy_targets)
        from airflow_mlops_provider.deploy.base import deploy_target_names

        return deploy_target_names()

    @property
    def dataset_name(self) -> str:
        return self.dataset or re.sub(r"[^A-Za-z0-9_.-]", "_", PurePosixPath(self.data_path).stem)

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name

    @property
    def training_suite(self) -> Any:
        if self.suite is not None:
            return self.suite
        expectations = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": self.target},
                         "severity": "critical"}]
        expectations += [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": c},
                          "severity": "critical"} for c in self.id_columns]
        return {"name": f"{self.name}_training", "expectations": expectations}
