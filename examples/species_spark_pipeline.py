"""The species model's nightly scoring on Spark: ``scoring_backend="spark"`` on its model config.

``spark_conn_id`` names an Airflow connection of type ``spark_connect`` (the Spark provider's);
without it each run starts a local Spark in its task (pyspark and Java 17 on the worker).
Drift and the committed partition are the same as with the ``local`` backend; the model is
trained and promoted by ``species_retrain`` (species_pipeline.py).
"""

from __future__ import annotations

from airflow_mlops_provider.pipelines import ModelConfig, batch_scoring_dag


def train_species(X, y, **params):
    """Only the retraining DAG trains; a scoring DAG's config names the same callable."""
    from species_pipeline import train_species as train

    return train(X, y, **params)


SPECIES_ON_SPARK = ModelConfig(
    name="penguin-species",
    task_type="multiclass",
    target="species",
    id_columns=["bird_id"],
    train=train_species,
    data_path="species.parquet",
    scoring_backend="spark",
    scoring_config={"spark_conn_id": "spark_connect_default"},
)

score = batch_scoring_dag(SPECIES_ON_SPARK, dag_id="species_spark_batch_inference")
