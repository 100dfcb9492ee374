"""The MLflow auth plugin adds the connection's credentials only to the connection's own hosts."""

from __future__ import annotations

import requests

from airflow_mlops_provider.hooks import mlflow_auth
from airflow_mlops_provider.hooks.mlflow import _without_userinfo


def prepared(url: str, auth) -> requests.PreparedRequest:
    return requests.Request("GET", url, auth=auth).prepare()


def test_header_only_for_the_connection_hosts():
    auth = mlflow_auth.ConnectionCredentialsAuthProvider().get_auth()
    try:
        mlflow_auth.set_authorization("Basic c2VjcmV0", ("https://mlflow.internal:5000", "https://Registry.internal"))
        assert prepared("https://mlflow.internal:5000/api/2.0/mlflow/runs/get", auth).headers["Authorization"] \
            == "Basic c2VjcmV0"
        assert prepared("https://registry.internal/api/x", auth).headers["Authorization"] == "Basic c2VjcmV0"
        # An artifact location on another server, another port or scheme never gets the credentials.
        for other in ("https://evil.example/x", "https://mlflow.internal:5001/x", "http://mlflow.internal:5000/x"):
            assert "Authorization" not in prepared(other, auth).headers, other
        mlflow_auth.set_authorization(None)
        assert "Authorization" not in prepared("https://mlflow.internal:5000/x", auth).headers
    finally:
        mlflow_auth.set_authorization(None)


def test_the_plugin_is_registered_under_its_name():
    from mlflow.tracking.request_auth.registry import fetch_auth

    assert isinstance(fetch_auth(mlflow_auth.PROVIDER_NAME), mlflow_auth._ConnectionAuth)


def test_database_uris_lose_their_password_in_messages():
    assert _without_userinfo("postgresql://ml:pw@db:5432/mlflow") == "postgresql://***@db:5432/mlflow"
    assert _without_userinfo("https://mlflow.internal") == "https://mlflow.internal"
