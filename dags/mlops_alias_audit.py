"""mlops_alias_audit: hourly, record moves of the fraud model's aliases made outside the pipeline.

An alias moved in MLflow's UI or with ``MlflowClient`` bypasses the ledger and the
compare-and-set; this DAG (and the first task of every retraining, batch and rollback run)
compares MLflow's aliases with the ledger and appends an ``external_change`` record for each
difference. Built by :func:`airflow_mlops_provider.pipelines.alias_audit_dag`.
"""

from __future__ import annotations

from fraud_model import FRAUD

from airflow_mlops_provider.pipelines import alias_audit_dag

dag = alias_audit_dag(FRAUD, dag_id="mlops_alias_audit", doc_md=__doc__)

if __name__ == "__main__":
    dag.test()
