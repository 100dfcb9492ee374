"""The ``sagemaker`` deploy target: a SageMaker real-time endpoint, blue/green updated.

The wait: the endpoint leaves Creating/Updating and is InService on the config asked for —
SageMaker rolls an update back by itself when an alarm fires and still reports InService
(:class:`EndpointProbe`). What serves where: the endpoints whose config the deploy operator
tagged with the model. Everything AWS goes through the amazon provider's hooks; the operators
are in :mod:`airflow_mlops_provider.operators.deploy_sagemaker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow_mlops_provider.deploy.base import (
    DONE,
    FAILED,
    VERIFY_DEFAULTS,
    VERIFY_SCHEMA,
    DeployLane,
    DeployProbe,
    DeployTarget,
    serving_row,
)
from airflow_mlops_provider.exceptions import DeploymentRolledBack, SageMakerError

DEFAULT_CONN_ID = "aws_default"
PREVIOUS_CONFIG_TAG = "mlops:previous-endpoint-config"
MLFLOW_VERSION_TAG = "mlops:mlflow-model-version"


@dataclass
class EndpointProbe(DeployProbe):
    """Done when the endpoint is InService on ``expected_config``; failed when it settles
    elsewhere (Failed, OutOfService, or InService on another config: rolled back). Status:
    ``{"EndpointStatus", "EndpointConfigName", "FailureReason"}`` (``{}`` when it does not exist)."""

    endpoint_name: str
    expected_config: str
    aws_conn_id: str | None = DEFAULT_CONN_ID
    region_name: str | None = None
    throttle_attempts: int = 6
    error = SageMakerError

    @cached_property
    def _hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def read(self) -> dict[str, Any]:
        from airflow_mlops_provider.core.sagemaker import aws_call, is_not_found

        try:
            desc = aws_call("DescribeEndpoint", lambda: self._hook.describe_endpoint(self.endpoint_name),
                            attempts=int(self.throttle_attempts), endpoint=self.endpoint_name)
        except SageMakerError:
            raise
        except Exception as err:
            if is_not_found(err):
                return {}
            raise
        return {"EndpointStatus": desc.get("EndpointStatus"), "EndpointConfigName": desc.get("EndpointConfigName"),
                "FailureReason": desc.get("FailureReason")}

    def classify(self, status: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        from airflow_mlops_provider.core.sagemaker import ENDPOINT_TRANSITIONAL

        state = status.get("EndpointStatus")
        if state in ENDPOINT_TRANSITIONAL:
            return None
        if state != "InService":
            return FAILED, {"settled": "not_in_service"}
        if status.get("EndpointConfigName") != self.expected_config:
            return FAILED, {"settled": "other_config"}
        return DONE, {}

    def is_transient(self, err: Exception) -> bool:
        from airflow_mlops_provider.core.sagemaker import is_throttled

        return is_throttled(err) or (isinstance(err, SageMakerError) and err.context.get("reason") == "throttled")

    @property
    def resource(self) -> str:
        return f"SageMaker endpoint {self.endpoint_name!r}"

    def context(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint_name}

    def failure(self, status: dict[str, Any], payload: dict[str, Any], details: dict[str, Any]) -> Exception:
        state, live_config, why = status.get("EndpointStatus"), status.get("EndpointConfigName"), \
            status.get("FailureReason")
        if payload.get("settled") == "other_config":
            return DeploymentRolledBack(
                f"{self.resource} is InService on {live_config!r}, not on the requested {self.expected_config!r}: "
                "SageMaker rolled the update back (an auto-rollback alarm fired or the new fleet failed). "
                "Nothing else was changed.", endpoint=self.endpoint_name, requested_config=self.expected_config,
                live_config=live_config, model_version=details.get("model_version"), region=details.get("region"))
        return SageMakerError(
            f"{self.resource} is {state} (wanted InService on {self.expected_config!r})" + (f": {why}" if why else ""),
            endpoint=self.endpoint_name, reason="failed", status=state, live_config=live_config, failure_reason=why,
            **details)

    def timeout_error(self, status: dict[str, Any], timeout: float, details: dict[str, Any]) -> Exception:
        return SageMakerError(f"{self.resource} still {status.get('EndpointStatus')} after {float(timeout):.0f}s",
                              endpoint=self.endpoint_name, reason="timeout", **details)


def serving(model_name: str, *, aws_conn_id: str = DEFAULT_CONN_ID, region_name: str | None = None,
            max_endpoints: int = 100) -> list[dict[str, Any]]:
    """The endpoints (up to ``max_endpoints``) whose live config the deploy operator tagged
    ``mlops:mlflow-model-version = <model>/<version>``: endpoint, version, variants' weights.

    Needs the connection ``aws_conn_id`` to exist (the view does not wait on a credential chain)."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    from airflow_mlops_provider.core.sagemaker import console_url
    from airflow_mlops_provider.version_compat import BaseHook

    BaseHook.get_connection(aws_conn_id)  # raises naming the connection when it is not configured
    hook = SageMakerHook(aws_conn_id=aws_conn_id, region_name=region_name)
    client, region = hook.conn, region_name or hook.conn_region_name
    rows = []
    listed = client.list_endpoints(MaxResults=max_endpoints).get("Endpoints", [])
    for summary in listed:
        name = summary["EndpointName"]
        endpoint = client.describe_endpoint(EndpointName=name)
        config_name = endpoint.get("EndpointConfigName")
        if not config_name:
            continue
        config = client.describe_endpoint_config(EndpointConfigName=config_name)
        tags = {t["Key"]: t["Value"] for t in client.list_tags(ResourceArn=config["EndpointConfigArn"]).get("Tags", [])}
        model, _, version = str(tags.get(MLFLOW_VERSION_TAG) or "").partition("/")
        if model != model_name:
            continue
        variants = endpoint.get("ProductionVariants") or []
        weights = [float(v.get("CurrentWeight") or 0) for v in variants]
        rows.append(serving_row("sagemaker", resource=name, version=version or None,
                                url=console_url(region, name) if region else None, role="live",
                                traffic_percent=100.0 if sum(weights) or not variants else 0.0,
                                status=endpoint.get("EndpointStatus"), endpoint_config_name=config_name,
                                updating_to=(endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")))
    return rows


def lane(*, config: str, model_name: Any, model_version: Any, challenger: Any) -> DeployLane:
    """Blue/green update (canary and alarms inside SageMaker) → verify; rollback to ``@champion``."""
    from airflow_mlops_provider.operators.deploy import config_field, optional_config_field
    from airflow_mlops_provider.operators.deploy_sagemaker import (
        SageMakerDeployModelVersionOperator,
        SageMakerRollbackEndpointOperator,
        SageMakerVerifyEndpointOperator,
    )

    def cfg(key: str) -> str:
        return config_field(config, key)

    endpoint = {"endpoint_name": cfg("endpoint_name"), "timeout": cfg("ready_timeout_s"),
                "poll_interval": cfg("poll_interval_s")}
    deploy = SageMakerDeployModelVersionOperator(
        task_id="deploy", model_name=model_name, model_version=model_version, image_uri=cfg("image_uri"),
        execution_role_arn=cfg("execution_role_arn"), s3_bucket=cfg("s3_bucket"), instance_type=cfg("instance_type"),
        initial_instance_count=cfg("initial_instance_count"), deployment_config=cfg("deployment_config"),
        data_capture_uri=optional_config_field(config, "data_capture_uri"),
        data_capture_percent=optional_config_field(config, "data_capture_percent"),
        retries=0,  # a retry after SageMaker's own rollback would push the rejected canary again
        **endpoint)
    verify = SageMakerVerifyEndpointOperator.from_config(config, deployment=deploy.output, challenger=challenger)
    rollback = SageMakerRollbackEndpointOperator(
        task_id="rollback", model_name=model_name, alias="champion",
        endpoint_config_name="{{ (ti.xcom_pull(task_ids='" + deploy.task_id + "') or {}).get('previous_config_name') }}",
        **endpoint)
    return DeployLane(deploy=deploy, verify=verify, rollback=rollback, promote_traffic=None)


TARGET = DeployTarget(
    name="sagemaker",
    description="SageMaker real-time endpoint: blue/green update with canary shifting and auto-rollback alarms",
    resource_field="endpoint_name",  # the builders name the endpoint after the model
    defaults={
        "image_uri": "", "execution_role_arn": "", "s3_bucket": "",
        "instance_type": "ml.m5.large", "initial_instance_count": 1,
        "data_capture_uri": "", "data_capture_percent": 100,
        "deployment_config": {"traffic_shift": {"type": "canary", "percent": 10, "wait_seconds": 600},
                              "max_execution_timeout": 3600, "auto_rollback_alarms": []},
        "ready_timeout_s": 3600, "poll_interval_s": 30, **VERIFY_DEFAULTS,
    },
    schema={
        "endpoint_name": {"type": "string", "pattern": "^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", "maxLength": 63},
        "image_uri": {"type": "string", "description": "MLflow pyfunc serving image in ECR"},
        "execution_role_arn": {"type": "string"},
        "s3_bucket": {"type": "string"},
        "instance_type": {"type": "string"},
        "initial_instance_count": {"type": "integer", "minimum": 1},
        "data_capture_uri": {"type": "string", "pattern": "^(s3://.+)?$",
                             "description": "SageMaker Data Capture into <uri>/v<version>/ (what online_monitoring_dag "
                                            "reads); empty: off"},
        "data_capture_percent": {"type": "integer", "minimum": 1, "maximum": 100},
        "deployment_config": {"type": "object"},
        "ready_timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "poll_interval_s": {"type": "number", "exclusiveMinimum": 0},
        **VERIFY_SCHEMA,
    },
    lane=lane,
    serving=serving,
    error=SageMakerError,
)
