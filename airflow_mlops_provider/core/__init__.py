"""Pure logic with no Airflow import: policies, statistics, manifests, settings."""
