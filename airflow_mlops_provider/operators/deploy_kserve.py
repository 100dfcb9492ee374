"""Deploy MLflow models to KServe as a canary, verify, then promote or roll back.

``KServeDeployInferenceServiceOperator`` applies the InferenceService with
``canaryTrafficPercent`` and waits (deferrable) until KServe reports Ready with that split;
``KServeSmokeTestInferenceServiceOperator`` posts rows to the service;
``KServePromoteInferenceServiceOperator`` moves the canary to 100%;
``KServeRollbackInferenceServiceOperator`` sends traffic back to the previous revision, or
redeploys the previous storage URI the deploy operator recorded in an annotation. The target
itself (config, lane, wait rule, what serves where) is :mod:`airflow_mlops_provider.deploy.kserve`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from airflow_mlops_provider.core.kserve import (
    MODEL_ANNOTATION,
    PREVIOUS_STORAGE_URI_ANNOTATION,
    InferenceServiceSpec,
    InferenceServiceSpecError,
    load_schema,
    parse_status,
    validate_manifest,
)
from airflow_mlops_provider.deploy.kserve import InferenceServiceProbe
from airflow_mlops_provider.exceptions import KServeError
from airflow_mlops_provider.hooks.kserve import KServeHook
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.links.kserve import KServeInferenceServiceLink
from airflow_mlops_provider.operators.deploy import (
    DeploymentVerifyOperator,
    DeployTargetOperator,
    DeployTargetRollbackOperator,
)


def version_storage_uri(mlflow: MlflowHook, model_name: str, version: str) -> str:
    """The ``storageUri`` KServe reads a registered version from: :meth:`MlflowHook.version_storage_uri`."""
    return mlflow.version_storage_uri(model_name, version)


class _KServeOperator(DeployTargetOperator):
    """Shared wait: already serving → return; else poll (sync) or defer to the trigger."""

    template_fields: Sequence[str] = (*DeployTargetOperator.template_fields, "name", "namespace",
                                      "kubernetes_conn_id")
    operator_extra_links = (KServeInferenceServiceLink(),)
    ui_color = "#7fd3c3"
    failure = KServeError

    def __init__(self, *, name: str, namespace: str = "default",
                 kubernetes_conn_id: str = KServeHook.default_conn_name, timeout: float = 900,
                 poll_interval: float = 10, **kwargs: Any) -> None:
        super().__init__(timeout=timeout, poll_interval=poll_interval, **kwargs)
        self.name = name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id

    @cached_property
    def hook(self) -> KServeHook:
        return KServeHook(kubernetes_conn_id=self.kubernetes_conn_id)

    # -- the wait (DeployTargetOperator): Ready with the expected canary share --------------------
    @property
    def resource(self) -> str:
        return f"InferenceService {self.namespace}/{self.name}"

    def error_context(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace}

    def lineage_endpoint(self, result: dict[str, Any]) -> Any:
        """``kserve://<namespace>`` + the InferenceService name."""
        from airflow_mlops_provider.core.lineage import kserve_dataset

        return kserve_dataset(str(result.get("namespace") or self.namespace), str(result.get("name") or self.name),
                              url=result.get("url"), canary_traffic_percent=result.get("canary_traffic_percent"))

    def probe(self, expected_canary_percent: int | None) -> InferenceServiceProbe:
        """The wait rule: Ready with ``expected_canary_percent`` on the latest revision."""
        return InferenceServiceProbe(name=str(self.name), namespace=str(self.namespace),
                                     kubernetes_conn_id=str(self.kubernetes_conn_id),
                                     expected_canary_percent=expected_canary_percent)

    def result(self, context: Any, details: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """The XCom: same keys on the synchronous and the deferred path."""
        traffic = status.get("traffic") or {}
        result = {**details, "url": status.get("url"), "ready": bool(status.get("ready", True)),
                  "latest_ready_revision": status.get("latest_ready_revision"),
                  "storage_uri": status.get("storage_uri") or details.get("storage_uri"),
                  "traffic": {"latest": traffic.get("latest"), "previous": traffic.get("previous"),
                              "revisions": traffic.get("revisions", [])}}
        if result["url"] and context:
            # Kept for the "InferenceService" extra link.
            KServeInferenceServiceLink.persist(context, result["url"])
        return result


class KServeDeployInferenceServiceOperator(_KServeOperator):
    """Deploy an MLflow model version (or a storage URI) as a canary of a KServe InferenceService.

    :param model_name: registered MLflow model; with ``model_version`` (a number or ``@alias``)
        the storage URI is the version's artifact location.
    :param storage_uri: use this URI instead of resolving one from MLflow.
    :param canary_traffic_percent: the new revision's share of traffic (None: all of it). On a
        first rollout KServe sends 100% to the only revision whatever this says.
    :param predictor_resources: ``{"requests": {"cpu", "memory"}, "limits": {...}}`` of the model
        container (named so because ``resources`` is a BaseOperator argument).
    :param schema_path: optional path to the CRD ``openAPIV3Schema`` (JSON); when set, the
        manifest is checked against it before it is sent.

    Returns ``{"name", "namespace", "action": "created"|"patched", "model_name", "model_version",
    "storage_uri", "previous_storage_uri", "canary_traffic_percent", "url", "ready",
    "latest_ready_revision", "traffic": {"latest", "previous", "revisions"}}``.
    """

    template_fields: Sequence[str] = (*_KServeOperator.template_fields, "model_name", "model_version",
                                      "storage_uri", "canary_traffic_percent", "predictor_resources", "labels",
                                      "annotations", "runtime", "service_account", "logger_url")
    template_fields_renderers = {"predictor_resources": "json", "labels": "json", "annotations": "json"}

    def __init__(self, *, name: str, model_name: str | None = None, model_version: str | int | None = None,
                 storage_uri: str | None = None, canary_traffic_percent: int | None = 10,
                 protocol_version: str = "v2", runtime: str | None = None, service_account: str | None = None,
                 predictor_resources: dict[str, dict[str, str]] | None = None, min_replicas: int | None = 1,
                 max_replicas: int | None = None, labels: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None, schema_path: str | None = None,
                 logger_url: str | None = None,
                 mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(name=name, mlflow_conn_id=mlflow_conn_id, **kwargs)
        self.logger_url = logger_url
        self.model_name = model_name
        self.model_version = model_version
        self.storage_uri = storage_uri
        self.canary_traffic_percent = canary_traffic_percent
        self.protocol_version = protocol_version
        self.runtime = runtime
        self.service_account = service_account
        self.predictor_resources = predictor_resources
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.labels = labels
        self.annotations = annotations
        self.schema_path = schema_path

    def resolve_storage_uri(self) -> tuple[str, str | None]:
        """(storage URI, model version) from the arguments or the MLflow registry."""
        if self.storage_uri:
            return str(self.storage_uri), (str(self.model_version) if self.model_version not in (None, "") else None)
        if not self.model_name or self.model_version in (None, ""):
            raise InferenceServiceSpecError(
                f"{self.resource}: pass storage_uri, or model_name and model_version",
                field="storage_uri", name=self.name, namespace=self.namespace, reason="invalid")
        mlflow = self.mlflow_hook
        version = self.resolve_model_version(self.model_name, self.model_version)
        uri = mlflow.version_storage_uri(self.model_name, version)
        self.log.info("MLflow model %s version %s is stored at %s", self.model_name, version, uri)
        self._check_artifacts(mlflow, uri, version)
        return uri, version

    def _check_artifacts(self, mlflow: MlflowHook, uri: str, version: str) -> None:
        """Refuse a version with no MLmodel at its storage URI before anything is applied.

        When the worker cannot list the location (KServe may hold credentials the worker lacks),
        the check is skipped with a warning: KServe's own load then decides.
        """
        import mlflow as mlflow_lib

        try:
            listed = mlflow_lib.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=mlflow.tracking_uri)
        except Exception as err:  # noqa: BLE001 - unreadable from here is not "empty"
            self.log.warning("Cannot list %s from this worker (%s); KServe will find out whether it loads",
                             uri, err)
            return
        if not any(a.path.rsplit("/", 1)[-1] == "MLmodel" for a in listed or []):
            raise InferenceServiceSpecError(
                f"{self.resource}: MLflow model {self.model_name!r} version {version} has no model artifacts "
                f"(no MLmodel file at {uri!r}); nothing was applied", field="model_version",
                name=self.name, namespace=self.namespace, model=self.model_name, version=version,
                reason="invalid")

    def execute(self, context: Any) -> dict[str, Any]:
        storage_uri, version = self.resolve_storage_uri()
        existing = self.hook.get(self.name, self.namespace, required=False)
        previous = None
        annotations = dict(self.annotations or {})
        if existing is not None:
            predictor = (existing.get("spec") or {}).get("predictor") or {}
            live_uri = (predictor.get("model") or {}).get("storageUri")
            live_notes = (existing.get("metadata") or {}).get("annotations") or {}
            latest_share = parse_status(existing)["traffic"].get("latest")
            # "previous" is the last model rolled out to 100%. A rerun of the same deploy, or a live
            # canary that never got all traffic (still partial, or rolled back to 0%), keeps the
            # recorded one: the live spec is not what serves.
            unfinished = latest_share is not None and int(latest_share) < 100
            previous = (live_notes.get(PREVIOUS_STORAGE_URI_ANNOTATION)
                        if live_uri == storage_uri or unfinished else live_uri)
        if previous:
            annotations[PREVIOUS_STORAGE_URI_ANNOTATION] = previous
        if self.model_name:
            annotations[MODEL_ANNOTATION] = f"{self.model_name}/{version}" if version else self.model_name
        canary = None if self.canary_traffic_percent in (None, "", "None") else int(self.canary_traffic_percent)
        if canary is None and existing is not None:
            # A merge patch keeps an earlier canaryTrafficPercent; KServe reads 100 as "no canary".
            canary = 100
        spec = InferenceServiceSpec(
            name=self.name, namespace=self.namespace, storage_uri=storage_uri,
            protocol_version=self.protocol_version, runtime=self.runtime, service_account=self.service_account,
            resources=dict(self.predictor_resources or {}), min_replicas=self.min_replicas, max_replicas=self.max_replicas,
            canary_traffic_percent=canary,
            labels=dict(self.labels or {}), annotations=annotations,
            logger_url=str(self.logger_url).strip() if self.logger_url not in (None, "", "None") else None)
        manifest = spec.to_manifest()
        if self.schema_path:
            validate_manifest(manifest, load_schema(self.schema_path))
        applied = self.hook.apply(manifest)
        details = {"name": self.name, "namespace": self.namespace, "action": applied["action"],
                   "model_name": self.model_name, "model_version": version, "storage_uri": storage_uri,
                   "previous_storage_uri": previous, "canary_traffic_percent": spec.canary_traffic_percent}
        return self.wait(context, self.probe(spec.canary_traffic_percent), details)


class KServePromoteInferenceServiceOperator(_KServeOperator):
    """Send all traffic to the latest revision (canary → 100%) and wait until KServe reports it.

    Returns the deploy operator's shape with ``action: "promoted"``.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        self.hook.patch(self.name, self.namespace, {"spec": {"predictor": {"canaryTrafficPercent": 100}}})
        details = {"name": self.name, "namespace": self.namespace, "action": "promoted",
                   "canary_traffic_percent": 100}
        return self.wait(context, self.probe(100), details)


class KServeRollbackInferenceServiceOperator(_KServeOperator, DeployTargetRollbackOperator):
    """Undo a canary.

    :param mode: ``traffic`` — canary → 0%, the previous revision serves everything;
        ``storage_uri`` — redeploy the storage URI the deploy operator recorded in the
        ``mlops.airflow.apache.org/previous-storage-uri`` annotation, at 100%;
        ``auto`` (default) — ``traffic`` while a previous revision is still in the traffic
        split, else ``storage_uri``.
    :param model_name: with ``auto``, roll back to what the registry says serves: the version
        ``alias`` (default ``champion``) names, resolved when the rollback runs. Traffic goes
        back to the previous revision when that revision is the alias's model; otherwise the
        alias's model is redeployed at 100%. When the alias is unset, the annotation is used.

    Returns the deploy operator's shape with ``action: "rolled_back"`` and ``mode``
    (plus ``model_version`` when the target came from the alias).
    """

    template_fields: Sequence[str] = tuple(dict.fromkeys((
        *_KServeOperator.template_fields, *DeployTargetRollbackOperator.template_fields, "mode")))

    def __init__(self, *, name: str, mode: str = "auto", model_name: str | None = None, alias: str = "champion",
                 mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(name=name, model_name=model_name, alias=alias, mlflow_conn_id=mlflow_conn_id, **kwargs)
        self.mode = mode

    def _alias_target(self) -> tuple[str, str] | None:
        """(storage URI, version) of the model the alias names now, or None when unset/not asked."""
        version = self.champion_version()
        if version is None:
            if self.model_name:
                self.log.warning("Rolling back to the recorded previous storage URI")
            return None
        return self.mlflow_hook.version_storage_uri(self.model_name, version), version

    def execute(self, context: Any) -> dict[str, Any]:
        if self.mode not in ("auto", "traffic", "storage_uri"):
            raise InferenceServiceSpecError(f"{self.resource}: rollback mode {self.mode!r} is not one of "
                                            f"'auto', 'traffic', 'storage_uri'", field="mode", reason="invalid")
        from airflow.sdk.exceptions import AirflowSkipException

        obj = self.hook.get(self.name, self.namespace, required=False)
        if obj is None:
            raise AirflowSkipException(f"{self.resource} does not exist: nothing was deployed, nothing to roll back")

        status = parse_status(obj)
        has_previous_revision = any(not r["latest"] for r in status["traffic"]["revisions"])
        notes = (obj.get("metadata") or {}).get("annotations") or {}
        previous_uri = notes.get(PREVIOUS_STORAGE_URI_ANNOTATION)
        mode = self.mode
        details: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "action": "rolled_back"}
        target = self._alias_target() if mode == "auto" else None
        if target is not None:
            # Serving follows the registry: whatever the alias names now is what must serve.
            target_uri, details["model_version"] = target
            self.log.info("@%s of %s is v%s (%s)", self.alias, self.model_name, target[1], target_uri)
            if has_previous_revision and previous_uri == target_uri:
                mode = "traffic"
            elif status["storage_uri"] == target_uri:
                mode = "latest"  # the latest revision already is the alias's model: give it all traffic
            else:
                mode, previous_uri = "storage_uri", target_uri
        elif mode == "auto":
            mode = "traffic" if has_previous_revision else "storage_uri"
        details["mode"] = mode
        if mode == "latest":
            self.hook.patch(self.name, self.namespace, {"spec": {"predictor": {"canaryTrafficPercent": 100}}})
            return self.wait(context, self.probe(100), {**details, "canary_traffic_percent": 100, "storage_uri": status["storage_uri"]})
        if mode == "traffic":
            if not has_previous_revision:
                raise KServeError(f"{self.resource}: no previous revision in the traffic split to roll back to",
                                  name=self.name, namespace=self.namespace, reason="invalid")
            self.hook.patch(self.name, self.namespace, {"spec": {"predictor": {"canaryTrafficPercent": 0}}})
            return self.wait(context, self.probe(0), {**details, "canary_traffic_percent": 0})
        if not previous_uri:
            raise KServeError(f"{self.resource}: no previous storage URI recorded "
                              f"(annotation {PREVIOUS_STORAGE_URI_ANNOTATION}) to roll back to",
                              name=self.name, namespace=self.namespace, reason="invalid")
        self.hook.patch(self.name, self.namespace, {
            "metadata": {"annotations": {PREVIOUS_STORAGE_URI_ANNOTATION: status["storage_uri"]}},
            "spec": {"predictor": {"canaryTrafficPercent": 100, "model": {"storageUri": previous_uri}}}})
        return self.wait(context, self.probe(100), {**details, "canary_traffic_percent": 100,
                                "rolled_back_from": status["storage_uri"], "storage_uri": previous_uri})


class KServeSmokeTestInferenceServiceOperator(_KServeOperator):
    """POST a few rows to the service (V2 Open Inference Protocol or V1) and check the answer.

    Fails (:class:`KServeError`, reason ``smoke``) unless there is one prediction per row within
    ``max_latency_ms``. Returns ``{"name", "namespace", "url", "rows", "latency_ms", "predictions"}``
    (at most 10 predictions).
    """

    template_fields: Sequence[str] = (*_KServeOperator.template_fields, "rows", "columns", "url")
    template_fields_renderers = {"rows": "json"}

    def __init__(self, *, name: str, rows: list[list[Any]], columns: list[str] | None = None,
                 protocol_version: str = "v2", model_name: str | None = None, url: str | None = None,
                 max_latency_ms: float | None = None, request_timeout: float = 30,
                 headers: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.rows = rows
        self.columns = columns
        self.protocol_version = protocol_version
        self.model_name = model_name
        self.url = url
        self.max_latency_ms = max_latency_ms
        self.request_timeout = request_timeout
        self.headers = headers

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops_provider.core.kserve import smoke_test

        url = self.url or self.hook.status(self.name, self.namespace)["url"]
        if not url:
            raise KServeError(f"{self.resource} reports no URL yet", name=self.name, namespace=self.namespace,
                              reason="smoke")
        result = smoke_test(url, self.model_name or self.name, [list(r) for r in self.rows], columns=self.columns,
                            protocol=self.protocol_version, timeout=self.request_timeout,
                            max_latency_ms=self.max_latency_ms, headers=self.headers)
        return {"name": self.name, "namespace": self.namespace, **result}


class KServeVerifyInferenceServiceOperator(DeploymentVerifyOperator):
    """Smoke test and bake of the URL a KServe deploy returned (V2 Open Inference Protocol or V1).

    Returns ``{"url", "requests", "errors", "error_rate", "p95_latency_ms", "rows"}``.
    """

    template_fields: Sequence[str] = (*DeploymentVerifyOperator.template_fields, "protocol_version")
    failure = KServeError
    ui_color = "#7fd3c3"

    def __init__(self, *, protocol_version: str = "v2", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.protocol_version = protocol_version

    def result_head(self, deployment: dict[str, Any]) -> dict[str, Any]:
        return {"url": deployment.get("url")}

    def request_sender(self, deployment: dict[str, Any], rows: list[list[Any]],
                       columns: list[str]) -> Callable[[], float]:
        from airflow_mlops_provider.core.kserve import smoke_test

        url, name = deployment.get("url"), str(deployment.get("name"))
        if not url:
            raise KServeError(f"InferenceService {deployment.get('namespace')}/{name} reports no URL to verify",
                              name=name, namespace=deployment.get("namespace"), reason="smoke")
        timeout = float(self.request_timeout)
        return lambda: smoke_test(url, name, rows, columns=columns, protocol=str(self.protocol_version),
                                  timeout=timeout)["latency_ms"]

    def prediction_sender(self, deployment: dict[str, Any], rows: list[list[Any]], columns: list[str], *,
                          role: str, champion: str) -> Callable[[], list[Any]]:
        """The candidate through the service URL (the canary's revision answers the check's requests, as
        they carry no traffic tag); the champion from its registered model."""
        from airflow_mlops_provider.core.kserve import smoke_test

        if role == "champion":
            return super().prediction_sender(deployment, rows, columns, role=role, champion=champion)
        url, name = deployment.get("url"), str(deployment.get("name"))
        timeout = float(self.request_timeout)
        return lambda: smoke_test(str(url), name, rows, columns=columns, protocol=str(self.protocol_version),
                                  timeout=timeout, max_predictions=None)["predictions"]
