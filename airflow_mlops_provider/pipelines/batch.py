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

from airflow_mlops_provider.pipelines.config import ModelConfig

DRIFT_POLICY_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"drift_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                   "key_features": {"type": "array", "items": {"type": "string"}},
                   "prediction_drift": {"type": "boolean"},
                   "min_rows": {"type": "integer", "minimum": 1}}}
PATH_MAX_LENGTH = 4096
ALIAS_PATTERN = "^([A-Za-z_][A-Za-z0-9_-]*)?$"  # an MLflow alias (or empty)
INPUT_PATH = "{{ params.input_path or (mlops_home() ~ '/data/incoming/' ~ ds ~ '.parquet') }}"
OUTPUT_PATH = "{{ params.output_path or (mlops_home() ~ '/outputs/scores/date=' ~ ds ~ '.parquet') }}"


def _home() -> str:
    from airflow_mlops_provider.core.settings import mlops_home

    return str(mlops_home().root)


BATCH_MACROS: dict[str, Any] = {"mlops_home": _home}


def batch_scoring_params(model: ModelConfig, shards: int | None = None) -> dict[str, Any]:
    from airflow.sdk import Param

    return {
        "input_path": Param("", type="string", maxLength=PATH_MAX_LENGTH,
                            description="Input partition (absolute path or s3://... inside the allowed roots, "
                                        "[mlops] allowed_roots); empty: MLOPS_HOME/data/incoming/<ds>.parquet"),
        "output_path": Param("", type="string", maxLength=PATH_MAX_LENGTH,
                             description="Output partition (inside the allowed roots); empty: "
                                         "MLOPS_HOME/outputs/scores/date=<ds>.parquet"),
        "shards": Param(shards or model.batch_shards, type="integer", minimum=1, maximum=64,
                        description="Parallel scoring tasks (dynamically mapped)"),
        "shadow_alias": Param("", type="string", pattern=ALIAS_PATTERN, maxLength=255,
                              description="Also score with this alias, e.g. challenger"),
        "drift_policy": Param(dict(model.drift_policy), type="object", schema=DRIFT_POLICY_SCHEMA,
                              description="When drift schedules a retrain: share of drifted features, key "
                                          "features, or drifted model outputs"),
    }


def batch_scoring_pipeline(model: ModelConfig, *, input_path: str = INPUT_PATH,
                           output_path: str = OUTPUT_PATH) -> dict[str, Any]:
    """Add the batch-scoring tasks for ``model`` to the DAG being defined; returns them by name."""
    from airflow.sdk import task

    from airflow_mlops_provider import assets
    from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator
    from airflow_mlops_provider.operators.drift import EvidentlyCheckDriftOperator
    from airflow_mlops_provider.operators.registry import MlflowGetModelVersionOperator
    from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator
    from airflow_mlops_provider.pipelines.retraining import check_dag
    from airflow_mlops_provider.sensors.object_storage import ObjectStoragePartitionSensor

    key_columns = list(model.id_columns)
    drift_detected = assets.drift_detected(model.name)

    champion = MlflowGetModelVersionOperator(task_id="resolve_champion", name=model.name, alias="champion")
    dag = check_dag(champion, "batch_scoring_pipeline", batch_scoring_params(model), "batch_scoring_params",
                    "batch_scoring_dag")
    if "mlops_home" not in (dag.user_defined_macros or {}) and "mlops_home()" in input_path + output_path:
        raise ValueError(f"DAG {dag.dag_id!r}: pass user_defined_macros=BATCH_MACROS (the paths use mlops_home())")
    partition = ObjectStoragePartitionSensor(
        task_id="wait_for_partition", path=input_path, deferrable=True, poke_interval=60, timeout=6 * 3600)

    @task
    def inspect_partition(found: dict, **context: Any) -> dict:
        """Row count and columns from the Parquet footer; 0 rows is an explicit skip.

        The output path is checked against the allowed roots here, before any scoring.
        """
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops_provider.core.scoring import open_parquet
        from airflow_mlops_provider.paths import require_allowed

        require_allowed(found["path"], "input_path")
        require_allowed(context["task"].render_template(output_path, context), "output_path")

        pf = open_parquet(found["path"])
        if pf.metadata.num_rows == 0:
            raise AirflowSkipException(f"input partition {found['path']!r} has 0 rows: nothing to score")
        return {"path": found["path"], "rows": pf.metadata.num_rows, "row_groups": pf.num_row_groups,
                "columns": pf.schema_arrow.names}

    @task
    def build_contract(champion: dict) -> dict:
        """The champion's input contract: its signature plus its training baseline."""
        import mlflow

        from airflow_mlops_provider.core.contract import contract_suite, signature_inputs
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        hook = MlflowHook()
        hook.activate()
        schema = mlflow.models.get_model_info(f"models:/{champion['name']}/{champion['version']}").signature.inputs
        profile = hook.load_baseline(champion["name"], champion["version"]).profile
        return contract_suite(f"{champion['name']}_v{champion['version']}_input",
                              signature_inputs(schema), profile, key_columns)

    inspected = inspect_partition(partition.output)
    contract = build_contract(champion.output)
    validate_input = GreatExpectationsValidateDataOperator(task_id="validate_input", path=input_path, suite=contract)

    @task
    def plan_shards(inspected: dict, **context: Any) -> list[list[int]]:
        """Row groups per scoring task (balanced by rows)."""
        from airflow_mlops_provider.core.scoring import plan_shards as plan

        return plan(inspected["path"], int(context["params"]["shards"]))

    shard_plan = plan_shards(inspected)
    scores = MlflowBatchScoreOperator.partial(
        task_id="score", model_name=model.name, model_version=champion.output["version"], input_path=input_path,
        output_path="{{ mlops_home() }}/outputs/staging/{{ dag.dag_id }}/{{ run_id | replace(':', '_') }}"
                    "/shard-{{ ti.map_index }}.parquet",
        key_columns=key_columns, shadow_alias="{{ params.shadow_alias or '' }}",
    ).expand(row_groups=shard_plan)

    @task(multiple_outputs=True)
    def commit(shards: list[dict], inspected: dict, **context: Any) -> dict:
        """Merge the shards into the output partition in one atomic step; exactly one row per input row."""
        import shutil
        from pathlib import Path

        from airflow_mlops_provider.core.scoring import merge_files
        from airflow_mlops_provider.paths import require_allowed

        shards = sorted(shards, key=lambda s: s["output_path"])
        versions = {s["model_version"] for s in shards}
        if len(versions) != 1:
            raise RuntimeError(f"shards were scored by different model versions: {sorted(versions)}")
        target = require_allowed(context["task"].render_template(output_path, context), "output_path")
        rows = merge_files([s["output_path"] for s in shards], target)
        if rows != inspected["rows"]:
            Path(target).unlink(missing_ok=True)
            raise RuntimeError(f"scored {rows} rows for {inspected['rows']} input rows; output withdrawn")
        from airflow_mlops_provider.core.lineage import storage_dataset
        from airflow_mlops_provider.hooks.lineage import report_storage_lineage

        # Lineage (shards -> partition): a TaskFlow step reports through Airflow's hook lineage collector.
        report_storage_lineage(context["task"], inputs=[storage_dataset(s["output_path"]) for s in shards],
                               outputs=[storage_dataset(str(target))])
        shutil.rmtree(Path(shards[0]["output_path"]).parent, ignore_errors=True)
        result = {"output_path": str(target), "rows": rows, "model_version": versions.pop(),
                  "model_run_id": shards[0]["model_run_id"], "shards": len(shards),
                  "output_columns": shards[0].get("output_columns")}
        shadowed = [s for s in shards if s.get("shadow") and s["rows"]]
        if shadowed:
            keys = sorted({k for s in shadowed for k, v in s["shadow"].items() if isinstance(v, float)})
            result["shadow"] = {"version": shadowed[0]["shadow"]["version"]}
            for key in keys:  # row-weighted over the shards that scored rows
                weighted = [(s["shadow"][key], s["rows"]) for s in shadowed if key in s["shadow"]]
                result["shadow"][key] = sum(v * r for v, r in weighted) / sum(r for _, r in weighted)
        print(f"output partition {target}: {rows} rows scored by v{result['model_version']}")
        return result

    committed = commit(scores.output, inspected)
    drift = EvidentlyCheckDriftOperator(
        task_id="check_drift", model_name=model.name, model_version=champion.output["version"],
        data_path=input_path, predictions_path=committed["output_path"], policy="{{ params.drift_policy }}")

    @task(outlets=[drift_detected])
    def signal_drift(drift: dict, **context: Any) -> dict:
        """Emit ``drift detected`` (with version, share and report) only when the policy fires."""
        from airflow.sdk.exceptions import AirflowSkipException

        if drift.get("too_few_rows"):
            raise AirflowSkipException(f"drift not decided: {drift['too_few_rows']}")
        if not drift["drifted"]:
            raise AirflowSkipException(f"no drift: {drift['n_drifted']}/{drift['n_columns']} features drifted")
        extra = {"model_name": drift["model_name"], "model_version": drift["model_version"],
                 "drift_share": drift["drift_share"], "drifted_features": drift["drifted_features"],
                 "prediction_drift": drift.get("prediction_drift"),
                 "report": drift["report_path"], "data_path": drift["data_path"]}
        context["outlet_events"][drift_detected].extra = extra
        print(f"DRIFT DETECTED for {drift['model_name']} v{drift['model_version']}: {drift['reasons']}")
        return extra

    inspected >> validate_input
    contract >> validate_input >> shard_plan
    signalled = signal_drift(drift.output)
    return {"champion": champion, "partition": partition, "validate_input": validate_input, "score": scores,
            "commit": committed, "check_drift": drift, "signal_drift": signalled}


def daily_dag(model: ModelConfig, *, dag_id: str, description: str, schedule: Any, start_date: datetime | None,
              doc_md: str, tags: list[str], params: dict[str, Any], **dag_kwargs: Any) -> Any:
    """The DAG the cron-scheduled builders share: UTC cron (or a timetable), no catchup, one run at
    a time, native rendering and :data:`BATCH_MACROS`; the caller adds the tasks inside ``with``."""
    from airflow.sdk import DAG, CronTriggerTimetable

    return DAG(
        dag_id=dag_id, description=description,
        schedule=CronTriggerTimetable(schedule, timezone="UTC") if isinstance(schedule, str) else schedule,
        start_date=start_date or datetime(2026, 1, 1),
        catchup=dag_kwargs.pop("catchup", False),
        max_active_runs=dag_kwargs.pop("max_active_runs", 1),
        render_template_as_native_obj=True,
        user_defined_macros={**BATCH_MACROS, **dag_kwargs.pop("user_defined_macros", {})},
        tags=tags, doc_md=doc_md, params=params, **dag_kwargs,
    )


def batch_scoring_dag(model: ModelConfig, *, dag_id: str, schedule: Any = "0 2 * * *",
                      start_date: datetime | None = None, doc_md: str | None = None, tags: list[str] | None = None,
                      **dag_kwargs: Any) -> Any:
    """A complete nightly batch-scoring DAG for ``model`` (``schedule`` is a UTC cron or a timetable)."""
    with daily_dag(model, dag_id=dag_id, schedule=schedule, start_date=start_date,
                   description=f"Nightly scoring of {model.name} with @champion, atomic output, feature and "
                               "prediction drift",
                   doc_md=doc_md or __doc__, tags=tags or ["mlops", "inference", model.name],
                   params=batch_scoring_params(model), **dag_kwargs) as dag:
        batch_scoring_pipeline(model)
    return dag
