"""The online-traffic pipeline: a day of captured requests → a scored partition → drift → signal.

``online_monitoring_dag(model, dag_id=..., capture_format=..., capture_path=...)`` builds a whole
DAG; ``online_monitoring_pipeline(model, ...)`` adds the same tasks to a DAG of your own
(``params=online_monitoring_params(model)``, ``render_template_as_native_obj=True`` and
``user_defined_macros=BATCH_MACROS``).

Task ids: ``reconcile_aliases``, ``capture_partition``, ``check_drift``, ``signal_drift``.
``capture_partition`` turns the day's captured payloads (SageMaker Data Capture, or KServe's
inference logger / the local target's capture as CloudEvents) into a partition with the columns
a batch-scored one has, plus ``request_id`` (default
``MLOPS_HOME/outputs/online/<model>/date=<ds>.parquet``). ``check_drift`` compares its inputs and
outputs with the training data of the version that answered most of the day's requests, under
the same drift policy as the batch pipeline; ``signal_drift`` emits the same ``drift detected``
Asset, which schedules the model's retraining DAG. Late labels keyed by ``request_id`` are
judged by the performance-monitoring DAG built with ``scores_path=online_scores_path(model)``,
``key_columns=["request_id"]`` and ``labels_path=ONLINE_LABELS_PATH``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_mlops_provider.pipelines.common import PATH_MAX_LENGTH, check_dag, check_macros, daily_dag, param
from airflow_mlops_provider.pipelines.config import ModelConfig

#: The day's labels of online predictions (``request_id`` and the target): the ``labels_path``
#: Param, else ``MLOPS_HOME/data/online-labels/<ds>.parquet``.
ONLINE_LABELS_PATH = "{{ params.labels_path or (mlops_home() ~ '/data/online-labels/' ~ ds ~ '.parquet') }}"


def online_output_path(model: ModelConfig) -> str:
    """The template of the day's online partition (the ``output_path`` Param, else under MLOPS_HOME)."""
    return ("{{ params.output_path or (mlops_home() ~ '/outputs/online/" + model.name
            + "/date=' ~ ds ~ '.parquet') }}")


def online_scores_path(model: ModelConfig) -> str:
    """The online partitions as the performance check's ``scores_path`` (``{home}``, ``{date}``)."""
    return "{home}/outputs/online/" + model.name + "/date={date}.parquet"


def online_monitoring_params(model: ModelConfig) -> dict[str, Any]:
    from airflow_mlops_provider.pipelines.batch import drift_policy_param

    return {
        "output_path": param("", type="string", maxLength=PATH_MAX_LENGTH,
                             description="Where the day's online partition goes (inside the allowed roots); "
                                         f"empty: MLOPS_HOME/outputs/online/{model.name}/date=<ds>.parquet"),
        "drift_policy": drift_policy_param(model),
    }


def online_monitoring_pipeline(model: ModelConfig, *, capture_format: str, capture_path: str,
                               deploy_target: str | None = None, output_path: str | None = None) -> dict[str, Any]:
    """Add the online-traffic tasks for ``model`` to the DAG being defined; returns them by name.

    ``capture_format``: ``"sagemaker"`` or ``"cloudevents"``; ``capture_path``: the folder the
    serving side captures into (templated); ``deploy_target``: the target whose history names the
    version of a captured call that does not name its own.
    """
    from airflow_mlops_provider import assets
    from airflow_mlops_provider.operators.capture import CapturedTrafficToPartitionOperator
    from airflow_mlops_provider.operators.drift import EvidentlyCheckDriftOperator
    from airflow_mlops_provider.operators.history import MlflowReconcileAliasesOperator
    from airflow_mlops_provider.operators.signals import SignalDriftDetectedOperator

    output_path = output_path or online_output_path(model)
    reconcile = MlflowReconcileAliasesOperator(task_id="reconcile_aliases", name=model.name)
    dag = check_dag(reconcile, "online_monitoring_pipeline", online_monitoring_params(model),
                    "online_monitoring_params", "online_monitoring_dag")
    check_macros(dag, output_path, capture_path)
    capture = CapturedTrafficToPartitionOperator(
        task_id="capture_partition", model_name=model.name, capture_format=capture_format,
        capture_path=capture_path, output_path=output_path, deploy_target=deploy_target)
    drift = EvidentlyCheckDriftOperator(
        task_id="check_drift", model_name=model.name, model_version=capture.output["model_version"],
        data_path=capture.output["output_path"], predictions_path=capture.output["output_path"],
        policy="{{ params.drift_policy }}", report_name=f"{model.name}-online-" + "{{ ds }}")
    signalled = SignalDriftDetectedOperator(task_id="signal_drift", drift=drift.output,
                                            outlets=[assets.drift_detected(model.name)])
    reconcile >> capture
    return {"reconcile": reconcile, "capture_partition": capture, "check_drift": drift, "signal_drift": signalled}


def online_monitoring_dag(model: ModelConfig, *, dag_id: str, capture_format: str, capture_path: str,
                          deploy_target: str | None = None, schedule: Any = "30 0 * * *",
                          start_date: datetime | None = None, doc_md: str | None = None,
                          tags: list[str] | None = None, **dag_kwargs: Any) -> Any:
    """A complete daily DAG over ``model``'s captured online traffic (``schedule``: a UTC cron or a
    timetable; by default half an hour after midnight, when the day's capture files are complete)."""
    with daily_dag(model, dag_id=dag_id, schedule=schedule, start_date=start_date,
                   description=f"Online traffic of {model.name}: captured requests as a scored partition, "
                               "feature and prediction drift",
                   doc_md=doc_md or __doc__, tags=tags or ["mlops", "online", model.name],
                   params=online_monitoring_params(model), **dag_kwargs) as dag:
        online_monitoring_pipeline(model, capture_format=capture_format, capture_path=capture_path,
                                   deploy_target=deploy_target)
    return dag


__all__ = ["ONLINE_LABELS_PATH", "online_monitoring_dag", "online_monitoring_params", "online_monitoring_pipeline", "online_output_path",
           "online_scores_path"]
