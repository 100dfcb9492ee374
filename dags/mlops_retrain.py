"""mlops_retrain: validate → train → evaluate → champion/challenger gate → (deploy) → promote.

The fraud model's retraining pipeline (``fraud_model.FRAUD``), built by
:func:`airflow_mlops_provider.pipelines.retraining_dag`. Runs weekly, or as soon as a new
version of the training data, a drift alert or a performance-degraded alert arrives (Airflow
Assets). ``[mlops_example] retrain_cron`` in airflow.cfg changes the weekly cron (empty: events
only, as in `make demo`'s Airflow); ``[mlops_example] deploy_target`` is the ``deploy_target``
Param's default (`make demo` sets ``local``).

With ``deploy_target`` set to any registered deploy target (docs/pipelines.md), a
challenger the policy accepts is first rolled out beside the champion, verified (smoke test plus
a bake of repeated requests with error-rate and latency limits), optionally approved by a human
(``require_approval``), then given all traffic while ``@champion`` moves. If any of that fails —
a step, the platform's own rollback, a rejection, or a promotion refused because ``@champion``
moved meanwhile — serving goes back to the model ``@champion`` names, the ledger records the
rollback, and the run ends failed.
"""

from __future__ import annotations

from fraud_model import FRAUD, RETRAIN_CRON

from airflow_mlops_provider.pipelines import retraining_dag

dag = retraining_dag(FRAUD, dag_id="mlops_retrain", cron=RETRAIN_CRON, doc_md=__doc__)

if __name__ == "__main__":
    dag.test()
