"""SageMaker for tests: moto in server mode on 127.0.0.1, plus a TEST DOUBLE for what moto lacks.

No AWS account can be reached from the test machines, so SageMaker is moto's implementation
(create_model, create_endpoint_config, create_endpoint, describe_*, list_tags) served over HTTP
by ``ThreadedMotoServer``: the provider's code talks to it through the amazon provider's hooks
and a real ``aws`` Airflow connection whose ``endpoint_url`` points at the server.

moto 5.2 does not implement ``UpdateEndpoint``, and its ``InvokeEndpoint`` answers a fixed
``"body"``. Because ``ThreadedMotoServer`` runs in the test process, :class:`SageMakerFake`
patches moto's response classes in-process (pytest ``monkeypatch``, undone after the test):

- ``UpdateEndpoint`` is a **test double**. It checks the endpoint and the config exist and
  that no update is in flight, records the request (``fake.updates``), and moves the endpoint
  to ``Updating``. After ``updating_polls`` further ``DescribeEndpoint`` calls (during which
  ``PendingDeploymentSummary`` names the new config, as SageMaker does) the update ends as
  ``update_mode`` says:

  * ``"apply"``    — InService on the new config,
  * ``"rollback"`` — InService on the OLD config: SageMaker's automatic rollback (an alarm fired),
  * ``"fail"``     — status ``Failed`` with a ``FailureReason``.

- ``InvokeEndpoint`` is a **test double** of an MLflow scoring container: it reads the
  ``dataframe_split`` JSON and answers ``{"predictions": [...]}`` with one value per row
  (``invoke_mode="short"`` drops one, ``invoke_delay`` sleeps first to test latency limits,
  ``model`` — a function of the rows — replaces the stand-in answer).

- ``throttle[action] = n`` makes the next ``n`` calls of that SageMaker action answer
  ``ThrottlingException`` (``calls[action]`` counts every call).

This is not a model of SageMaker's blue/green internals (canary fleets, alarms, bake times):
only the observable API contract the provider relies on.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3

REGION = "us-east-1"
TRANSITIONAL = {"Creating", "Updating", "SystemUpdating", "RollingBack"}


@dataclass
class _Pending:
    old_config: str
    new_config: str
    polls_left: int
    started: Any


@dataclass
class SageMakerFake:
    url: str = ""
    update_mode: str = "apply"
    updating_polls: int = 1
    invoke_mode: str = "ok"
    invoke_delay: float = 0.0
    model: Any = None  # None: one class per row from the row's sum; else ``model(rows) -> predictions``
    throttle: dict[str, int] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)
    updates: list[dict[str, Any]] = field(default_factory=list)
    invocations: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[str, _Pending] = field(default_factory=dict)

    # -- direct access for assertions -------------------------------------------------------
    def client(self, service: str = "sagemaker"):
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    def names(self) -> dict[str, list[str]]:
        sm = self.client()
        return {"models": sorted(m["ModelName"] for m in sm.list_models()["Models"]),
                "configs": sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]),
                "endpoints": sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"])}

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    # -- patches ----------------------------------------------------------------------------
    def install(self, monkeypatch) -> None:
        from moto.core.responses import ActionResult
        from moto.sagemaker.exceptions import SagemakerClientError, ValidationError
        from moto.sagemaker.responses import SageMakerResponse
        from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

        fake = self

        class ThrottlingError(SagemakerClientError):
            code = "ThrottlingException"

        original_call_action = SageMakerResponse.call_action
        original_describe = SageMakerResponse.describe_endpoint

        def call_action(resp):
            action = resp._get_action()
            fake.calls[action] += 1
            if fake.throttle.get(action, 0) > 0:
                fake.throttle[action] -= 1
                status, headers, body = resp.serialized(ActionResult(ThrottlingError("Rate exceeded")))
                return status, headers, body
            return original_call_action(resp)

        def update_endpoint(resp):
            backend = resp.sagemaker_backend
            name, config = resp._get_param("EndpointName"), resp._get_param("EndpointConfigName")
            endpoint = backend.endpoints.get(name)
            if endpoint is None:
                raise ValidationError(f"Could not find endpoint \"{name}\".")
            backend.describe_endpoint_config(config)  # raises ValidationException when missing
            if endpoint.endpoint_status in TRANSITIONAL:
                raise ValidationError(f"Cannot update in-progress endpoint \"{endpoint.arn}\".")
            fake.updates.append({"EndpointName": name, "EndpointConfigName": config,
                                 "DeploymentConfig": resp._get_param("DeploymentConfig"),
                                 "from": endpoint.endpoint_config_name})
            endpoint.endpoint_status = "Updating"
            fake.pending[name] = _Pending(endpoint.endpoint_config_name, config, fake.updating_polls, time.time())
            return ActionResult({"EndpointArn": endpoint.arn})

        def describe_endpoint(resp):
            backend = resp.sagemaker_backend
            name = resp._get_param("EndpointName")
            pending = fake.pending.get(name)
            endpoint = backend.endpoints.get(name)
            if pending is None or endpoint is None:
                return original_describe(resp)
            if pending.polls_left > 0:
                pending.polls_left -= 1
                return ActionResult({**backend.describe_endpoint(name), "PendingDeploymentSummary": {
                    "EndpointConfigName": pending.new_config, "StartTime": pending.started}})
            del fake.pending[name]
            if fake.update_mode == "apply":
                config = backend.describe_endpoint_config(pending.new_config)
                endpoint.endpoint_config_name = pending.new_config
                endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
                endpoint.endpoint_status = "InService"
            elif fake.update_mode == "rollback":
                endpoint.endpoint_status = "InService"  # back on the old config, as SageMaker leaves it
            elif fake.update_mode == "fail":
                endpoint.endpoint_status = "Failed"
                endpoint.failure_reason = "The primary container for production variant AllTraffic did not pass " \
                                          "the ping health check."
            else:
                raise AssertionError(f"unknown update_mode {fake.update_mode!r}")
            return original_describe(resp)

        def invoke_endpoint(resp):
            from moto.sagemaker.models import sagemaker_backends

            name = resp.path.split("/")[2]
            backend = sagemaker_backends[resp.current_account][resp.region]
            endpoint = backend.endpoints.get(name)
            if endpoint is None or endpoint.endpoint_status != "InService":
                body = {"__type": "ValidationError", "message": f"Endpoint {name} of account "
                                                                f"{resp.current_account} not found."}
                return 400, {"status": 400, "Content-Type": "application/json", "x-amzn-ErrorType": "ValidationError"}, \
                    json.dumps(body)
            payload = json.loads(resp.body)
            fake.invocations.append({"endpoint": name, "config": endpoint.endpoint_config_name,
                                     "content_type": resp.headers.get("Content-Type"), "payload": payload,
                                     "inference_id": resp.headers.get("X-Amzn-SageMaker-Inference-Id")})
            if fake.invoke_delay:
                time.sleep(fake.invoke_delay)
            rows = payload["dataframe_split"]["data"]
            # One prediction per row; text columns (e.g. a category) do not add to the score.
            if fake.model is not None:  # the test says what the served model answers
                predictions = list(fake.model(rows))
            else:
                predictions = [int(sum(float(v) for v in row if isinstance(v, (int, float))) > 0) for row in rows]
            if fake.invoke_mode == "short":
                predictions = predictions[:-1]
            return 200, {"Content-Type": "application/json"}, json.dumps({"predictions": predictions})

        monkeypatch.setattr(SageMakerResponse, "call_action", call_action)
        monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)
        monkeypatch.setattr(SageMakerResponse, "describe_endpoint", describe_endpoint)
        monkeypatch.setattr(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)


def start(monkeypatch, port: int) -> tuple[SageMakerFake, Any]:
    """Start moto on 127.0.0.1:``port`` with the patches; returns (fake, server) — stop the server."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    fake = SageMakerFake(url=f"http://127.0.0.1:{port}")
    fake.reset()  # moto's backends are process-global: start from nothing
    fake.install(monkeypatch)
    return fake, server
