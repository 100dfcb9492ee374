"""The species model's nightly scoring on Spark: the same model config, ``scoring_backend="spark"``.

``spark_conn_id`` names an Airflow connection of type ``spark_connect`` (the Spark provider's);
without it each run starts a local Spark in its task (pyspark and Java 17 on the worker).
Drift and the committed partition are the same as with the ``local`` backend.
"""

from __future__ import annotations

from dataclasses import replace

from species_pipeline import SPECIES

from airflow_mlops_provider.pipelines import batch_scoring_dag

SPECIES_ON_SPARK = replace(SPECIES, scoring_backend="spark",
                           scoring_config={"spark_conn_id": "spark_connect_default"})

score = batch_scoring_dag(SPECIES_ON_SPARK, dag_id="species_spark_batch_inference")
