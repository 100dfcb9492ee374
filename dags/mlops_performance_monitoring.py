"""mlops_performance_monitoring: late labels against the versions that scored them; decay retrains.

The fraud model's daily performance check (``fraud_model.FRAUD``), built by
:func:`airflow_mlops_provider.pipelines.performance_monitoring_dag`. Waits (deferred) for the
day's labels partition (``MLOPS_HOME/data/labels/<ds>.parquet``: ``transaction_id`` and
``is_fraud``), joins it by key to the scored partitions of the last two weeks, evaluates each
model version on the rows it scored, and emits the ``performance degraded`` Asset when
``@champion``'s roc_auc on the labelled rows fell more than the decay policy allows below its
holdout roc_auc, which schedules mlops_retrain.
"""

from __future__ import annotations

from fraud_model import FRAUD

from airflow_mlops_provider.pipelines import performance_monitoring_dag

dag = performance_monitoring_dag(FRAUD, dag_id="mlops_performance_monitoring", doc_md=__doc__)

if __name__ == "__main__":
    dag.test()
