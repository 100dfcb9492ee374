"""Explanations at the promotion gate and reason codes in batch scoring (docs/governance.md).

tests/integration/test_explanations.py runs both operators against real MLflow models.
"""

from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator
from airflow_mlops_provider.operators.registry import MlflowCompareChallengerOperator


def gate(name: str, challenger: dict, target: str, policy: dict) -> MlflowCompareChallengerOperator:
    # Attributions of challenger and champion on the same 300 holdout rows (seeded): returned under
    # "explanations" and logged as explanations.json on the challenger's run. explain=None (the
    # default) turns them on when the `explain` extra is installed; True requires them; False: off.
    return MlflowCompareChallengerOperator(task_id="decide", name=name, challenger=challenger, target=target,
                                           policy=policy, explain_rows=300)


def score_with_reasons(name: str, version: str, input_path: str, output_path: str) -> MlflowBatchScoreOperator:
    # Three reasons per row, most important first: reason_1_feature, reason_1_contribution, ...,
    # reason_3_contribution (signed, in the model's raw output), computed chunk by chunk.
    return MlflowBatchScoreOperator(task_id="score", model_name=name, model_version=version,
                                    input_path=input_path, output_path=output_path,
                                    key_columns=["transaction_id"], chunk_rows=1500, explain_top_k=3)
