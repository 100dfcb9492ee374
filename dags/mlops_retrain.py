"""mlops_retrain: validate → train → evaluate → champion/challenger gate → (deploy) → promote.

Runs weekly, or as soon as a new version of the training data or a drift alert arrives
(Airflow Assets). Every step is a provider operator; the only user code is
``train_fraud_model`` below.

With ``deploy_target = kserve`` a challenger the policy accepts is first rolled out as a
canary of the KServe InferenceService, verified (smoke test plus a bake of repeated requests
with error-rate and latency limits), then traffic goes to 100% and ``@champion`` moves. With
``sagemaker`` the endpoint is updated blue/green (canary or linear shifting and auto-rollback
alarms inside SageMaker), the live config is checked against the requested one, the endpoint
is verified the same way, then ``@champion`` moves. With ``require_approval`` a human approves
the verified deployment first (Required actions page).

If any of that fails — a step, SageMaker's own rollback, a rejection, or a promotion refused
because ``@champion`` moved meanwhile — serving goes back to the model ``@champion`` names, the
ledger records the rollback, and the run ends failed.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, chain, task
from fraud_model import TRAINING_SUITE

from airflow_mlops_provider import assets
from airflow_mlops_provider.core.demo_data import ID_COLUMN, TARGET
from airflow_mlops_provider.core.policy import DEFAULT_POLICY
from airflow_mlops_provider.core.settings import mlops_home
from airflow_mlops_provider.operators.approval import DeploymentApprovalOperator
from airflow_mlops_provider.operators.deploy_kserve import (
    KServeDeployInferenceServiceOperator,
    KServePromoteInferenceServiceOperator,
    KServeRollbackInferenceServiceOperator,
)
from airflow_mlops_provider.operators.deploy_sagemaker import (
    SageMakerDeployModelVersionOperator,
    SageMakerRollbackEndpointOperator,
)
from airflow_mlops_provider.operators.dvc import DvcGetDataVersionOperator
from airflow_mlops_provider.operators.registry import (
    MlflowCompareChallengerOperator,
    MlflowPromoteModelOperator,
    MlflowRegisterModelOperator,
)
from airflow_mlops_provider.operators.training import MlflowEvaluateModelOperator, MlflowTrainModelOperator
from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator

MODEL_NAME = "fraud-detector"
# What train_fraud_model's pipeline needs when it is loaded for serving (skops format); the
# training task pins each to the version it trained with.
MODEL_REQUIREMENTS = ["scikit-learn", "skops", "numpy", "scipy", "pandas"]
TRAINING_FILE = "transactions.parquet"
_home = mlops_home()
# A new DVC version of the training file schedules a retrain (the triggerer watches the repo).
TRAINING_DATA = assets.dvc_data("transactions", repo=str(_home.dvc_repo), path=TRAINING_FILE,
                                state_path=str(_home.root / "state" / "dvc-watch-transactions.json"),
                                poll_interval=float(os.environ.get("MLOPS_DVC_WATCH_INTERVAL", "60")))
DRIFT_DETECTED = assets.drift_detected(MODEL_NAME)
CHAMPION_CHANGED = assets.champion_changed(MODEL_NAME)

POLICY_SCHEMA = {
    "type": "object",
    "required": ["metrics"],
    "properties": {
        "min_eval_rows": {"type": "integer", "minimum": 1},
        "metrics": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "direction": {"enum": ["higher", "lower"]},
                    "floor": {"type": ["number", "null"]},
                    "max_regression": {"type": "number", "minimum": 0},
                    "min_improvement": {"type": ["number", "null"]},
                },
            },
        },
    },
}


# Verification limits shared by every deploy target: smoke rows, bake requests, error rate, p95 latency.
VERIFY_LIMITS_SCHEMA = {
    "bake_requests": {"type": "integer", "minimum": 1, "maximum": 1000},
    "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1},
    "max_latency_ms": {"type": "number", "exclusiveMinimum": 0},
    "smoke_rows": {"type": "integer", "minimum": 1, "maximum": 1000},
}
KSERVE_DEFAULTS = {"name": "fraud-detector", "namespace": "default", "canary_traffic_percent": 10,
                   "ready_timeout_s": 900, "poll_interval_s": 10, "bake_requests": 5, "max_error_rate": 0.0,
                   "max_latency_ms": 2000, "smoke_rows": 5}
KSERVE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string", "minLength": 1},
        "canary_traffic_percent": {"type": "integer", "minimum": 1, "maximum": 100},
        "ready_timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "poll_interval_s": {"type": "number", "exclusiveMinimum": 0},
        **VERIFY_LIMITS_SCHEMA,
    },
}


SAGEMAKER_DEFAULTS = {
    "endpoint_name": "fraud-detector", "image_uri": "", "execution_role_arn": "", "s3_bucket": "",
    "instance_type": "ml.m5.large", "initial_instance_count": 1,
    "deployment_config": {"traffic_shift": {"type": "canary", "percent": 10, "wait_seconds": 600},
                          "max_execution_timeout": 3600, "auto_rollback_alarms": []},
    "timeout_s": 3600, "poll_interval_s": 30, "bake_requests": 5, "max_error_rate": 0.0,
    "max_latency_ms": 2000, "smoke_rows": 5,
}
SAGEMAKER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "endpoint_name": {"type": "string", "pattern": "^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", "maxLength": 63},
        "image_uri": {"type": "string", "description": "MLflow pyfunc serving image in ECR"},
        "execution_role_arn": {"type": "string"},
        "s3_bucket": {"type": "string"},
        "instance_type": {"type": "string"},
        "initial_instance_count": {"type": "integer", "minimum": 1},
        "deployment_config": {"type": "object"},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "poll_interval_s": {"type": "number", "exclusiveMinimum": 0},
        **VERIFY_LIMITS_SCHEMA,
    },
}
DEPLOY_TASKS = ["kserve_deploy", "kserve_verify", "kserve_approve", "kserve_promote_traffic", "kserve_promote",
                "sagemaker_deploy", "sagemaker_verify", "sagemaker_approve", "sagemaker_promote"]
PROMOTE_TASKS = ["promote", "kserve_promote", "sagemaker_promote"]

# What the reviewer sees in "Required actions" before a deployed challenger takes over.
APPROVAL_TIMEOUT_HOURS = 24
APPROVAL_BODY = """\
{% set d = ti.xcom_pull(task_ids='decide') %}{% set v = ti.xcom_pull(task_ids='TARGET_verify') %}\
**{{ d.model }} v{{ d.challenger_version }}** (challenger) against \
{{ ('**v%s** (champion)' % d.champion_version) if d.champion_version else 'no champion' }}: \
{{ d.reasons | join('; ') }}

| metric | challenger | champion |
|---|---|---|
{% for k, val in d.challenger_metrics.items() %}\
| {{ k }} | {{ '%.4f' | format(val) if val is number else val }} | \
{{ '%.4f' | format(d.champion_metrics[k]) if d.champion_metrics and d.champion_metrics[k] is number else '-' }} |
{% endfor %}
Verified on TARGET: {{ v.requests }} requests, error rate {{ '%.1f' | format(100 * v.error_rate) }}%, \
p95 latency {{ '%.0f' | format(v.p95_latency_ms) }} ms.

**Approve** moves all traffic and `@champion` to the challenger. **Reject** (or no answer within \
""" + str(APPROVAL_TIMEOUT_HOURS) + """ h) sends traffic back to the champion.
"""


def smoke_rows(run_id: str, n: int):
    """The first ``n`` holdout rows of the challenger's run, features only."""
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.operators.training import load_holdout

    hook = MlflowHook()
    hook.activate()
    return load_holdout(hook, run_id).drop(columns=[TARGET, ID_COLUMN], errors="ignore").head(n)


def train_fraud_model(X, y, **params):
    """The user's training code: gradient-boosted trees behind a one-hot encoder."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = [c for c in X.columns if X[c].dtype == object]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
                            remainder="passthrough")
    model = Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier(random_state=0, **params))])
    return model.fit(X, y)


with DAG(
    dag_id="mlops_retrain",
    description="Validate, train, evaluate and promote the fraud model by champion/challenger aliases",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 0", timezone="UTC"),
        assets=(TRAINING_DATA | DRIFT_DETECTED),
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["mlops", "training"],
    doc_md=__doc__,
    params={
        "data_path": Param(TRAINING_FILE, type="string", minLength=1,
                           description="Path of the training file inside the DVC repository"),
        "data_rev": Param("", type="string", description="Git rev of the data; empty: the latest (HEAD)"),
        "model_name": Param(MODEL_NAME, type="string", pattern=r"^[A-Za-z0-9_.-]+$"),
        "experiment": Param(MODEL_NAME, type="string", minLength=1),
        "train_params": Param({"max_iter": 150, "learning_rate": 0.1, "max_leaf_nodes": 31}, type="object"),
        "policy": Param(DEFAULT_POLICY, type="object", schema=POLICY_SCHEMA,
                        description="PromotionPolicy: per-metric direction, floor and change threshold"),
        "deploy_target": Param("none", enum=["none", "kserve", "sagemaker"],
                               description="Where an accepted challenger is rolled out before promotion"),
        "kserve": Param(KSERVE_DEFAULTS, type="object", schema=KSERVE_SCHEMA,
                        description="KServe InferenceService, canary share and verification limits"),
        "sagemaker": Param(SAGEMAKER_DEFAULTS, type="object", schema=SAGEMAKER_SCHEMA,
                           description="SageMaker endpoint, MLflow serving image, blue/green deployment config"),
        "require_approval": Param(False, type="boolean",
                                  description="Ask a human (Required actions) before a verified deployment is "
                                              "promoted; a rejection rolls it back"),
    },
) as dag:
    data_version = DvcGetDataVersionOperator(
        task_id="resolve_data_version", path="{{ params.data_path }}", rev="{{ params.data_rev }}")

    validation = GreatExpectationsValidateDataOperator(
        task_id="validate_data", path=data_version.output["local_path"], suite=TRAINING_SUITE)

    training = MlflowTrainModelOperator(
        task_id="train",
        train_callable=train_fraud_model,
        data_path=data_version.output["local_path"],
        data_version=data_version.output,
        validation=validation.output,
        target=TARGET,
        id_columns=[ID_COLUMN],
        experiment_name="{{ params.experiment }}",
        train_params="{{ params.train_params }}",
        pip_requirements=MODEL_REQUIREMENTS,
    )

    evaluation = MlflowEvaluateModelOperator(
        task_id="evaluate", run_id=training.output["run_id"], target=TARGET)

    registration = MlflowRegisterModelOperator(
        task_id="register_challenger", name="{{ params.model_name }}", run_id=training.output["run_id"],
        alias="challenger")

    decision = MlflowCompareChallengerOperator(
        task_id="decide", name="{{ params.model_name }}", challenger=registration.output,
        challenger_metrics=evaluation.output["metrics"], policy="{{ params.policy }}", target=TARGET)

    @task.branch
    def route(decision: dict, **context) -> str:
        """Deploy only a challenger the policy accepted, and only when a target is set."""
        target = context["params"]["deploy_target"]
        return "no_deploy" if decision["verdict"] != "promote" or target == "none" else f"{target}_deploy"

    no_deploy = EmptyOperator(task_id="no_deploy")

    def approval(target: str) -> DeploymentApprovalOperator:
        """The optional human gate between a verified deployment and its promotion."""
        return DeploymentApprovalOperator(
            task_id=f"{target}_approve", required="{{ params.require_approval }}",
            subject="Promote {{ params.model_name }} v{{ ti.xcom_pull(task_ids='decide')['challenger_version'] }} "
                    f"on {target}?",
            body=APPROVAL_BODY.replace("TARGET", target),
            response_timeout=timedelta(hours=APPROVAL_TIMEOUT_HOURS))

    def promotion(task_id: str, on_superseded: str) -> MlflowPromoteModelOperator:
        return MlflowPromoteModelOperator(
            task_id=task_id, name="{{ params.model_name }}", decision=decision.output, on_superseded=on_superseded,
            outlets=[CHAMPION_CHANGED])

    # No deployment: aliases only. A champion that moved meanwhile just skips the promotion.
    promote = promotion("promote", "skip")

    # KServe: canary -> verify -> [approval] -> traffic 100% -> aliases (compare-and-set).
    # Any failure, a rejection or a superseded promotion -> traffic back to what @champion names.
    kserve_deploy = KServeDeployInferenceServiceOperator(
        task_id="kserve_deploy", name="{{ params.kserve.name }}", namespace="{{ params.kserve.namespace }}",
        model_name="{{ params.model_name }}", model_version=registration.output["version"],
        canary_traffic_percent="{{ params.kserve.canary_traffic_percent }}",
        timeout="{{ params.kserve.ready_timeout_s }}", poll_interval="{{ params.kserve.poll_interval_s }}")

    @task
    def kserve_verify(deployed: dict, challenger: dict, **context) -> dict:
        """Smoke test, then a bake of repeated requests against error-rate and latency limits."""
        from airflow_mlops_provider.core.kserve import bake

        limits = context["params"]["kserve"]
        rows = smoke_rows(challenger["run_id"], int(limits["smoke_rows"]))
        return bake(deployed["url"], deployed["name"], rows.values.tolist(), columns=list(rows.columns),
                    requests=int(limits["bake_requests"]), max_error_rate=float(limits["max_error_rate"]),
                    max_latency_ms=float(limits["max_latency_ms"]))

    kserve_approve = approval("kserve")

    kserve_promote_traffic = KServePromoteInferenceServiceOperator(
        task_id="kserve_promote_traffic", name="{{ params.kserve.name }}",
        namespace="{{ params.kserve.namespace }}",
        timeout="{{ params.kserve.ready_timeout_s }}", poll_interval="{{ params.kserve.poll_interval_s }}")

    kserve_promote = promotion("kserve_promote", "fail")

    kserve_rollback = KServeRollbackInferenceServiceOperator(
        task_id="kserve_rollback", name="{{ params.kserve.name }}", namespace="{{ params.kserve.namespace }}",
        model_name="{{ params.model_name }}", alias="champion",
        timeout="{{ params.kserve.ready_timeout_s }}", poll_interval="{{ params.kserve.poll_interval_s }}",
        trigger_rule="one_failed")

    # SageMaker: blue/green update (canary + alarms inside SageMaker) -> verify -> [approval] -> aliases.
    sagemaker_deploy = SageMakerDeployModelVersionOperator(
        task_id="sagemaker_deploy", endpoint_name="{{ params.sagemaker.endpoint_name }}",
        model_name="{{ params.model_name }}", model_version=registration.output["version"],
        image_uri="{{ params.sagemaker.image_uri }}", execution_role_arn="{{ params.sagemaker.execution_role_arn }}",
        s3_bucket="{{ params.sagemaker.s3_bucket }}", instance_type="{{ params.sagemaker.instance_type }}",
        initial_instance_count="{{ params.sagemaker.initial_instance_count }}",
        deployment_config="{{ params.sagemaker.deployment_config }}",
        timeout="{{ params.sagemaker.timeout_s }}", poll_interval="{{ params.sagemaker.poll_interval_s }}",
        retries=0)  # a retry after SageMaker's own rollback would push the rejected canary again

    @task
    def sagemaker_verify(deployed: dict, challenger: dict, **context) -> dict:
        """Smoke test through invoke_endpoint, then a bake against error-rate and latency limits."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        from airflow_mlops_provider.core.verify import bake
        from airflow_mlops_provider.exceptions import SageMakerError
        from airflow_mlops_provider.operators.deploy_sagemaker import smoke_test_endpoint

        limits = context["params"]["sagemaker"]
        rows = smoke_rows(challenger["run_id"], int(limits["smoke_rows"]))
        runtime = AwsBaseHook(aws_conn_id="aws_default", client_type="sagemaker-runtime")
        endpoint = deployed["endpoint_name"]

        def request() -> float:
            return smoke_test_endpoint(runtime, endpoint, rows.values.tolist(),
                                       columns=list(rows.columns))["latency_ms"]

        return {"endpoint_name": endpoint, **bake(
            request, int(limits["bake_requests"]), max_error_rate=float(limits["max_error_rate"]),
            max_latency_ms=float(limits["max_latency_ms"]), failure=SageMakerError, target=endpoint,
            endpoint=endpoint)}

    sagemaker_approve = approval("sagemaker")

    sagemaker_promote = promotion("sagemaker_promote", "fail")

    sagemaker_rollback = SageMakerRollbackEndpointOperator(
        task_id="sagemaker_rollback", endpoint_name="{{ params.sagemaker.endpoint_name }}",
        endpoint_config_name="{{ (ti.xcom_pull(task_ids='sagemaker_deploy') or {}).get('previous_config_name') }}",
        model_name="{{ params.model_name }}", alias="champion",
        timeout="{{ params.sagemaker.timeout_s }}", poll_interval="{{ params.sagemaker.poll_interval_s }}",
        trigger_rule="one_failed")

    @task(trigger_rule="all_done")
    def record_rollback(decision: dict, **context) -> dict:
        """Any failed deployment step is a rollback (ours or the platform's): ledger record and a tag."""
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops_provider.core import ledger
        from airflow_mlops_provider.core.settings import mlops_home
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        ti = context["ti"]
        target = context["params"]["deploy_target"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id],
                                    task_ids=[*DEPLOY_TASKS, "kserve_rollback", "sagemaker_rollback"])
        states = states.get(ti.run_id, {})
        failed = sorted(t for t in DEPLOY_TASKS if states.get(t) in ("failed", "upstream_failed"))
        if not failed:
            raise AirflowSkipException("no deployment step failed: nothing was rolled back")
        rollback = next((t for t in ("kserve_rollback", "sagemaker_rollback") if states.get(t) == "success"), None)
        approval_answer = ti.xcom_pull(task_ids=f"{target}_approve", key="answer")
        record = {"event": "rolled_back", "model": decision["model"], "target": target,
                  "challenger_version": decision["challenger_version"],
                  "champion_version": decision["champion_version"], "failed_tasks": failed,
                  "approval": approval_answer, "rollback_task": rollback,
                  "rollback": ti.xcom_pull(task_ids=rollback) if rollback else None,
                  "dag_id": ti.dag_id, "run_id": ti.run_id}
        ledger.append(mlops_home().ledger_path, record)
        MlflowHook().client.set_model_version_tag(decision["model"], decision["challenger_version"],
                                                  "mlops.deployment", "rolled_back")
        print(f"ROLLED BACK {decision['model']} v{decision['challenger_version']}: failed {failed}")
        return record

    routed = route(decision.output)
    routed >> [no_deploy, kserve_deploy, sagemaker_deploy]
    no_deploy >> promote
    kserve_verified = kserve_verify(kserve_deploy.output, registration.output)
    kserve_steps = [kserve_deploy, kserve_verified, kserve_approve, kserve_promote_traffic, kserve_promote]
    chain(*kserve_steps)
    kserve_steps >> kserve_rollback
    sagemaker_verified = sagemaker_verify(sagemaker_deploy.output, registration.output)
    sagemaker_steps = [sagemaker_deploy, sagemaker_verified, sagemaker_approve, sagemaker_promote]
    chain(*sagemaker_steps)
    sagemaker_steps >> sagemaker_rollback
    record_rollback(decision.output) << [kserve_rollback, sagemaker_rollback, kserve_promote, sagemaker_promote]

    @task(trigger_rule="none_failed")
    def summarize(decision: dict, **context) -> dict:
        """One readable line per run: what was decided and why."""
        promoted = next((p for p in context["ti"].xcom_pull(task_ids=PROMOTE_TASKS) or [] if p), None)
        verdict = decision["verdict"] if promoted is None or promoted.get("changed") else "unchanged"
        print(f"{decision['model']} v{decision['challenger_version']}: {verdict.upper()} "
              f"(against champion {decision['champion_version']}) — {'; '.join(decision['reasons'])}")
        print(f"ledger: {mlops_home().ledger_path}")
        return {"verdict": verdict, "promotion": promoted}

    evaluation >> registration
    [promote, kserve_promote, sagemaker_promote] >> summarize(decision.output)


if __name__ == "__main__":
    dag.test()
