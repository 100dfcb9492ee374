"""mlops_retrain: validate → train → evaluate → champion/challenger gate → promote.

Runs weekly, or as soon as a new version of the training data or a drift alert arrives
(Airflow Assets). Every step is a provider operator; the only user code is
``train_fraud_model`` below.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, task

from airflow_mlops_provider import assets
from airflow_mlops_provider.core.demo_data import ID_COLUMN, TARGET, TRAINING_SUITE
from airflow_mlops_provider.core.policy import DEFAULT_POLICY
from airflow_mlops_provider.core.settings import mlops_home
from airflow_mlops_provider.operators.dvc import DvcGetDataVersionOperator
from airflow_mlops_provider.operators.registry import (
    MlflowCompareChallengerOperator,
    MlflowPromoteModelOperator,
    MlflowRegisterModelOperator,
)
from airflow_mlops_provider.operators.training import MlflowEvaluateModelOperator, MlflowTrainModelOperator
from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator

MODEL_NAME = "fraud-detector"
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
        "deploy_target": Param("none", enum=["none"], description="Where a promoted model is deployed"),
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
    )

    evaluation = MlflowEvaluateModelOperator(
        task_id="evaluate", run_id=training.output["run_id"], target=TARGET)

    registration = MlflowRegisterModelOperator(
        task_id="register_challenger", name="{{ params.model_name }}", run_id=training.output["run_id"],
        alias="challenger")

    decision = MlflowCompareChallengerOperator(
        task_id="decide", name="{{ params.model_name }}", challenger=registration.output,
        challenger_metrics=evaluation.output["metrics"], policy="{{ params.policy }}", target=TARGET)

    promotion = MlflowPromoteModelOperator(
        task_id="promote", name="{{ params.model_name }}", decision=decision.output,
        outlets=[CHAMPION_CHANGED])

    @task(trigger_rule="none_failed")
    def summarize(decision: dict, **context) -> dict:
        """One readable line per run: what was decided and why."""
        promoted = context["ti"].xcom_pull(task_ids="promote")
        verdict = decision["verdict"] if promoted is None or promoted.get("changed") else "unchanged"
        print(f"{decision['model']} v{decision['challenger_version']}: {verdict.upper()} "
              f"(against champion {decision['champion_version']}) — {'; '.join(decision['reasons'])}")
        print(f"ledger: {mlops_home().ledger_path}")
        return {"verdict": verdict, "promotion": promoted}

    evaluation >> registration
    promotion >> summarize(decision.output)


if __name__ == "__main__":
    dag.test()
