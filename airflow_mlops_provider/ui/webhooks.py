"""MLflow registry webhooks: an alias moved outside the pipeline is in the ledger at once.

MLflow's tracking server (3.3+, SQL store) calls a webhook on ``model_version_alias.created`` and
``model_version_alias.deleted``. The plugin receives them at ``POST /mlops-webhooks/mlflow`` on the
api-server, checks MLflow's HMAC signature (``X-MLflow-Signature: v1,<base64 HMAC-SHA256 of
"<delivery id>.<timestamp>.<body>">``, keyed with ``[mlops] mlflow_webhook_secret``) and that the
delivery is at most five minutes old, then reconciles the model's aliases against the ledger right
away (:func:`~airflow_mlops_provider.operators.history.reconcile_aliases`, under the promotion
lock): a move the pipeline made itself matches the ledger and adds nothing; any other is an
``external_change`` record, seen ``via: mlflow webhook`` with the event's time as
``mlflow_reports.changed_at`` (MLflow reports no author). Without webhooks the same records come
from the reconcile step of every run and from the alias-audit DAG's schedule.

The route needs no Airflow login (MLflow cannot log in): the signature is the authentication. With
no secret configured the route answers 404 and changes nothing. ``airflow-mlops webhook --url
<api-server>/mlops-webhooks/mlflow`` registers the webhook in MLflow with that secret.

No ``from __future__ import annotations`` here: FastAPI reads the route's annotations, whose
types are imported inside :func:`create_app` (the plugin module stays cheap to import).
"""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from airflow_mlops_provider.ui import LazyApp

SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_HEADER = "x-mlflow-delivery-id"
MAX_AGE_SECONDS = 300
WEBHOOK_NAME = "airflow-mlops-aliases"
ALIAS_EVENTS = ("model_version_alias.created", "model_version_alias.deleted")
URL_PREFIX = "/mlops-webhooks"


class WebhookRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def configured_secret() -> str:
    """``[mlops] mlflow_webhook_secret`` (``AIRFLOW__MLOPS__MLFLOW_WEBHOOK_SECRET``, or its ``_cmd`` /
    ``_secret`` form); empty: webhooks are off."""
    from airflow.configuration import conf

    return conf.get("mlops", "mlflow_webhook_secret", fallback="") or ""


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """MLflow's signature of one delivery (``v1,<base64>``)."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def check_delivery(headers: dict[str, str], body: bytes, secret: str, now: float | None = None) -> dict[str, Any]:
    """The delivery's JSON when it is signed with ``secret`` and fresh; :class:`WebhookRefused` otherwise."""
    if not secret:
        raise WebhookRefused(404, "MLflow webhooks are not configured here ([mlops] mlflow_webhook_secret)")
    delivery_id = headers.get(DELIVERY_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not delivery_id or not timestamp or not given:
        raise WebhookRefused(401, "unsigned delivery: X-MLflow-Signature, X-MLflow-Timestamp and "
                                  "X-MLflow-Delivery-Id are required (set the webhook's secret in MLflow)")
    if not hmac.compare_digest(given.encode(), signature(secret, delivery_id, timestamp, body).encode()):
        raise WebhookRefused(401, "the signature does not match [mlops] mlflow_webhook_secret")
    try:
        age = (now if now is not None else time.time()) - int(timestamp)
    except ValueError:
        raise WebhookRefused(400, f"X-MLflow-Timestamp {timestamp!r} is not a Unix time") from None
    if abs(age) > MAX_AGE_SECONDS:
        raise WebhookRefused(400, f"the delivery is {int(age)} s old (at most {MAX_AGE_SECONDS} s: a replay?)")
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookRefused(400, "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookRefused(400, "the body is not a JSON object")
    return payload


def handle(payload: dict[str, Any], delivery_id: str) -> dict[str, Any]:
    """Reconcile the model an alias event names; other events are acknowledged and ignored."""
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.operators.history import reconcile_aliases

    event = f"{payload.get('entity')}.{payload.get('action')}"
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    if event not in ALIAS_EVENTS or not data.get("name"):
        return {"event": event, "ignored": True}
    model = str(data["name"])
    alias, version = data.get("alias"), data.get("version")

    def reports(now: dict[str, str]) -> dict[str, Any]:
        # The event dates the change only when it describes where the alias is now (deliveries may
        # arrive late or out of order: then the move is recorded, undated, by the event that found it).
        current = now.get(str(alias))
        describes = current is None if event.endswith(".deleted") else current == str(version)
        return {"changed_at": payload.get("timestamp") if describes else None,
                "webhook": {"event": event, "alias": alias, "version": version, "delivery_id": delivery_id,
                            "describes_the_change": describes}}

    found = reconcile_aliases(MlflowHook(), model, seen_by={"via": "mlflow webhook", "delivery_id": delivery_id},
                              mlflow_reports=reports)
    if found is None:
        return {"event": event, "model": model, "registered": False, "external_changes": []}
    now, appended = found
    return {"event": event, "model": model, "aliases": now,
            "external_changes": [{k: r.get(k) for k in ("alias", "from_version", "to_version")} for r in appended]}


def create_app() -> Any:
    """The FastAPI app the plugin mounts at :data:`URL_PREFIX` (no Airflow login: MLflow signs)."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse

    app = FastAPI(title="airflow-mlops-provider MLflow webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/mlflow")
    async def mlflow_webhook(request: Request) -> JSONResponse:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            payload = check_delivery(headers, body, configured_secret())
        except WebhookRefused as refused:
            return JSONResponse({"detail": refused.detail}, status_code=refused.status)
        # The ledger lock and MLflow calls block: off the event loop.
        return JSONResponse(await run_in_threadpool(handle, payload, headers.get(DELIVERY_HEADER, "")))

    return app


#: Built on the first delivery: importing the plugin stays cheap in every Airflow process.
webhooks_app = LazyApp(create_app)


def register(client: Any, url: str, secret: str) -> dict[str, Any]:
    """Create (or update), through ``client`` (an ``MlflowClient``, e.g. a connection's
    ``MlflowHook().client`` with its credentials), the MLflow webhook :data:`WEBHOOK_NAME` for the
    alias events to ``url``."""
    if not secret:
        raise ValueError("set [mlops] mlflow_webhook_secret (AIRFLOW__MLOPS__MLFLOW_WEBHOOK_SECRET) first: the "
                         "api-server refuses unsigned deliveries")
    existing = [w for w in client.list_webhooks() if w.name == WEBHOOK_NAME]
    if existing:
        hook = client.update_webhook(existing[0].webhook_id, url=url, events=list(ALIAS_EVENTS), secret=secret,
                                     status="ACTIVE")
        action = "updated"
    else:
        hook = client.create_webhook(WEBHOOK_NAME, url, list(ALIAS_EVENTS), secret=secret,
                                     description="Alias moves to the airflow-mlops-provider audit ledger")
        action = "created"
    return {"action": action, "webhook_id": hook.webhook_id, "url": url, "events": list(ALIAS_EVENTS)}
