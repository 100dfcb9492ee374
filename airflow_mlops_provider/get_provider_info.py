"""Provider metadata read by Airflow's ProvidersManager; imports nothing heavy."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    from airflow_mlops_provider import __version__

    return {
        "package-name": "airflow-mlops-provider",
        "name": "MLOps",
        "description": "Validate (Great Expectations), version (DVC), train and promote (MLflow), "
        "deploy (SageMaker, KServe) and monitor (Evidently) models from Airflow 3.",
        "state": "ready",
        "source-date-epoch": 1764028800,
        "versions": [__version__],
        "integrations": [
            {"integration-name": "MLflow", "external-doc-url": "https://mlflow.org/docs/latest/",
             "tags": ["software"]},
            {"integration-name": "DVC", "external-doc-url": "https://dvc.org/doc", "tags": ["software"]},
            {"integration-name": "Prometheus", "external-doc-url": "https://github.com/prometheus/pushgateway",
             "tags": ["software"]},
        ],
        "hooks": [
            {"integration-name": "MLflow", "python-modules": ["airflow_mlops_provider.hooks.mlflow"]},
            {"integration-name": "DVC", "python-modules": ["airflow_mlops_provider.hooks.dvc"]},
            {"integration-name": "Prometheus", "python-modules": ["airflow_mlops_provider.hooks.prometheus"]},
        ],
        # Also registered through the `airflow.plugins` entry point (pyproject.toml), as the
        # openlineage provider does: Airflow registers one plugin per name.
        "plugins": [
            {"name": "mlops_models", "plugin-class": "airflow_mlops_provider.ui.plugin.MlopsModelsPlugin"},
        ],
        # `airflow mlops init` / `airflow mlops doctor` (the same as the `airflow-mlops` script).
        "cli": ["airflow_mlops_provider.cli.get_cli_commands"],
        "config": {
            "mlops": {
                "description": "Where the provider keeps local state and where its tasks may read and write.\n",
                "options": {
                    "home": {
                        "description": "MLOPS_HOME: the folder of the embedded MLflow store, the DVC data repo, "
                                       "partitions, reports and the audit ledger. Empty: .mlops/ in a source "
                                       "checkout of the provider, else $AIRFLOW_HOME/mlops. The MLOPS_HOME "
                                       "environment variable overrides it. Give every Airflow component the "
                                       "same value (a shared volume when they run on several hosts).\n",
                        "version_added": None,
                        "type": "string",
                        "example": "/data/mlops",
                        "default": "",
                    },
                    "allowed_roots": {
                        "description": "Comma-separated local folders and object-store URIs the provider's "
                                       "tasks may read and write besides MLOPS_HOME (MLOPS_ALLOWED_ROOTS "
                                       "overrides it).\n",
                        "version_added": None,
                        "type": "string",
                        "example": "/data/ml, s3://ml-bucket/scores",
                        "default": "",
                    },
                    "mlflow_webhook_secret": {
                        "description": "The secret MLflow signs its registry webhooks with (`airflow mlops "
                                       "webhook --url <api-server>/mlops-webhooks/mlflow` registers them): the "
                                       "api-server then records an alias moved outside the pipeline in the "
                                       "audit ledger at once. Empty: webhooks are refused, and the reconcile "
                                       "step of every run and the alias-audit DAG catch such moves.\n",
                        "version_added": None,
                        "type": "string",
                        "sensitive": True,
                        "example": None,
                        "default": "",
                    },
                },
            },
        },
        "extra-links": [
            "airflow_mlops_provider.links.validation.GreatExpectationsDataDocsLink",
            "airflow_mlops_provider.links.drift.EvidentlyDriftReportLink",
            "airflow_mlops_provider.links.sagemaker.SageMakerEndpointLink",
            "airflow_mlops_provider.links.kserve.KServeInferenceServiceLink",
        ],
        "connection-types": [
            {
                "connection-type": "pushgateway",
                "hook-class-name": "airflow_mlops_provider.hooks.prometheus.PushgatewayHook",
                "hook-name": "Prometheus Pushgateway",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "extra"],
                    "relabeling": {"host": "Pushgateway URL", "login": "Username (basic auth)"},
                    "placeholders": {"host": "http://pushgateway:9091"},
                },
            },
            {
                "connection-type": "mlflow",
                "hook-class-name": "airflow_mlops_provider.hooks.mlflow.MlflowHook",
                "hook-name": "MLflow",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Tracking URI",
                        "login": "Username (basic auth)",
                        "password": "Password or token",
                    },
                    "placeholders": {
                        "host": "http://mlflow.internal:5000 (empty: embedded sqlite store under MLOPS_HOME)",
                        "login": "leave empty to send the password as a bearer token",
                    },
                },
                "conn-fields": {
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "Model registry URI when it differs from the tracking URI.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "insecure_tls": {
                        "label": "Skip TLS verification",
                        "description": "Never in production.",
                        "schema": {"type": ["boolean", "null"]},
                    },
                    "server_cert_path": {
                        "label": "CA bundle path",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
            {
                "connection-type": "dvc",
                "hook-class-name": "airflow_mlops_provider.hooks.dvc.DvcHook",
                "hook-name": "DVC",
                "ui-field-behaviour": {
                    "hidden-fields": ["port"],
                    "relabeling": {
                        "host": "Repository (path or git URL)",
                        "schema": "Default rev",
                        "login": "Remote access key id",
                        "password": "Remote secret",
                    },
                    "placeholders": {
                        "host": "https://github.com/org/data-registry.git (empty: MLOPS_HOME/data-repo)",
                        "schema": "main",
                    },
                },
                "conn-fields": {
                    "remote": {
                        "label": "DVC remote name",
                        "description": "Remote to read from and push to; default: the repo's default remote.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "remote_config": {
                        "label": "Remote config",
                        "description": "Extra remote options as JSON, e.g. {\"endpointurl\": \"http://minio:9000\"}.",
                        "schema": {"type": ["object", "null"]},
                    },
                },
            },
        ],
    }
