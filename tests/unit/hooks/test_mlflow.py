"""MlflowHook: connection parsing, embedded default, credentials that never touch os.environ."""

from __future__ import annotations

import json
import os

import pytest

from airflow_mlops_provider.exceptions import ConnectionConfigError
from airflow_mlops_provider.hooks.mlflow import MlflowHook


def set_conn(monkeypatch, conn_id="mlflow_default", **fields):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "mlflow", **fields}))


def test_no_connection_uses_embedded_store_under_mlops_home(mlops_home, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    hook = MlflowHook()
    assert hook.tracking_uri == f"sqlite:///{mlops_home / 'mlflow' / 'mlflow.db'}"
    exp = hook.get_or_create_experiment("unit")
    run = hook.client.create_run(exp)
    hook.client.log_metric(run.info.run_id, "auc", 0.75)
    assert hook.client.get_run(run.info.run_id).data.metrics == {"auc": 0.75}
    # Artifacts land under MLOPS_HOME, not in the working directory's ./mlruns.
    assert run.info.artifact_uri.startswith((mlops_home / "mlflow" / "artifacts").as_uri())
    assert hook.test_connection()[0] is True


def test_missing_named_connection_is_an_error(monkeypatch):
    from airflow.sdk.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException, match="mlflow_prod"):
        MlflowHook("mlflow_prod").settings  # noqa: B018


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("http://mlflow.internal:5000/", "http://mlflow.internal:5000"),
        ("mlflow.internal", "http://mlflow.internal:5001"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("postgresql+psycopg2://u:p@db/mlflow", "postgresql+psycopg2://u:p@db/mlflow"),
    ],
)
def test_tracking_uri_forms(monkeypatch, host, expected):
    set_conn(monkeypatch, host=host, port=5001)
    assert MlflowHook().tracking_uri == expected


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"host": "ftp://x"}, "'ftp://x'"),
        ({"host": "http://"}, "'http://'"),
        ({"host": "http://x:notaport"}, "'http://x:notaport'"),
        ({"host": ""}, "no tracking URI"),
        ({"host": "http://ok:5000", "extra": json.dumps({"registry_uri": "bogus://r"})}, "extra.registry_uri"),
    ],
)
def test_malformed_connection_names_the_value(monkeypatch, fields, named):
    set_conn(monkeypatch, **fields)
    with pytest.raises(ConnectionConfigError) as err:
        MlflowHook().client  # noqa: B018
    assert named in str(err.value)
    assert "mlflow_default" in str(err.value)


def test_token_and_basic_auth_reach_the_rest_stores_not_the_environment(monkeypatch):
    set_conn(monkeypatch, host="http://127.0.0.1:9", password="s3cr3t-token")
    monkeypatch.delenv("MLFLOW_TRACKING_AUTH", raising=False)
    before = dict(os.environ)
    hook = MlflowHook()
    creds = hook.client._tracking_client.store.get_host_creds()
    assert creds.token == "s3cr3t-token" and creds.username is None
    reg = hook.client._get_registry_client().store.get_host_creds()
    assert reg.token == "s3cr3t-token"
    # Only the name of the provider's auth plugin is added (it selects the plugin for MLflow's own
    # calls); the secret itself stays in memory.
    assert dict(os.environ) == {**before, "MLFLOW_TRACKING_AUTH": "airflow_mlops_connection"}
    assert not any("s3cr3t" in v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN"))

    set_conn(monkeypatch, host="http://127.0.0.1:9", login="alice", password="pw-basic")
    creds = MlflowHook().client._tracking_client.store.get_host_creds()
    assert (creds.username, creds.password, creds.token) == ("alice", "pw-basic", None)


def test_two_hooks_keep_their_own_credentials(monkeypatch):
    set_conn(monkeypatch, "mlflow_a", host="http://127.0.0.1:9", password="token-a")
    set_conn(monkeypatch, "mlflow_b", host="http://127.0.0.1:9", password="token-b")
    a, b = MlflowHook("mlflow_a"), MlflowHook("mlflow_b")
    assert a.client._tracking_client.store.get_host_creds().token == "token-a"
    assert b.client._tracking_client.store.get_host_creds().token == "token-b"


def test_client_is_built_once(mlops_home):
    hook = MlflowHook()
    assert hook.get_conn() is hook.client


def test_sagemaker_header_provider_noise_is_dropped_and_other_errors_kept(mlops_home, monkeypatch, caplog):
    """sagemaker-mlflow's header provider fails on every request to a non-SageMaker server; MLflow
    logs each failure. Those lines go; a different header-provider failure still shows."""
    import logging

    pytest.importorskip("sagemaker_mlflow")
    from mlflow.tracking.request_header.registry import resolve_request_headers

    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    MlflowHook().activate()
    with caplog.at_level(logging.WARNING, logger="mlflow.tracking.request_header.registry"):
        for _ in range(3):
            resolve_request_headers()
    assert "list index out of range" not in caplog.text
    logging.getLogger("mlflow.tracking.request_header.registry").warning(
        "Encountered unexpected error during resolving request headers: another provider broke")
    assert "another provider broke" in caplog.text
