"""MLflow faults: login required, server down, 5xx mid-run, deleted or broken model versions.

Real ``mlflow server`` with basic auth (see conftest); the 5xx case puts a small forwarding
proxy in front of it that fails artifact downloads, the one stand-in here.
"""

from __future__ import annotations

import http.server
import os
import shutil
import threading
import urllib.request
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops_provider.core.demo_data import TARGET, generate
from airflow_mlops_provider.exceptions import MlflowConnectionError, ModelLoadError, ModelNotFoundError
from tests.reliability.conftest import CONN_ID, MODEL, conn_json, context, incoming, train_and_register, tree

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability")]


def score(home, champion, **kwargs):
    from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator

    src = incoming(home, "day.parquet", generate(300, seed=5).drop(columns=[TARGET]))
    args = {"task_id": "score", "model_name": MODEL, "input_path": str(src),
            "output_path": str(home.outputs_dir / "scores" / "day.parquet"), "key_columns": ["transaction_id"],
            **kwargs}
    return MlflowBatchScoreOperator(**args).execute(context("score"))


def test_login_required_scoring_drift_and_contract_use_the_connection_credentials(env, champion, secure_mlflow):
    """Model loading, the baseline download and the fluent model-info call all authenticate."""
    import mlflow

    from airflow_mlops_provider.core.contract import signature_inputs
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.operators.drift import EvidentlyCheckDriftOperator

    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ and "MLFLOW_TRACKING_TOKEN" not in os.environ
    result = score(env, champion)
    assert result["rows"] == 300 and result["model_version"] == champion["version"]
    drift = EvidentlyCheckDriftOperator(
        task_id="drift", model_name=MODEL, model_version=champion["version"],
        data_path=str(env.data_dir / "incoming" / "day.parquet"), predictions_path=result["output_path"],
    ).execute(context("drift"))
    assert drift["n_columns"] == 9 and drift["mlflow_run_id"]
    MlflowHook().activate()  # what the batch pipeline's build_contract does before the fluent call
    schema = mlflow.models.get_model_info(f"models:/{MODEL}/{champion['version']}").signature.inputs
    assert len(signature_inputs(schema)) == 9
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ  # nothing was put in the environment


def test_without_credentials_the_error_says_credentials_were_refused(env, champion, secure_mlflow, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", conn_json(secure_mlflow.url, login=None))
    with pytest.raises(MlflowConnectionError, match=r"answered HTTP 401 \(credentials refused\) while reading "
                                                    r"alias 'champion' of model 'corpus-fraud'"):
        score(env, champion)


def test_server_down_is_reported_as_unreachable_not_as_a_missing_alias(env, champion, monkeypatch):
    from tests.conftest import free_port

    # The deployment's knob for MLflow's own bounded retries; 0 keeps the test short.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", conn_json(f"http://127.0.0.1:{free_port()}"))  # nobody listens
    out = env.outputs_dir / "scores" / "day.parquet"
    before = out.read_bytes() if out.exists() else None
    with pytest.raises(MlflowConnectionError) as err:
        score(env, champion)
    message = str(err.value)
    assert "refused the connection (is the server running?)" in message and "no alias" not in message
    assert (out.read_bytes() if out.exists() else None) == before


class _FailingArtifactsProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to the real server; answers 503 to artifact downloads (the store failing mid-run)."""

    upstream = ""

    def _forward(self):
        if "/mlflow-artifacts/" in self.path:
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"upstream artifact store unavailable")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        request = urllib.request.Request(self.upstream + self.path, data=body, method=self.command,
                                         headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                status, headers, payload = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            status, headers, payload = err.code, err.headers, err.read()
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

    def log_message(self, *args):
        pass


def test_mlflow_5xx_mid_run_fails_naming_the_status_and_keeps_the_previous_output(env, champion, secure_mlflow,
                                                                                monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    handler = type("Proxy", (_FailingArtifactsProxy,), {"upstream": secure_mlflow.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", conn_json(f"http://127.0.0.1:{server.server_port}"))
        out = env.outputs_dir / "scores" / "day.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"previous complete partition")
        with pytest.raises(MlflowConnectionError, match=r"answered HTTP 503 while loading models:/corpus-fraud/"):
            score(env, champion)
        assert out.read_bytes() == b"previous complete partition"
    finally:
        server.shutdown()


def test_deleted_model_version_is_named(env, champion):
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    client = MlflowHook().client
    extra = client.create_model_version(MODEL, f"models:/{MODEL}/{champion['version']}")
    client.delete_model_version(MODEL, extra.version)
    with pytest.raises(ModelNotFoundError, match=f"registered model 'corpus-fraud' has no version {extra.version}"):
        score(env, champion, model_version=extra.version)


def test_unknown_alias_is_named(env, champion):
    with pytest.raises(ModelNotFoundError, match="registered model 'corpus-fraud' has no alias 'nightly'"):
        score(env, champion, alias="nightly")


def test_missing_model_artifacts_are_named(env, champion, secure_mlflow):
    """A version whose files were removed from the artifact store."""
    data = env.data_dir / "train-broken.parquet"
    generate(1500, seed=7).to_parquet(data, index=False)
    broken = train_and_register("corpus-broken", data, alias="champion")
    stored = [p for p in (secure_mlflow.root / "artifacts").rglob("MLmodel") if broken["run_id"] in str(p)
              or broken["model_uri"].split("/")[-1] in str(p)]
    assert stored, "the model's files should be in the server's artifact store"
    for mlmodel in stored:
        shutil.rmtree(mlmodel.parent)
    with pytest.raises(ModelNotFoundError, match=r"cannot load models:/corpus-broken/1"):
        score(env, champion, model_name="corpus-broken")


def test_a_flavor_that_cannot_load_here_is_named(env, champion, tmp_path):
    """A registered model whose MLmodel names a loader module this worker does not have."""
    import mlflow

    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: corpus_missing_flavor\n    python_version: 3.11.7\n"
        "    env:\n      virtualenv: python_env.yaml\n")
    hook = MlflowHook()
    hook.activate()
    with mlflow.start_run(experiment_id=hook.get_or_create_experiment("corpus-alien")) as run:
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
    hook.client.create_registered_model("corpus-alien")
    mv = hook.client.create_model_version("corpus-alien", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    hook.client.set_registered_model_alias("corpus-alien", "champion", mv.version)
    # Tagged as training tags its versions: the failure under test is the flavor, not a missing type.
    hook.client.set_model_version_tag("corpus-alien", mv.version, "mlops.task_type", "binary")
    with pytest.raises(ModelLoadError, match=r"cannot load models:/corpus-alien/1: .*corpus_missing_flavor"):
        score(env, champion, model_name="corpus-alien")


def test_skops_untrusted_types_are_refused_at_training_and_nothing_is_registered(env, champion):
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    data = env.data_dir / "train-untrusted.parquet"
    generate(800, seed=3).to_parquet(data, index=False)
    with pytest.raises(ValueError, match=r"types skops does not trust: \['tests.reliability.models.Shifted'\]"):
        from tests.reliability.models import train_untrusted

        train_and_register("corpus-untrusted", data, train=train_untrusted)
    assert not MlflowHook().client.search_model_versions("name = 'corpus-untrusted'")


def test_rerun_of_registration_reuses_the_version(env, champion):
    """A retried register task (same run) never makes a second version."""
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.operators.registry import MlflowRegisterModelOperator

    before = len(MlflowHook().client.search_model_versions(f"name = '{MODEL}'"))
    again = MlflowRegisterModelOperator(task_id="register", name=MODEL, run_id=champion["run_id"],
                                        alias="champion").execute(context("register"))
    assert str(again["version"]) == champion["version"]
    assert len(MlflowHook().client.search_model_versions(f"name = '{MODEL}'")) == before


def test_scoring_rerun_of_the_same_day_replaces_the_output_without_duplicates(env, champion):
    first = score(env, champion)
    content = pq.read_table(first["output_path"]).to_pandas()
    before = tree(Path(first["output_path"]).parent)
    second = score(env, champion)
    again = pq.read_table(second["output_path"]).to_pandas()
    assert len(again) == 300 and again["transaction_id"].is_unique
    pd.testing.assert_frame_equal(content, again)
    assert tree(Path(second["output_path"]).parent).keys() == before.keys()  # no temp or extra file
