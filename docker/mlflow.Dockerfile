# MLflow tracking server with what its PostgreSQL backend store and S3 (MinIO) artifacts need.
FROM ghcr.io/mlflow/mlflow:v3.17.0
RUN pip install --no-cache-dir "psycopg2-binary>=2.9,<3" "boto3>=1.34,<2"
