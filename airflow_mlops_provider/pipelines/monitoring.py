"""The performance-monitoring pipeline: wait for the day's labels → evaluate each version → signal decay.

``performance_monitoring_dag(model, dag_id=...)`` builds a whole DAG; ``performance_monitoring_pipeline(model)``
adds the same tasks to a DAG of your own (``params=performance_monitoring_params(model)``,
``render_template_as_native_obj=True`` and ``user_defined_macros=BATCH_MACROS``).

Task ids: ``wait_for_labels`` (deferrable), ``check_performance``, ``signal_degradation``.
Ground truth arrives days after scoring as a labels partition per day (the id columns and the
target; default ``MLOPS_HOME/data/labels/<ds>.parquet``). ``check_performance`` joins it by key
to the scored partitions of the last ``lookback_days`` days (default: the batch pipeline's
``MLOPS_HOME/outputs/scores/date=<day>.parquet``), evaluates every model version on the rows
it scored with the training metrics of its task type, and compares them with that version's
holdout metrics under the decay policy. When the policy fires for ``@champion``,
``signal_degradation`` emits the model's ``performance degraded`` Asset (the figures in its
extra), which schedules its retraining DAG.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_mlops_provider.pipelines.common import PATH_MAX_LENGTH, check_dag, check_macros, daily_dag, param
from airflow_mlops_provider.pipelines.config import ModelConfig

LABELS_PATH = "{{ params.labels_path or (mlops_home() ~ '/data/labels/' ~ ds ~ '.parquet') }}"


def performance_monitoring_params(model: ModelConfig, *, scores_path: str | None = None) -> dict[str, Any]:
    """``scores_path``: the default of the Param (None: the batch pipeline's partitions; the online
    pipeline's are :func:`~airflow_mlops_provider.pipelines.online.online_scores_path`)."""

    from airflow_mlops_provider.core.decay import DECAY_POLICY_SCHEMA, DEFAULT_SCORES_PATH

    return {
        "labels_path": param("", type="string", maxLength=PATH_MAX_LENGTH,
                             description="The day's labels partition (id columns + target; inside the allowed "
                                         "roots); empty: MLOPS_HOME/data/labels/<ds>.parquet"),
        "scores_path": param(scores_path or DEFAULT_SCORES_PATH, type="string", minLength=1, maxLength=PATH_MAX_LENGTH,
                             pattern=r".*\{date\}.*",
                             description="Scored partitions to match labels to; {date}: the scoring day "
                                         "(YYYY-MM-DD), {home}: MLOPS_HOME"),
        "lookback_days": param(model.labels_lookback_days, type="integer", minimum=0, maximum=366,
                               description="How many days before the labels day to look for the scored rows"),
        "decay_policy": param(model.effective_decay_policy, type="object", schema=DECAY_POLICY_SCHEMA,
                              description=f"When the {model.task_type} model's live performance counts as "
                                          "degraded against its holdout (per metric, over min_rows labelled rows)"),
    }


def performance_monitoring_pipeline(model: ModelConfig, *, labels_path: str = LABELS_PATH,
                                    key_columns: list[str] | None = None) -> dict[str, Any]:
    """Add the performance-monitoring tasks for ``model`` to the DAG being defined; returns them by name.

    ``key_columns``: what labels and scored rows are joined on (None: ``model.id_columns``; online
    traffic: ``["request_id"]``)."""
    from airflow_mlops_provider import assets
    from airflow_mlops_provider.operators.performance import MlflowCheckPerformanceDecayOperator
    from airflow_mlops_provider.operators.signals import SignalPerformanceDegradedOperator
    from airflow_mlops_provider.sensors.object_storage import ObjectStoragePartitionSensor

    degraded = assets.performance_degraded(model.name)
    wait = ObjectStoragePartitionSensor(task_id="wait_for_labels", path=labels_path, deferrable=True,
                                        poke_interval=300, timeout=20 * 3600)
    dag = check_dag(wait, "performance_monitoring_pipeline", performance_monitoring_params(model),
                    "performance_monitoring_params", "performance_monitoring_dag")
    check_macros(dag, labels_path)
    check = MlflowCheckPerformanceDecayOperator(
        task_id="check_performance", model_name=model.name, model_task_type=model.task_type, target=model.target,
        key_columns=list(key_columns or model.id_columns), labels_path=labels_path,
        scores_path="{{ params.scores_path | tojson }}", lookback_days="{{ params.lookback_days }}",
        policy="{{ params.decay_policy }}")
    # Once per check: an earlier event of the same check (read through inlets) means no second retrain.
    signalled = SignalPerformanceDegradedOperator(task_id="signal_degradation", check=check.output,
                                                  outlets=[degraded], inlets=[degraded])
    wait >> check
    return {"wait_for_labels": wait, "check_performance": check, "signal_degradation": signalled}


def performance_monitoring_dag(model: ModelConfig, *, dag_id: str, schedule: Any = "0 6 * * *",
                               start_date: datetime | None = None, doc_md: str | None = None,
                               tags: list[str] | None = None, scores_path: str | None = None,
                               key_columns: list[str] | None = None, labels_path: str = LABELS_PATH,
                               **dag_kwargs: Any) -> Any:
    """A complete daily performance-monitoring DAG for ``model`` (``schedule``: a UTC cron or a timetable).

    For online traffic: ``scores_path=online_scores_path(model), key_columns=["request_id"]``
    and ``labels_path=ONLINE_LABELS_PATH`` (:mod:`airflow_mlops_provider.pipelines.online`)."""
    with daily_dag(model, dag_id=dag_id, schedule=schedule, start_date=start_date,
                   description=f"Late labels of {model.name} against the versions that scored them; decay "
                               "schedules a retrain",
                   doc_md=doc_md or __doc__, tags=tags or ["mlops", "monitoring", model.name],
                   params=performance_monitoring_params(model, scores_path=scores_path), **dag_kwargs) as dag:
        performance_monitoring_pipeline(model, key_columns=key_columns, labels_path=labels_path)
    return dag
