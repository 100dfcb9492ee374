"""mlops_batch_inference: score the day's partition with @champion, then check drift.

The fraud model's nightly batch pipeline (``fraud_model.FRAUD``), built by
:func:`airflow_mlops_provider.pipelines.batch_scoring_dag`. Waits (deferred) for the day's
input partition, checks it against the champion's input contract (Great Expectations), scores
it in shards with the version that ``@champion`` named at the start of the run, commits one
output partition atomically, compares the partition's features and the model's scores with the
baselines stored with that version (Evidently's tests), and emits the ``drift detected`` Asset
when the drift policy fires, which schedules mlops_retrain. Runs nightly at 02:00 UTC;
``[mlops_example] batch_cron`` in airflow.cfg changes the cron (empty: triggered runs only).
"""

from __future__ import annotations

from fraud_model import BATCH_CRON, FRAUD

from airflow_mlops_provider.pipelines import batch_scoring_dag

dag = batch_scoring_dag(FRAUD, dag_id="mlops_batch_inference", schedule=BATCH_CRON, doc_md=__doc__)

if __name__ == "__main__":
    dag.test()
