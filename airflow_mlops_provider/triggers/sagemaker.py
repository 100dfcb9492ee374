"""Wait for a SageMaker endpoint to leave Creating/Updating, without holding a worker slot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_mlops_provider.core.sagemaker import THROTTLING_CODES
from airflow_mlops_provider.triggers.base import DeployTargetWaitTrigger

# Statuses SageMaker moves through on its own; anything else is where the endpoint stays.
ENDPOINT_TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


class SageMakerEndpointSettledTrigger(DeployTargetWaitTrigger):
    """Poll ``DescribeEndpoint``; yield exactly one event.

    - ``{"status": "settled", "endpoint_name", "endpoint_status", "endpoint_config_name",
      "failure_reason"}`` once the endpoint is no longer Creating/Updating (InService, Failed,
      OutOfService, ...): the task decides what that means, including whether SageMaker rolled
      the update back (InService on the old config),
    - ``{"status": "timeout", ...}`` at ``deadline`` (a UNIX timestamp; None: never),
    - ``{"status": "error", "message"}`` when the API cannot be read (throttling is retried).

    Every event also carries ``details`` (see
    :class:`~airflow_mlops_provider.triggers.base.DeployTargetWaitTrigger`).
    """

    def __init__(self, endpoint_name: str, aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 poll_interval: float = 30.0, deadline: float | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(poll_interval=poll_interval, deadline=deadline, details=details)
        self.endpoint_name = endpoint_name
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def identity(self) -> dict[str, Any]:
        return {"endpoint_name": self.endpoint_name, "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name}

    def where(self) -> dict[str, Any]:
        return {"endpoint_name": self.endpoint_name, "details": self.details}

    def status_reader(self) -> Callable[[], dict[str, Any]]:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        hook = SageMakerHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
        return lambda: hook.describe_endpoint(self.endpoint_name)

    def is_transient(self, err: Exception) -> bool:
        response = getattr(err, "response", None)
        return isinstance(response, dict) and (response.get("Error") or {}).get("Code", "") in THROTTLING_CODES

    @staticmethod
    def _state(desc: dict[str, Any]) -> dict[str, Any]:
        return {"endpoint_status": desc.get("EndpointStatus"), "endpoint_config_name": desc.get("EndpointConfigName"),
                "failure_reason": desc.get("FailureReason")}

    def classify(self, status: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if status.get("EndpointStatus") in ENDPOINT_TRANSITIONAL:
            return None
        return "settled", self._state(status)

    def timeout_payload(self, status: dict[str, Any]) -> dict[str, Any]:
        return self._state(status)
