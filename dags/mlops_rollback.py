"""mlops_rollback: roll the fraud model's ``@champion`` and serving back to the last good version.

Triggered by hand or by the "Roll back" button of the Models view (which triggers it through
Airflow's REST API as the user who clicked, so only users allowed to trigger this DAG see the
button). The rollback goes through the same compare-and-set, promotion pool and audit ledger
as any promotion (ledger event ``champion_rolled_back``, naming the triggering user), then the
chosen deploy target serves the restored champion. Built by
:func:`airflow_mlops_provider.pipelines.rollback_dag`.
"""

from __future__ import annotations

from fraud_model import FRAUD

from airflow_mlops_provider.pipelines import rollback_dag

dag = rollback_dag(FRAUD, dag_id="mlops_rollback", doc_md=__doc__)

if __name__ == "__main__":
    dag.test()
