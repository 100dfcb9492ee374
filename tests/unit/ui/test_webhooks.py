"""The MLflow webhook receiver's checks, with MLflow's own signer (mlflow.webhooks.delivery)."""

from __future__ import annotations

import json
import time

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature as mlflow_signs

from airflow_mlops_provider.ui.webhooks import WebhookRefused, check_delivery, create_app

SECRET = "not-a-real-secret"
BODY = json.dumps({"entity": "model_version_alias", "action": "created", "timestamp": "2026-12-07T10:00:00+00:00",
                   "data": {"name": "fraud", "alias": "champion", "version": "2"}})


def headers(secret: str = SECRET, *, at: float | None = None, body: str = BODY) -> dict[str, str]:
    stamp = str(int(at if at is not None else time.time()))
    return {"x-mlflow-delivery-id": "d-1", "x-mlflow-timestamp": stamp,
            "x-mlflow-signature": mlflow_signs(secret, "d-1", stamp, body)}


def test_a_delivery_signed_by_mlflow_with_the_secret_is_accepted():
    assert check_delivery(headers(), BODY.encode(), SECRET)["data"]["alias"] == "champion"


@pytest.mark.parametrize(("given", "secret", "status", "why"), [
    (lambda: headers("another-secret"), SECRET, 401, "does not match"),
    (lambda: {}, SECRET, 401, "unsigned delivery"),
    (lambda: headers(at=time.time() - 3600), SECRET, 400, "s old"),
    (headers, "", 404, "not configured"),
])
def test_bad_deliveries_are_refused_naming_why(given, secret, status, why):
    with pytest.raises(WebhookRefused, match=why) as refused:
        check_delivery(given(), BODY.encode(), secret)
    assert refused.value.status == status


def test_the_route_refuses_an_unsigned_call_and_ignores_other_events(monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_WEBHOOK_SECRET", SECRET)
    client = TestClient(create_app())
    refused = client.post("/mlflow", content=BODY, headers={"content-type": "application/json"})
    assert refused.status_code == 401 and "unsigned" in refused.json()["detail"]
    other = json.dumps({"entity": "model_version", "action": "created", "data": {"name": "fraud", "version": "3"}})
    answer = client.post("/mlflow", content=other, headers={"content-type": "application/json", **headers(body=other)})
    assert answer.status_code == 200 and answer.json() == {"event": "model_version.created", "ignored": True}
