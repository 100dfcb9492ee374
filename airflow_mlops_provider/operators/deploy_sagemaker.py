"""Deploy MLflow model versions to SageMaker real-time endpoints, verify them, roll them back.

``SageMakerDeployModelVersionOperator`` packages a registered MLflow version as
``model.tar.gz`` in S3, creates the SageMaker model and endpoint config named after the
version (reruns find and reuse them), creates the endpoint or updates it with a blue/green
``DeploymentConfig``, waits (deferrable) and then checks that the endpoint really serves the
requested config: SageMaker rolls an update back by itself when an alarm fires, and still
reports ``InService``. ``SageMakerRollbackEndpointOperator`` puts a previous config back.
``smoke_test_endpoint`` sends a few rows in MLflow's scoring format.

Everything AWS goes through the amazon provider's hooks (``SageMakerHook``, ``S3Hook``,
``AwsBaseHook`` for ``sagemaker-runtime``). The target itself (config, lane, wait rule, what
serves where) is :mod:`airflow_mlops_provider.deploy.sagemaker`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from airflow_mlops_provider.core.sagemaker import (
    ENDPOINT_TRANSITIONAL,
    DeploymentConfig,
    EndpointSpec,
    SageMakerSpecError,
    aws_call,
    console_url,
    is_not_found,
    s3_model_key,
    same_variants,
    smoke_test_endpoint,
    version_resource_name,
)
from airflow_mlops_provider.deploy.sagemaker import MLFLOW_VERSION_TAG, PREVIOUS_CONFIG_TAG, EndpointProbe
from airflow_mlops_provider.exceptions import SageMakerError
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.links.sagemaker import SageMakerEndpointLink
from airflow_mlops_provider.operators.deploy import (
    DeploymentVerifyOperator,
    DeployTargetOperator,
    DeployTargetRollbackOperator,
)

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

__all__ = ["MLFLOW_VERSION_TAG", "PREVIOUS_CONFIG_TAG", "SageMakerDeployModelVersionOperator",
           "SageMakerRollbackEndpointOperator", "SageMakerVerifyEndpointOperator", "smoke_test_endpoint"]

T = TypeVar("T")


class _SageMakerEndpointOperator(DeployTargetOperator):
    """Shared: AWS hooks, throttled calls, and the wait → verify of an endpoint's config."""

    template_fields: Sequence[str] = (*DeployTargetOperator.template_fields, "endpoint_name", "aws_conn_id",
                                      "region_name")
    operator_extra_links = (SageMakerEndpointLink(),)
    ui_color = "#f0a04b"
    failure = SageMakerError

    def __init__(self, *, endpoint_name: str, aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 timeout: float = 3600, poll_interval: float = 30, throttle_attempts: int = 6,
                 **kwargs: Any) -> None:
        super().__init__(timeout=timeout, poll_interval=poll_interval, **kwargs)
        self.endpoint_name = endpoint_name
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.throttle_attempts = throttle_attempts

    @cached_property
    def hook(self) -> SageMakerHook:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def _call(self, call: str, fn: Callable[[], T]) -> T:
        return aws_call(call, fn, attempts=int(self.throttle_attempts), endpoint=self.endpoint_name)

    def _describe_or_none(self, call: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        try:
            return self._call(call, fn)
        except SageMakerError:
            raise
        except Exception as err:
            if is_not_found(err):
                return None
            raise

    def _describe_endpoint(self) -> dict[str, Any] | None:
        return self._describe_or_none("DescribeEndpoint", lambda: self.hook.describe_endpoint(self.endpoint_name))

    def _region(self) -> str:
        return self.region_name or self.hook.conn_region_name

    # -- the wait (DeployTargetOperator): until the endpoint leaves Creating/Updating ----------------
    @property
    def resource(self) -> str:
        return f"SageMaker endpoint {self.endpoint_name!r}"

    def error_context(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint_name}

    def lineage_endpoint(self, result: dict[str, Any]) -> Any:
        """``sagemaker://<region>`` + the endpoint name."""
        from airflow_mlops_provider.core.lineage import sagemaker_endpoint_dataset

        region = result.get("region") or self.region_name
        if not region:
            return None
        return sagemaker_endpoint_dataset(str(region), str(result.get("endpoint_name") or self.endpoint_name),
                                          endpoint_config_name=result.get("endpoint_config_name"))

    def probe(self, expected_config: str) -> EndpointProbe:
        """The wait rule: out of Creating/Updating, InService on ``expected_config``."""
        return EndpointProbe(endpoint_name=str(self.endpoint_name), expected_config=str(expected_config),
                             aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                             throttle_attempts=int(self.throttle_attempts))

    def result(self, context: Any, details: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """``details``: the endpoint is InService on ``details['endpoint_config_name']``."""
        self.log.info("Endpoint %s is InService on %s", self.endpoint_name, details["endpoint_config_name"])
        return details


class SageMakerDeployModelVersionOperator(_SageMakerEndpointOperator):
    """Deploy one MLflow model version to a SageMaker endpoint (blue/green on update).

    :param endpoint_name: the endpoint to create or update.
    :param model_name: registered MLflow model; ``model_version`` is a number or ``@alias``.
    :param image_uri: ECR URI of the serving container (e.g. MLflow's pyfunc image).
    :param execution_role_arn: IAM role SageMaker assumes to pull the image and the model.
    :param s3_bucket: bucket for ``model.tar.gz``; the key is
        ``<s3_prefix>/<endpoint>/<model>/v<version>/model.tar.gz``, so reruns reuse it.
    :param deployment_config: ``{"traffic_shift": {"type": "canary", "percent": 10,
        "wait_seconds": 300}, "termination_wait_seconds": 0, "max_execution_timeout": 1800,
        "auto_rollback_alarms": ["model-5xx"]}`` (or a :class:`DeploymentConfig`); used when
        the endpoint exists. None: SageMaker's default update.

    Returns ``{"endpoint_name", "endpoint_config_name", "model_name", "previous_config_name",
    "model_version", "region", "action": "created"|"updated"|"unchanged", "model_data_url"}``
    where ``model_name`` is the SageMaker model. Raises :class:`DeploymentRolledBack` when the
    endpoint ends InService on another config than the one requested (SageMaker rolled back).
    """

    template_fields: Sequence[str] = (*_SageMakerEndpointOperator.template_fields, "model_name", "model_version",
                                      "image_uri", "instance_type", "initial_instance_count", "execution_role_arn",
                                      "s3_bucket", "s3_prefix", "deployment_config", "environment",
                                      "data_capture_uri", "data_capture_percent")
    template_fields_renderers = {"deployment_config": "json", "environment": "json"}

    def __init__(self, *, endpoint_name: str, model_name: str, model_version: str | int, image_uri: str,
                 execution_role_arn: str, s3_bucket: str, instance_type: str = "ml.m5.large",
                 initial_instance_count: int = 1, s3_prefix: str = "mlops/sagemaker",
                 deployment_config: dict[str, Any] | DeploymentConfig | None = None,
                 environment: dict[str, str] | None = None, data_capture_uri: str | None = None,
                 data_capture_percent: int | str = 100,
                 mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(endpoint_name=endpoint_name, mlflow_conn_id=mlflow_conn_id, **kwargs)
        self.data_capture_uri = data_capture_uri
        self.data_capture_percent = data_capture_percent
        self.model_name = model_name
        self.model_version = model_version
        self.image_uri = image_uri
        self.execution_role_arn = execution_role_arn
        self.s3_bucket = s3_bucket
        self.instance_type = instance_type
        self.initial_instance_count = initial_instance_count
        self.s3_prefix = s3_prefix
        self.deployment_config = deployment_config
        self.environment = environment

    # -- steps ---------------------------------------------------------------------------------
    def _resolve_version(self) -> str:
        version = str(self.model_version or "").strip()
        if not version:
            raise SageMakerSpecError("SageMaker deploy: model_version is required", field="model_version",
                                     reason="invalid")
        return self.resolve_model_version(self.model_name, version)

    def _package(self, mlflow: MlflowHook, version: str, workdir: str) -> str:
        """Download the version's artifacts and tar them (MLmodel at the root) reproducibly."""
        import gzip
        import tarfile
        from pathlib import Path

        import mlflow as mlflow_lib

        mlflow.activate()  # the connection's credentials reach the artifact download
        uri = mlflow.client.get_model_version_download_uri(self.model_name, version)
        local = Path(workdir) / "model"
        local.mkdir()
        try:
            mlflow_lib.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(local),
                                                    tracking_uri=mlflow.tracking_uri)
        except Exception as err:  # any failure means "no usable artifacts"
            raise SageMakerSpecError(
                f"MLflow model {self.model_name!r} version {version} has no downloadable artifacts at "
                f"{uri!r}: {err}", field="model_version", model=self.model_name, version=version,
                reason="invalid") from err
        roots = [p.parent for p in local.rglob("MLmodel")]
        if not roots:
            raise SageMakerSpecError(
                f"MLflow model {self.model_name!r} version {version} has no model artifacts (no MLmodel "
                f"file under {uri!r})", field="model_version", model=self.model_name, version=version,
                reason="invalid")
        root = min(roots, key=lambda p: len(p.parts))
        archive = Path(workdir) / "model.tar.gz"
        with open(archive, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w") as tar:
            for path in sorted(root.rglob("*")):
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if path.is_file():
                    with open(path, "rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
        return str(archive)

    def _upload(self, archive: str, key: str) -> str:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        s3 = S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
        url = f"s3://{self.s3_bucket}/{key}"
        if self._call("HeadObject", lambda: s3.check_for_key(key, self.s3_bucket)):
            self.log.info("%s already exists (same model version): not uploading again", url)
        else:
            self._call("PutObject", lambda: s3.load_file(archive, key, self.s3_bucket, replace=True))
            self.log.info("Uploaded the model artifacts to %s", url)
        return url

    def _ensure_model_and_config(self, spec: EndpointSpec, name: str, data_url: str, version: str,
                                 previous: str | None) -> str | None:
        """Create the SageMaker model and endpoint config unless a rerun already did.

        Returns the previous config recorded on the endpoint config when it existed.
        """
        if self._describe_or_none("DescribeModel", lambda: self.hook.describe_model(name)) is None:
            request = spec.model_request(name, data_url, self.environment)
            request["Tags"] = [{"Key": MLFLOW_VERSION_TAG, "Value": f"{self.model_name}/{version}"}]
            self._call("CreateModel", lambda: self.hook.create_model(request))
            self.log.info("Created SageMaker model %s", name)
        else:
            self.log.info("SageMaker model %s exists (rerun): reusing it", name)
        wanted = spec.endpoint_config_request(name, name, version)
        live = self._describe_or_none("DescribeEndpointConfig", lambda: self.hook.describe_endpoint_config(name))
        if live is None:
            wanted["Tags"] = [{"Key": PREVIOUS_CONFIG_TAG, "Value": previous or "none"},
                              {"Key": MLFLOW_VERSION_TAG, "Value": f"{self.model_name}/{version}"}]
            self._call("CreateEndpointConfig", lambda: self.hook.create_endpoint_config(wanted))
            self.log.info("Created endpoint config %s", name)
            return previous
        if not same_variants(live, wanted):
            raise SageMakerError(
                f"Endpoint config {name!r} already exists with other variants or data capture "
                f"({live.get('ProductionVariants')}, {live.get('DataCaptureConfig')}) than requested "
                f"({wanted['ProductionVariants']}, {wanted.get('DataCaptureConfig')}); "
                "configs are immutable: delete it or deploy under another endpoint name",
                endpoint=self.endpoint_name, config=name, reason="conflict")
        tags = self._call("ListTags", lambda: self.hook.conn.list_tags(ResourceArn=live["EndpointConfigArn"]))
        recorded = {t["Key"]: t["Value"] for t in tags.get("Tags", [])}.get(PREVIOUS_CONFIG_TAG)
        self.log.info("Endpoint config %s exists (rerun): reusing it", name)
        return None if recorded in (None, "none") else recorded

    # -- execute -------------------------------------------------------------------------------
    def execute(self, context: Any) -> dict[str, Any]:
        import tempfile

        # 1. Everything that can be checked without AWS, before any resource exists.
        spec = EndpointSpec(endpoint_name=str(self.endpoint_name), image_uri=self.image_uri,
                            instance_type=self.instance_type, initial_instance_count=self.initial_instance_count,
                            execution_role_arn=self.execution_role_arn,
                            capture_uri=str(self.data_capture_uri or "").strip() if self.data_capture_uri
                            not in (None, "None") else "",
                            capture_percent=100 if self.data_capture_percent in (None, "", "None")
                            else self.data_capture_percent)
        deployment = (DeploymentConfig.from_dict(self.deployment_config)
                      if self.deployment_config not in (None, "", {}) else None)
        if not self.s3_bucket:
            raise SageMakerSpecError("SageMaker deploy: s3_bucket is required", field="s3_bucket", reason="invalid")
        mlflow = self.mlflow_hook
        version = self._resolve_version()
        name = version_resource_name(spec.endpoint_name, self.model_name, version)
        region = self._region()
        SageMakerEndpointLink.persist(context, console_url(region, spec.endpoint_name))

        with tempfile.TemporaryDirectory(prefix="mlops-sagemaker-") as workdir:
            archive = self._package(mlflow, version, workdir)
            # 2. AWS: artifacts, model, config, endpoint.
            data_url = self._upload(archive, s3_model_key(self.s3_prefix, spec.endpoint_name, self.model_name,
                                                          version))
        endpoint = self._describe_endpoint()
        live_config = endpoint.get("EndpointConfigName") if endpoint else None
        pending = ((endpoint or {}).get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        previous = live_config if live_config != name else None
        recorded = self._ensure_model_and_config(spec, name, data_url, version, previous)
        if previous is None:
            previous = recorded
        details = {"endpoint_name": spec.endpoint_name, "endpoint_config_name": name, "model_name": name,
                   "previous_config_name": previous, "model_version": version, "region": region,
                   "model_data_url": data_url, "action": "unchanged"}
        if endpoint is None:
            self._call("CreateEndpoint", lambda: self.hook.create_endpoint(
                {"EndpointName": spec.endpoint_name, "EndpointConfigName": name}, wait_for_completion=False))
            details["action"] = "created"
            self.log.info("Creating endpoint %s on %s", spec.endpoint_name, name)
        elif live_config == name or pending == name:
            self.log.info("Endpoint %s already serves (or is moving to) %s", spec.endpoint_name, name)
        elif endpoint.get("EndpointStatus") in ENDPOINT_TRANSITIONAL:
            raise SageMakerError(
                f"SageMaker endpoint {spec.endpoint_name!r} is {endpoint['EndpointStatus']} towards another "
                f"config ({pending or live_config!r}); not starting a second update", endpoint=spec.endpoint_name,
                reason="conflict", live_config=live_config, pending_config=pending)
        else:
            request: dict[str, Any] = {"EndpointName": spec.endpoint_name, "EndpointConfigName": name}
            if deployment is not None:
                request["DeploymentConfig"] = deployment.to_api()
            self._call("UpdateEndpoint", lambda: self.hook.update_endpoint(request, wait_for_completion=False))
            details["action"] = "updated"
            self.log.info("Updating endpoint %s from %s to %s", spec.endpoint_name, live_config, name)
        return self.wait(context, self.probe(name), details)


class SageMakerRollbackEndpointOperator(_SageMakerEndpointOperator, DeployTargetRollbackOperator):
    """Update an endpoint back to ``endpoint_config_name`` (e.g. the deploy's ``previous_config_name``).

    :param model_name: roll back to what the registry says serves instead: the endpoint config
        the deploy operator made for the version ``alias`` (default ``champion``) names, resolved
        when the rollback runs. Falls back to ``endpoint_config_name`` when the alias is unset or
        that version was never deployed to this endpoint.

    A no-op when the endpoint already serves the target. Returns ``{"endpoint_name",
    "endpoint_config_name", "previous_config_name", "region", "action": "updated"|"unchanged"}``
    (plus ``model_version`` when the target came from the alias).
    """

    template_fields: Sequence[str] = tuple(dict.fromkeys((
        *_SageMakerEndpointOperator.template_fields, *DeployTargetRollbackOperator.template_fields,
        "endpoint_config_name", "deployment_config")))
    template_fields_renderers = {"deployment_config": "json"}

    def __init__(self, *, endpoint_name: str, endpoint_config_name: str | None,
                 deployment_config: dict[str, Any] | DeploymentConfig | None = None, model_name: str | None = None,
                 alias: str = "champion", mlflow_conn_id: str = MlflowHook.default_conn_name,
                 **kwargs: Any) -> None:
        super().__init__(endpoint_name=endpoint_name, model_name=model_name, alias=alias,
                         mlflow_conn_id=mlflow_conn_id, **kwargs)
        self.endpoint_config_name = endpoint_config_name
        self.deployment_config = deployment_config

    def _alias_target(self) -> tuple[str, str] | None:
        """(endpoint config, version) for the version the alias names, when that config exists."""
        version = self.champion_version()
        if version is None:
            self.log.warning("Rolling back to %r", self.endpoint_config_name)
            return None
        config = version_resource_name(str(self.endpoint_name), self.model_name, version)
        if self._describe_or_none("DescribeEndpointConfig",
                                  lambda: self.hook.describe_endpoint_config(config)) is None:
            self.log.warning("@%s of %s is v%s, which was never deployed to %r (no config %r): rolling back to %r",
                             self.alias, self.model_name, version, self.endpoint_name, config,
                             self.endpoint_config_name)
            return None
        return config, version

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        target = self.endpoint_config_name
        from_alias = self._alias_target()
        if from_alias is not None:
            self.log.info("@%s of %s is v%s, served by endpoint config %s", self.alias, self.model_name,
                          from_alias[1], from_alias[0])
            target = from_alias[0]
        if target in (None, "", "None", "none"):
            raise AirflowSkipException(f"no previous endpoint config for {self.endpoint_name!r}: nothing to roll "
                                       "back to (first deployment)")
        deployment = (DeploymentConfig.from_dict(self.deployment_config)
                      if self.deployment_config not in (None, "", {}) else None)
        region = self._region()
        SageMakerEndpointLink.persist(context, console_url(region, str(self.endpoint_name)))
        endpoint = self._describe_endpoint()
        if endpoint is None:
            raise SageMakerError(f"SageMaker endpoint {self.endpoint_name!r} does not exist: nothing to roll back",
                                 endpoint=self.endpoint_name, reason="invalid")
        if self._describe_or_none("DescribeEndpointConfig",
                                  lambda: self.hook.describe_endpoint_config(target)) is None:
            raise SageMakerSpecError(f"Endpoint config {target!r} does not exist: cannot roll back to it",
                                     field="endpoint_config_name", reason="invalid")
        live = endpoint.get("EndpointConfigName")
        details = {"endpoint_name": self.endpoint_name, "endpoint_config_name": target,
                   "previous_config_name": live if live != target else None, "region": region, "action": "unchanged"}
        if from_alias is not None:
            details["model_version"] = from_alias[1]
        pending = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        if live != target and pending != target:
            request: dict[str, Any] = {"EndpointName": self.endpoint_name, "EndpointConfigName": target}
            if deployment is not None:
                request["DeploymentConfig"] = deployment.to_api()
            self._call("UpdateEndpoint", lambda: self.hook.update_endpoint(request, wait_for_completion=False))
            details["action"] = "updated"
            self.log.info("Rolling endpoint %s back from %s to %s", self.endpoint_name, live, target)
        return self.wait(context, self.probe(target), details)

    def raise_failed(self, probe: EndpointProbe, status: dict[str, Any], payload: dict[str, Any],
                     details: dict[str, Any]) -> NoReturn:
        if payload.get("settled") != "other_config":
            super().raise_failed(probe, status, payload, details)
        live_config = status.get("EndpointConfigName")
        raise SageMakerError(
            f"Rollback of SageMaker endpoint {self.endpoint_name!r} to {details['endpoint_config_name']!r} did not "
            f"take: it is InService on {live_config!r}", endpoint=self.endpoint_name, reason="failed",
            live_config=live_config, **details)


class SageMakerVerifyEndpointOperator(DeploymentVerifyOperator):
    """Smoke test and bake of a SageMaker endpoint through ``invoke_endpoint`` (MLflow scoring format).

    :param aws_conn_id: the AWS connection of the ``sagemaker-runtime`` client.
    Returns ``{"endpoint_name", "requests", "errors", "error_rate", "p95_latency_ms", "rows"}``.
    """

    template_fields: Sequence[str] = (*DeploymentVerifyOperator.template_fields, "aws_conn_id", "region_name")
    failure = SageMakerError
    ui_color = "#f0a04b"

    def __init__(self, *, aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def result_head(self, deployment: dict[str, Any]) -> dict[str, Any]:
        return {"endpoint_name": deployment.get("endpoint_name")}

    def request_sender(self, deployment: dict[str, Any], rows: list[list[Any]],
                       columns: list[str]) -> Callable[[], float]:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        runtime = AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="sagemaker-runtime",
                              region_name=self.region_name)
        endpoint = str(deployment.get("endpoint_name"))
        timeout = float(self.request_timeout)
        return lambda: smoke_test_endpoint(runtime, endpoint, rows, timeout, columns=columns)["latency_ms"]

    def prediction_sender(self, deployment: dict[str, Any], rows: list[list[Any]], columns: list[str], *,
                          role: str, champion: str) -> Callable[[], list[Any]]:
        """The candidate through ``invoke_endpoint``; the champion from its registered model (once
        SageMaker's blue/green update has finished, no champion fleet is left to invoke)."""
        if role == "champion":
            return super().prediction_sender(deployment, rows, columns, role=role, champion=champion)
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        runtime = AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="sagemaker-runtime",
                              region_name=self.region_name)
        endpoint = str(deployment.get("endpoint_name"))
        timeout = float(self.request_timeout)
        return lambda: smoke_test_endpoint(runtime, endpoint, rows, timeout, columns=columns)["predictions"]
