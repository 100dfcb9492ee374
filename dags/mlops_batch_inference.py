"""mlops_batch_inference: score the day's partition with @champion, then check drift.

Nightly. Waits (deferred) for the day's input partition, checks it against the champion's
input contract (Great Expectations), scores it in shards with the version that ``@champion``
named at the start of the run, commits one output partition atomically, compares the
partition with the training baseline stored with that version (Evidently's tests), and emits
the ``drift detected`` Asset when the drift policy fires, which schedules mlops_retrain.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, CronTriggerTimetable, Param, task

from airflow_mlops_provider import assets
from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator
from airflow_mlops_provider.operators.drift import EvidentlyCheckDriftOperator
from airflow_mlops_provider.operators.registry import MlflowGetModelVersionOperator
from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator
from airflow_mlops_provider.sensors.object_storage import ObjectStoragePartitionSensor

MODEL_NAME = "fraud-detector"
KEY_COLUMNS = ["transaction_id"]
DRIFT_DETECTED = assets.drift_detected(MODEL_NAME)


def _home() -> str:
    from airflow_mlops_provider.core.settings import mlops_home

    return str(mlops_home().root)


with DAG(
    dag_id="mlops_batch_inference",
    description="Nightly scoring with @champion, atomic output partition, drift against the training baseline",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    user_defined_macros={"mlops_home": _home},
    tags=["mlops", "inference"],
    doc_md=__doc__,
    params={
        "model_name": Param(MODEL_NAME, type="string", pattern=r"^[A-Za-z0-9_.-]+$"),
        "input_path": Param("", type="string",
                            description="Input partition (local path or s3://...); empty: "
                                        "MLOPS_HOME/data/incoming/<ds>.parquet"),
        "output_path": Param("", type="string",
                             description="Output partition; empty: MLOPS_HOME/outputs/scores/date=<ds>.parquet"),
        "shards": Param(2, type="integer", minimum=1, maximum=64,
                        description="Parallel scoring tasks (dynamically mapped)"),
        "shadow_alias": Param("", type="string", description="Also score with this alias, e.g. challenger"),
        "drift_policy": Param({"drift_share": 0.5, "key_features": []}, type="object", schema={
            "type": "object", "additionalProperties": False,
            "properties": {"drift_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                           "key_features": {"type": "array", "items": {"type": "string"}}}}),
    },
) as dag:
    input_path = "{{ params.input_path or (mlops_home() ~ '/data/incoming/' ~ ds ~ '.parquet') }}"
    output_path = "{{ params.output_path or (mlops_home() ~ '/outputs/scores/date=' ~ ds ~ '.parquet') }}"

    champion = MlflowGetModelVersionOperator(
        task_id="resolve_champion", name="{{ params.model_name }}", alias="champion")

    partition = ObjectStoragePartitionSensor(
        task_id="wait_for_partition", path=input_path, deferrable=True, poke_interval=60, timeout=6 * 3600)

    @task
    def inspect_partition(found: dict) -> dict:
        """Row count and columns from the Parquet footer; 0 rows is an explicit skip."""
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops_provider.core.scoring import open_parquet

        pf = open_parquet(found["path"])
        if pf.metadata.num_rows == 0:
            raise AirflowSkipException(f"input partition {found['path']!r} has 0 rows: nothing to score")
        return {"path": found["path"], "rows": pf.metadata.num_rows, "row_groups": pf.num_row_groups,
                "columns": pf.schema_arrow.names}

    @task
    def build_contract(champion: dict) -> dict:
        """The champion's input contract: its signature plus its training baseline."""
        import json

        import mlflow

        from airflow_mlops_provider.core.contract import contract_suite, signature_inputs
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        hook = MlflowHook()
        hook.activate()
        uri = f"models:/{champion['name']}/{champion['version']}"
        schema = mlflow.models.get_model_info(uri).signature.inputs
        profile = json.loads(mlflow.artifacts.load_text(f"{champion['tags']['mlops.baseline_uri']}/profile.json"))
        return contract_suite(f"{champion['name']}_v{champion['version']}_input",
                              signature_inputs(schema), profile, KEY_COLUMNS)

    inspected = inspect_partition(partition.output)
    contract = build_contract(champion.output)

    validate_input = GreatExpectationsValidateDataOperator(
        task_id="validate_input", path=input_path, suite=contract)

    @task
    def plan_shards(inspected: dict, **context) -> list[list[int]]:
        from airflow_mlops_provider.operators.batch import plan_shards as plan

        return plan(inspected["path"], int(context["params"]["shards"]))

    shard_plan = plan_shards(inspected)

    scores = MlflowBatchScoreOperator.partial(
        task_id="score",
        model_name="{{ params.model_name }}",
        model_version=champion.output["version"],
        input_path=input_path,
        output_path="{{ mlops_home() }}/outputs/staging/{{ run_id | replace(':', '_') }}/shard-{{ ti.map_index }}.parquet",
        key_columns=KEY_COLUMNS,
        shadow_alias="{{ params.shadow_alias or '' }}",
    ).expand(row_groups=shard_plan)

    @task
    def commit(shards: list[dict], inspected: dict, **context) -> dict:
        """Merge the shards into the output partition in one atomic step; exactly one row per input row."""
        import shutil
        from pathlib import Path

        from airflow_mlops_provider.core.scoring import merge_files

        shards = sorted(shards, key=lambda s: s["output_path"])
        versions = {s["model_version"] for s in shards}
        if len(versions) != 1:
            raise RuntimeError(f"shards were scored by different model versions: {sorted(versions)}")
        target = context["task"].render_template(output_path, context)
        rows = merge_files([s["output_path"] for s in shards], target)
        if rows != inspected["rows"]:
            Path(target).unlink(missing_ok=True)
            raise RuntimeError(f"scored {rows} rows for {inspected['rows']} input rows; output withdrawn")
        shutil.rmtree(Path(shards[0]["output_path"]).parent, ignore_errors=True)
        result = {"output_path": str(target), "rows": rows, "model_version": versions.pop(),
                  "model_run_id": shards[0]["model_run_id"], "shards": len(shards)}
        shadow = [s["shadow"] for s in shards if s.get("shadow")]
        if shadow:
            result["shadow"] = {"version": shadow[0]["version"],
                                "decision_agreement": sum(s["decision_agreement"] * r["rows"] for s, r in
                                                          zip(shadow, shards, strict=True)) / rows}
        print(f"output partition {target}: {rows} rows scored by v{result['model_version']}")
        return result

    committed = commit(scores.output, inspected)

    drift = EvidentlyCheckDriftOperator(
        task_id="check_drift", model_name="{{ params.model_name }}", model_version=champion.output["version"],
        data_path=input_path, policy="{{ params.drift_policy }}")

    @task(outlets=[DRIFT_DETECTED])
    def signal_drift(drift: dict, **context) -> dict:
        """Emit ``drift detected`` (with version, share and report) only when the policy fires."""
        from airflow.sdk.exceptions import AirflowSkipException

        if not drift["drifted"]:
            raise AirflowSkipException(f"no drift: {drift['n_drifted']}/{drift['n_columns']} features drifted")
        extra = {"model_name": drift["model_name"], "model_version": drift["model_version"],
                 "drift_share": drift["drift_share"], "drifted_features": drift["drifted_features"],
                 "report": drift["report_path"], "data_path": drift["data_path"]}
        context["outlet_events"][DRIFT_DETECTED].extra = extra
        print(f"DRIFT DETECTED for {drift['model_name']} v{drift['model_version']}: {drift['reasons']}")
        return extra

    inspected >> validate_input
    contract >> validate_input >> shard_plan
    committed >> drift
    signal_drift(drift.output)


if __name__ == "__main__":
    dag.test()
