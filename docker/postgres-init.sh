#!/bin/sh
# Runs once, when the PostgreSQL data volume is empty (/docker-entrypoint-initdb.d): MLflow's
# backend store gets its own database and role beside Airflow's metadata DB (POSTGRES_DB).
set -eu
psql -v ON_ERROR_STOP=1 -v mlflow_password="$MLFLOW_DB_PASSWORD" \
     --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
SQL
