"""MLflow's registry webhooks against the provider's receiver: a real ``mlflow server`` (sqlite
store) delivers signed alias events to the receiver app (served by uvicorn in this process, as the
api-server would mount it); the ledger gets the outside move at once, the pipeline's own move
adds nothing."""

from __future__ import annotations

import json
import threading
import time

import pytest

from airflow_mlops_provider.core import ledger
from airflow_mlops_provider.core.settings import mlops_home as home_settings
from tests.conftest import free_port, running_mlflow_server
from tests.fakes.mlflow_models import register_versions

pytestmark = pytest.mark.integration

MODEL = "hooked"
SECRET = "not-a-real-webhook-secret"
# What an MLflow server needs to call a receiver on a private network over http (its defaults: https
# only, public addresses only); the cache TTL makes a webhook created here active within a second.
SERVER_ENV = {"MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true", "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
              "MLFLOW_WEBHOOK_CACHE_TTL": "1"}


@pytest.fixture
def receiver(monkeypatch):
    import uvicorn

    from airflow_mlops_provider.ui.webhooks import create_app

    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_WEBHOOK_SECRET", SECRET)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mlflow"
    server.should_exit = True
    thread.join(timeout=10)


def external_changes() -> list[dict]:
    return [r for r in ledger.read(home_settings().ledger_path) if r.get("event") == "external_change"]


def wait_for_changes(count: int, timeout: float = 60) -> list[dict]:
    """The ledger's external changes once there are ``count`` (MLflow delivers in the background)."""
    deadline = time.monotonic() + timeout
    while len(found := external_changes()) < count:
        assert time.monotonic() < deadline, f"{len(found)} external changes after {timeout}s, expected {count}"
        time.sleep(0.2)
    return found


def test_an_alias_moved_with_mlflow_client_is_recorded_at_once_and_our_own_moves_are_not(
        mlops_home, tmp_path, monkeypatch, receiver):
    from mlflow import MlflowClient

    from airflow_mlops_provider.ui import webhooks

    root = tmp_path / "mlflow"
    root.mkdir()
    with running_mlflow_server(root, env=SERVER_ENV) as url:
        monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": url}))
        v1, v2 = (v["version"] for v in register_versions(MODEL, tmp_path, champion=None))
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        done = webhooks.register(client, receiver, SECRET)
        assert done["action"] == "created" and webhooks.register(client, receiver, SECRET)["action"] == "updated"
        handled = []
        original = webhooks.handle
        monkeypatch.setattr(webhooks, "handle", lambda *a: handled.append(original(*a)) or handled[-1])

        def wait_handled(count: int, timeout: float = 60) -> None:
            deadline = time.monotonic() + timeout
            while len(handled) < count:
                assert time.monotonic() < deadline, f"{len(handled)} deliveries handled after {timeout}s"
                time.sleep(0.1)

        # The pipeline's own promotion: ledger and alias under the promotion lock; the webhook's
        # reconcile waits for the lock and finds them in agreement.
        with ledger.file_lock(home_settings().root / "locks" / f"promote-{MODEL}.lock"):
            ledger.append(home_settings().ledger_path, {"event": "promoted", "model": MODEL,
                                                        "challenger_version": v1, "previous_champion": None})
            client.set_registered_model_alias(MODEL, "champion", v1)
        wait_handled(1)
        assert handled[0]["external_changes"] == [] and external_changes() == []
        # Someone moves @champion in MLflow directly.
        client.set_registered_model_alias(MODEL, "champion", v2)
        (change,) = wait_for_changes(1)
        assert (change["alias"], change["from_version"], change["to_version"]) == ("champion", v1, v2)
        assert change["via"] == "mlflow webhook" and change["delivery_id"]
        assert change["mlflow_reports"]["webhook"] == {"event": "model_version_alias.created", "alias": "champion",
                                                       "version": v2, "delivery_id": change["delivery_id"],
                                                       "describes_the_change": True}
        assert change["mlflow_reports"]["changed_at"]  # the event's time, from MLflow
        client.delete_registered_model_alias(MODEL, "champion")
        deleted = wait_for_changes(2)[-1]
        assert (deleted["from_version"], deleted["to_version"]) == (v2, None)
        assert deleted["mlflow_reports"]["webhook"]["event"] == "model_version_alias.deleted"
        time.sleep(2)  # any late or duplicated delivery has arrived by now: still two records
        assert len(external_changes()) == 2

    # A delivery not signed with the secret changes nothing.
    import urllib.error
    import urllib.request

    body = json.dumps({"entity": "model_version_alias", "action": "created",
                       "data": {"name": MODEL, "alias": "champion", "version": v1}}).encode()
    request = urllib.request.Request(receiver, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-MLflow-Delivery-Id": "forged", "X-MLflow-Timestamp": str(int(time.time())),
        "X-MLflow-Signature": webhooks.signature("guessed", "forged", str(int(time.time())), body)})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401 and len(external_changes()) == 2
