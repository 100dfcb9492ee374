"""mlops_online_monitoring and mlops_online_performance: the fraud model's online traffic, watched like batch.

Built by :func:`airflow_mlops_provider.pipelines.online_monitoring_dag` and
:func:`airflow_mlops_provider.pipelines.performance_monitoring_dag` for ``fraud_model.FRAUD``.
Every day the requests and responses the serving side captured (``[mlops_example]
capture_format`` / ``capture_path``: KServe's inference logger or the local target's capture as
CloudEvents, or SageMaker Data Capture) become a scored partition with a ``request_id`` per row;
its features and scores are checked for drift against the answering version's training data, and
``drift detected`` schedules mlops_retrain. Late labels keyed by ``request_id``
(``MLOPS_HOME/data/online-labels/<ds>.parquet``) are joined to those predictions; ``performance
degraded`` schedules it too.
"""

from __future__ import annotations

from fraud_model import CAPTURE_FORMAT, CAPTURE_PATH, DEPLOY_TARGET, FRAUD, ONLINE_CRON

from airflow_mlops_provider.pipelines import (
    ONLINE_LABELS_PATH,
    online_monitoring_dag,
    online_scores_path,
    performance_monitoring_dag,
)

online = online_monitoring_dag(FRAUD, dag_id="mlops_online_monitoring", capture_format=CAPTURE_FORMAT,
                               capture_path=CAPTURE_PATH, deploy_target=DEPLOY_TARGET, schedule=ONLINE_CRON,
                               doc_md=__doc__)
performance = performance_monitoring_dag(FRAUD, dag_id="mlops_online_performance", schedule="0 7 * * *",
                                         scores_path=online_scores_path(FRAUD), key_columns=["request_id"],
                                         labels_path=ONLINE_LABELS_PATH, doc_md=__doc__)
