"""The batch-scoring pipeline: wait for the day's partition → validate → score with @champion → drift.

``batch_scoring_dag(model, dag_id=...)`` builds a whole DAG; ``batch_scoring_pipeline(model)``
adds the same tasks to a DAG of your own (``params=batch_scoring_params(model)``,
``render_template_as_native_obj=True`` and ``user_defined_macros=BATCH_MACROS``).

Task ids: ``resolve_champion``, ``wait_for_partition``, ``inspect_partition``,
``build_contract``, ``validate_input``, ``plan_shards``, ``score`` (mapped), ``commit``,
``check_drift``, ``signal_drift``. The output holds the id columns, the task type's outputs
(binary ``score``; multiclass ``prediction`` + ``proba_<class>``; regression ``prediction``),
``model_version`` and ``model_run_id``. Drift compares the features and the model's outputs
with the baselines stored with the scoring version; ``signal_drift`` emits the model's
``drift detected`` Asset when the policy fires, which schedules its retraining DAG.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_mlops_provider.pipelines.common import (
    ALIAS_PATTERN,
    BATCH_MACROS,
    PATH_MAX_LENGTH,
    check_dag,
    check_macros,
    daily_dag,
    param,
)
from airflow_mlops_provider.pipelines.config import MAX_EXPLAIN_TOP_K, ModelConfig

DRIFT_POLICY_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"drift_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                   "key_features": {"type": "array", "items": {"type": "string"}},
                   "prediction_drift": {"type": "boolean"},
                   "min_rows": {"type": "integer", "minimum": 1}}}
INPUT_PATH = "{{ params.input_path or (mlops_home() ~ '/data/incoming/' ~ ds ~ '.parquet') }}"
OUTPUT_PATH = "{{ params.output_path or (mlops_home() ~ '/outputs/scores/date=' ~ ds ~ '.parquet') }}"


def batch_scoring_params(model: ModelConfig, shards: int | None = None) -> dict[str, Any]:

    return {
        "input_path": param("", type="string", maxLength=PATH_MAX_LENGTH,
                            description="Input partition (absolute path or s3://... inside the allowed roots, "
                                        "[mlops] allowed_roots); empty: MLOPS_HOME/data/incoming/<ds>.parquet"),
        "output_path": param("", type="string", maxLength=PATH_MAX_LENGTH,
                             description="Output partition (inside the allowed roots); empty: "
                                         "MLOPS_HOME/outputs/scores/date=<ds>.parquet"),
        "shards": param(shards or model.batch_shards, type="integer", minimum=1, maximum=64,
                        description="Parallel scoring tasks (dynamically mapped)"),
        "shadow_alias": param("", type="string", pattern=ALIAS_PATTERN, maxLength=255,
                              description="Also score with this alias, e.g. challenger"),
        "explain_top_k": param(model.explain_top_k, type="integer", minimum=0, maximum=MAX_EXPLAIN_TOP_K,
                               description="Per-row reason codes: the top k features and their contributions "
                                           "(reason_<i>_feature / reason_<i>_contribution); 0: none"),
        "drift_policy": drift_policy_param(model),
    }


def drift_policy_param(model: ModelConfig) -> Any:
    """The ``drift_policy`` Param (the batch and the online pipelines' drift check)."""
    return param(dict(model.drift_policy), type="object", schema=DRIFT_POLICY_SCHEMA,
                 description="When drift schedules a retrain: share of drifted features, key features, or "
                             "drifted model outputs")


def batch_scoring_pipeline(model: ModelConfig, *, input_path: str = INPUT_PATH, output_path: str = OUTPUT_PATH,
                           scoring_backend: str | None = None) -> dict[str, Any]:
    """Add the batch-scoring tasks for ``model`` to the DAG being defined; returns them by name.

    ``scoring_backend`` names the registered backend (:mod:`airflow_mlops_provider.scoring`) that
    turns the validated input into the committed output partition (None: ``model.scoring_backend``);
    ``local`` adds ``plan_shards``, ``score`` (mapped) and ``commit``; ``spark`` adds ``score`` (one
    Spark job) and ``commit``, with ``model.scoring_config`` handed to the backend.
    """
    from airflow_mlops_provider import assets
    from airflow_mlops_provider.operators.batch import (
        MlflowBuildInputContractOperator,
        ParquetInspectPartitionOperator,
    )
    from airflow_mlops_provider.operators.drift import EvidentlyCheckDriftOperator
    from airflow_mlops_provider.operators.history import MlflowReconcileAliasesOperator
    from airflow_mlops_provider.operators.registry import MlflowGetModelVersionOperator
    from airflow_mlops_provider.operators.signals import SignalDriftDetectedOperator
    from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator
    from airflow_mlops_provider.scoring import get_scoring_backend
    from airflow_mlops_provider.sensors.object_storage import ObjectStoragePartitionSensor

    backend = get_scoring_backend(scoring_backend or model.scoring_backend)
    key_columns = list(model.id_columns)
    champion = MlflowGetModelVersionOperator(task_id="resolve_champion", name=model.name, alias="champion")
    dag = check_dag(champion, "batch_scoring_pipeline", batch_scoring_params(model), "batch_scoring_params",
                    "batch_scoring_dag")
    check_macros(dag, input_path, output_path)
    # First: an alias moved outside the pipeline is recorded before this run scores with it.
    reconcile = MlflowReconcileAliasesOperator(task_id="reconcile_aliases", name=model.name)
    reconcile >> champion
    partition = ObjectStoragePartitionSensor(
        task_id="wait_for_partition", path=input_path, deferrable=True, poke_interval=60, timeout=6 * 3600)
    inspected = ParquetInspectPartitionOperator(task_id="inspect_partition", path=input_path,
                                                output_path=output_path)
    contract = MlflowBuildInputContractOperator(task_id="build_contract", model_name=model.name,
                                                model_version=champion.output["version"], key_columns=key_columns)
    validate_input = GreatExpectationsValidateDataOperator(task_id="validate_input", path=input_path,
                                                           suite=contract.output)
    scoring = backend.tasks(model_name=model.name, model_version=champion.output["version"],
                            input_path=input_path, output_path=output_path,
                            expected_rows=inspected.output["rows"],
                            key_columns=key_columns, shadow_alias="{{ params.shadow_alias or '' }}",
                            shards="{{ params.shards }}", **_explain_kwargs(backend, model),
                            **({"config": dict(model.scoring_config)} if model.scoring_config else {}))
    committed = scoring.commit.output
    # Drift reads the facts the commit recorded: the version that scored every row, the output partition.
    drift = EvidentlyCheckDriftOperator(
        task_id="check_drift", model_name=model.name, model_version=committed["model_version"],
        data_path=input_path, predictions_path=committed["output_path"], policy="{{ params.drift_policy }}")
    signalled = SignalDriftDetectedOperator(task_id="signal_drift", drift=drift.output,
                                            outlets=[assets.drift_detected(model.name)])
    partition >> inspected >> validate_input >> scoring.first
    return {"reconcile": reconcile, "champion": champion, "partition": partition, "validate_input": validate_input, "score": scoring.score,
            "commit": committed, "check_drift": drift, "signal_drift": signalled}


def _explain_kwargs(backend: Any, model: ModelConfig) -> dict[str, Any]:
    """``explain_top_k`` for a backend whose ``tasks()`` takes it; a backend that does not can only
    serve a model without reason codes."""
    import inspect

    params = inspect.signature(backend.tasks).parameters
    if "explain_top_k" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return {"explain_top_k": "{{ params.explain_top_k }}"}
    if model.explain_top_k:
        raise ValueError(f"ModelConfig({model.name!r}).explain_top_k is set but the scoring backend "
                         f"{backend.name!r} does not write reason codes (its tasks() takes no explain_top_k)")
    return {}


def batch_scoring_dag(model: ModelConfig, *, dag_id: str, schedule: Any = "0 2 * * *",
                      start_date: datetime | None = None, doc_md: str | None = None, tags: list[str] | None = None,
                      scoring_backend: str | None = None, **dag_kwargs: Any) -> Any:
    """A complete nightly batch-scoring DAG for ``model`` (``schedule`` is a UTC cron or a timetable;
    ``scoring_backend``: see :func:`batch_scoring_pipeline`)."""
    with daily_dag(model, dag_id=dag_id, schedule=schedule, start_date=start_date,
                   description=f"Nightly scoring of {model.name} with @champion, atomic output, feature and "
                               "prediction drift",
                   doc_md=doc_md or __doc__, tags=tags or ["mlops", "inference", model.name],
                   params=batch_scoring_params(model), **dag_kwargs) as dag:
        batch_scoring_pipeline(model, scoring_backend=scoring_backend)
    return dag


__all__ = ["ALIAS_PATTERN", "BATCH_MACROS", "DRIFT_POLICY_SCHEMA", "INPUT_PATH", "OUTPUT_PATH", "PATH_MAX_LENGTH",
           "batch_scoring_dag", "batch_scoring_params", "batch_scoring_pipeline"]
