"""The XCom results of the provider's operators, typed.

Every operator returns a small JSON-safe dict; these TypedDicts document their keys so a DAG
can read them (``op.output["run_id"]``, ``ti.xcom_pull(task_ids="decide")["verdict"]``)
without reading the source, and the operators annotate ``execute`` with them.
``total=False`` marks keys that are present only sometimes. (``airflow_mlops_provider.pipelines.results``
re-exports them.)
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class ValidationResult(TypedDict):
    """``GreatExpectationsValidateDataOperator``: the full result JSON is at ``result_uri``."""

    success: bool
    result_id: str
    path: str
    rows: int
    failed: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    result_uri: str
    data_docs_uri: str | None
    quarantine: dict[str, Any] | None  # {"path", "rows", "valid_path", "valid_rows"} with quarantine=True


class DataVersionResult(TypedDict, total=False):
    """``DvcGetDataVersionOperator``: which bytes were trained on."""

    path: str
    rev: str
    commit: str
    md5: str
    id: str
    repo: str
    local_path: str


class TrainResult(TypedDict):
    """``MlflowTrainModelOperator`` (each key is also its own XCom)."""

    run_id: str
    experiment_id: str
    model_uri: str
    task_type: str  # a registered task type: binary, multiclass, regression or a plug-in
    classes: list[Any] | None
    features: list[str]
    target: str
    train_rows: int
    holdout_rows: int
    holdout_uri: str
    baseline_uri: str


class EvaluateResult(TypedDict):
    """``MlflowEvaluateModelOperator``: metrics of the run's task type on its holdout."""

    run_id: str
    task_type: str
    metrics: dict[str, float]
    eval_rows: int


class ModelVersionResult(TypedDict):
    """``MlflowRegisterModelOperator`` / ``MlflowGetModelVersionOperator``."""

    name: str
    version: str
    run_id: str
    source: str
    aliases: list[str]
    tags: dict[str, str]


class PolicyCheck(TypedDict, total=False):
    metric: str
    direction: str
    passed: bool
    challenger: float
    champion: float
    floor: float
    improvement: float


class _DecisionEvidence(TypedDict, total=False):
    # Feature attributions of challenger and champion and their shift
    # (:func:`airflow_mlops_provider.core.explain.version_explanations`), when computed.
    explanations: dict[str, Any]


class DecisionResult(_DecisionEvidence):
    """``MlflowCompareChallengerOperator`` (task ``decide``): a rejection is a normal outcome."""

    task_type: str
    model: str
    challenger_version: str
    champion_version: str | None
    verdict: Literal["promote", "rejected"]
    reasons: list[str]
    checks: list[PolicyCheck]
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    eval_rows: int
    #: The model card's artifacts: ``{"json": "runs:/<run>/model_card/model_card.json", "html": ...}``.
    card: dict[str, str]


class PromotionResult(TypedDict):
    """``MlflowPromoteModelOperator``: ``changed`` is False when it already was the champion."""

    name: str
    champion: str
    previous: str | None
    changed: bool


class SummaryResult(TypedDict):
    """``MlflowSummarizeDecisionOperator`` (task ``summarize``)."""

    verdict: Literal["promote", "rejected", "unchanged"]
    promotion: PromotionResult | None


class ScoreResult(TypedDict, total=False):
    """``MlflowBatchScoreOperator`` (one shard)."""

    model_name: str
    model_version: str
    model_run_id: str
    task_type: str
    output_columns: list[str]
    alias: str | None
    input_path: str
    output_path: str
    rows: int
    seconds: float
    rows_per_second: float
    shadow: dict[str, Any]
    reason_codes: dict[str, Any]  # {"top_k", "method", "seconds"} with explain_top_k
    # The spark backend: per output column count/mean/std/min/max (class counts for a label), from Spark.
    summary: dict[str, Any]


class PartitionResult(TypedDict):
    """``ParquetInspectPartitionOperator`` (task ``inspect_partition``): the input's Parquet footer."""

    path: str
    rows: int
    row_groups: int
    columns: list[str]


class ScoringManifest(TypedDict):
    """What a scoring backend commits with the output partition (in its Parquet footer, key
    ``mlops.manifest``, for the local backend): the facts drift and metrics are handed."""

    model_name: str
    model_version: str
    model_run_id: str
    task_type: str | None
    output_columns: list[str] | None
    input_path: str
    output_path: str
    rows: int
    shards: int
    scoring_backend: str


class CommitResult(TypedDict, total=False):
    """The batch pipeline's ``commit`` task: the output partition, complete."""

    output_path: str
    rows: int
    model_version: str
    model_run_id: str
    shards: int
    output_columns: list[str] | None
    manifest: ScoringManifest
    shadow: dict[str, Any]


class ColumnDriftSummary(TypedDict):
    method: str
    statistic: float | None
    drifted: bool


class DriftCheckResult(TypedDict):
    """``EvidentlyCheckDriftOperator``: ``drifted`` says whether the drift policy fires."""

    model_name: str
    model_version: str
    data_path: str
    drifted: bool
    drift_share: float
    n_drifted: int
    n_columns: int
    drifted_features: list[str]
    reasons: list[str]
    report_path: str
    mlflow_run_id: str | None
    prediction_drift: dict[str, Any] | None
    # The primary output's distribution: mean/std/p05/p50/p95 (+ positive_share), or
    # top_class_share/classes_predicted for class labels; {} without predictions_path.
    prediction_summary: dict[str, float]
    columns: dict[str, ColumnDriftSummary]
    rows: int
    too_few_rows: str | None  # set (and drifted false) below the policy's min_rows


class DriftSignal(TypedDict):
    """``SignalDriftDetectedOperator`` (task ``signal_drift``): the ``drift detected`` event's extra."""

    model_name: str
    model_version: str
    drift_share: float
    drifted_features: list[str]
    prediction_drift: dict[str, Any] | None
    report: str
    data_path: str


class VerifyResult(TypedDict, total=False):
    """A lane's ``verify`` task: the bake's figures."""

    requests: int
    errors: int
    error_rate: float
    p95_latency_ms: float


class VersionPerformance(TypedDict):
    """One model version on the labelled rows it scored (``MlflowCheckPerformanceDecayOperator``)."""

    version: str
    rows: int
    metrics: dict[str, float]  # the task type's metrics on the labelled rows
    holdout: dict[str, float]  # the version's holdout metrics the policy compares with
    figures: dict[str, dict[str, float]]  # per policy metric: live, holdout, degradation, relative_degradation
    degraded: bool
    reasons: list[str]
    too_few_rows: str | None
    champion: bool
    mlflow_run_id: str


class PerformanceCheckResult(TypedDict):
    """``MlflowCheckPerformanceDecayOperator``: ``degraded`` says whether the decay policy fired for @champion."""

    model_name: str
    task_type: str
    labels_path: str
    labels_day: str
    scored_days: list[str]
    counts: dict[str, Any]  # label_rows, null_labels, duplicated, conflicting, unmatched, ambiguous, late, ...
    versions: dict[str, VersionPerformance]
    champion_version: str | None
    degraded: bool
    degraded_versions: list[str]
    reasons: list[str]
    policy: dict[str, Any]


class DegradationSignal(TypedDict):
    """``SignalPerformanceDegradedOperator`` (task ``signal_degradation``): the event's extra."""

    model_name: str
    model_version: str
    check_key: str
    labels_day: str
    labels_path: str
    labelled_rows: int
    figures: dict[str, dict[str, float]]
    reasons: list[str]
    unmatched_labels: int
    late_labels: int


__all__ = ["ValidationResult", "DataVersionResult", "TrainResult", "EvaluateResult", "ModelVersionResult", "PolicyCheck", "DecisionResult", "PromotionResult", "SummaryResult", "ScoreResult", "PartitionResult", "ScoringManifest", "CommitResult", "ColumnDriftSummary", "DriftCheckResult", "DriftSignal", "VerifyResult", "VersionPerformance", "PerformanceCheckResult", "DegradationSignal"]
