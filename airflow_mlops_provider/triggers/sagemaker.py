"""Wait for a SageMaker endpoint to leave Creating/Updating, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

# Statuses SageMaker moves through on its own; anything else is where the endpoint stays.
ENDPOINT_TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


class SageMakerEndpointSettledTrigger(BaseTrigger):
    """Poll ``DescribeEndpoint``; yield exactly one event.

    - ``{"status": "settled", "endpoint_name", "endpoint_status", "endpoint_config_name",
      "failure_reason"}`` once the endpoint is no longer Creating/Updating (InService, Failed,
      OutOfService, ...): the task decides what that means, including whether SageMaker rolled
      the update back (InService on the old config),
    - ``{"status": "timeout", ...}`` at ``deadline`` (a UNIX timestamp; None: never),
    - ``{"status": "error", "message"}`` when the API cannot be read.

    Every event also carries ``details`` (whatever the task handed over, JSON-safe) so the
    resumed task needs nothing but the event. Defer kwargs are not enough: ``airflow dags test``
    replaces them with the event when it runs a trigger in line.
    """

    def __init__(self, endpoint_name: str, aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 poll_interval: float = 30.0, deadline: float | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.endpoint_name = endpoint_name
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.details = details

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"endpoint_name": self.endpoint_name, "aws_conn_id": self.aws_conn_id,
                 "region_name": self.region_name, "poll_interval": self.poll_interval, "deadline": self.deadline,
                 "details": self.details})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        hook = SageMakerHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
        where = {"endpoint_name": self.endpoint_name, "details": self.details}
        while True:
            try:
                desc = await asyncio.to_thread(hook.describe_endpoint, self.endpoint_name)
            except Exception as err:  # noqa: BLE001 - reported to the task, which raises it clearly
                code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
                if code in ("ThrottlingException", "TooManyRequests", "TooManyRequestsException"):
                    await asyncio.sleep(self.poll_interval)
                    continue
                yield TriggerEvent({"status": "error", **where, "message": str(err)})
                return
            state = {"endpoint_status": desc.get("EndpointStatus"),
                     "endpoint_config_name": desc.get("EndpointConfigName"),
                     "failure_reason": desc.get("FailureReason")}
            if state["endpoint_status"] not in ENDPOINT_TRANSITIONAL:
                yield TriggerEvent({"status": "settled", **where, **state})
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", **where, **state})
                return
            await asyncio.sleep(self.poll_interval)
