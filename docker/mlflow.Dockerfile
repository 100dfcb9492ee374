# The MLflow tracking server of docker-compose.yaml: MLflow's own image at the version uv.lock pins
# for the client (3.17.2), plus the PostgreSQL driver for the backend store and boto3 for the
# S3 (MinIO) artifact store, at their locked versions.
FROM ghcr.io/mlflow/mlflow:v3.17.2
RUN pip install --no-cache-dir "psycopg2-binary==2.9.13" "boto3==1.43.117"
