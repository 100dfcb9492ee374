"""MLflow's scoring server with online capture: the local target's server when ``capture`` is on.

``uvicorn airflow_mlops_provider.core.capture_server:app`` serves the model in
``MLOPS_CAPTURE_MODEL_URI`` with MLflow's own scoring app (``mlflow.pyfunc.scoring_server``: the
same ``/invocations``, ``/ping``, ``/health`` and ``/version`` as ``mlflow models serve``) and
appends every answered ``POST /invocations`` to
``<MLOPS_CAPTURE_DIR>/date=<UTC day>/<model>-v<version>-<pid>.jsonl`` as two CloudEvents (request
and response, one ``id``, the extension ``modelversion``) — the format
:mod:`airflow_mlops_provider.core.capture` reads and ``online_monitoring_dag(capture_format=
"cloudevents")`` turns into partitions. The id is the caller's ``X-Request-Id`` header (what late
labels are keyed by), else a new one; the response carries it in ``X-Request-Id``.

Not captured: failed calls (any status but 200), and the provider's own release checks (smoke
test, bake, load test, quality canary), which send ``X-MLOps-Check``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_mlops_provider.core.capture import KSERVE_REQUEST, KSERVE_RESPONSE

MODEL_URI_ENV = "MLOPS_CAPTURE_MODEL_URI"
DIR_ENV = "MLOPS_CAPTURE_DIR"
MODEL_ENV = "MLOPS_CAPTURE_MODEL"
VERSION_ENV = "MLOPS_CAPTURE_VERSION"
CHECK_HEADER = "x-mlops-check"
REQUEST_ID_HEADER = "x-request-id"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class CaptureWriter:
    """Appends request/response CloudEvents, one day per folder, one file per server process."""

    def __init__(self, folder: str | Path, model: str, version: str, source: str) -> None:
        self.folder = Path(folder)
        self.model = model
        self.version = str(version)
        self.source = source

    def _data(self, content_type: str, body: bytes) -> dict[str, Any]:
        kind = (content_type or "application/json").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                return {"datacontenttype": kind, "data": json.loads(body)}
            except ValueError:
                pass
        if kind.startswith("text/"):
            return {"datacontenttype": kind, "data": body.decode("utf-8", errors="replace")}
        return {"datacontenttype": kind, "data_base64": base64.b64encode(body).decode()}

    def write(self, request_id: str, content_type: str, request: bytes, response_type: str, response: bytes,
              at: datetime | None = None) -> Path:
        at = at or datetime.now(timezone.utc)
        common = {"specversion": "1.0", "id": request_id, "source": self.source, "time": at.isoformat(),
                  "modelname": self.model, "modelversion": self.version}
        lines = (json.dumps({**common, "type": KSERVE_REQUEST, **self._data(content_type, request)}) + "\n"
                 + json.dumps({**common, "type": KSERVE_RESPONSE, **self._data(response_type, response)}) + "\n")
        path = self.folder / f"date={at.date().isoformat()}" / f"{self.model}-v{self.version}-{os.getpid()}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:  # both events in one write, under a lock
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(lines)
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return path


class CaptureMiddleware:
    """Pure ASGI: tees the body of ``POST /invocations`` and of its answer to a :class:`CaptureWriter`."""

    def __init__(self, app: Callable[..., Awaitable[None]], writer: CaptureWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or scope.get("path") != "/invocations":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        request_id = headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        body = bytearray()
        answer = bytearray()
        status: dict[str, Any] = {}

        async def tee_receive() -> Message:
            message = await receive()
            if message.get("type") == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def tee_send(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status["code"] = message.get("status")
                status["type"] = next((v.decode("latin-1") for k, v in message.get("headers") or []
                                       if k.lower() == b"content-type"), "application/json")
                message = {**message, "headers": [*(message.get("headers") or []),
                                                  (b"x-request-id", request_id.encode("latin-1"))]}
            elif message.get("type") == "http.response.body":
                answer.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, tee_receive, tee_send)
        if status.get("code") == 200 and CHECK_HEADER not in headers:
            self.writer.write(request_id, headers.get("content-type", "application/json"), bytes(body),
                              status.get("type", "application/json"), bytes(answer))


def build_app() -> Any:
    """MLflow's scoring app for the model in the environment, wrapped by :class:`CaptureMiddleware`."""
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(os.environ[MODEL_URI_ENV])
    writer = CaptureWriter(os.environ[DIR_ENV], os.environ[MODEL_ENV], os.environ[VERSION_ENV],
                           source=f"mlops-local/{os.environ[MODEL_ENV]}")
    return CaptureMiddleware(scoring_server.init(model), writer)


app = build_app() if MODEL_URI_ENV in os.environ and DIR_ENV in os.environ else None
