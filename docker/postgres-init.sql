-- Two databases on one PostgreSQL: Airflow's metadata DB (POSTGRES_DB) and MLflow's backend store.
CREATE DATABASE mlflow;
