"""Deploy MLflow models to KServe as a canary, verify, then promote or roll back.

``KServeDeployInferenceServiceOperator`` applies the InferenceService with
``canaryTrafficPercent`` and waits (deferrable) until KServe reports Ready with that split;
``KServeSmokeTestInferenceServiceOperator`` posts rows to the service;
``KServePromoteInferenceServiceOperator`` moves the canary to 100%;
``KServeRollbackInferenceServiceOperator`` sends traffic back to the previous revision, or
redeploys the previous storage URI the deploy operator recorded in an annotation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.configuration import conf

from airflow_mlops_provider.core.kserve import (
    MODEL_ANNOTATION,
    PREVIOUS_STORAGE_URI_ANNOTATION,
    InferenceServiceSpec,
    InferenceServiceSpecError,
    is_serving,
    load_schema,
    parse_status,
    validate_manifest,
)
from airflow_mlops_provider.exceptions import DeploymentRolledBack, KServeError
from airflow_mlops_provider.hooks.kserve import KServeHook
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.links.kserve import KServeInferenceServiceLink
from airflow_mlops_provider.triggers.kserve import KServeInferenceServiceReadyTrigger
from airflow_mlops_provider.version_compat import BaseOperator


def version_storage_uri(mlflow: MlflowHook, model_name: str, version: str) -> str:
    """The ``storageUri`` KServe reads a registered version from (its artifact location)."""
    uri = mlflow.client.get_model_version_download_uri(model_name, version)
    if "://" not in uri:  # a bare local path from a file store
        from pathlib import Path

        uri = Path(uri).resolve().as_uri()
    return uri


class _KServeOperator(BaseOperator):
    """Shared wait: already serving → return; else poll (sync) or defer to the trigger."""

    template_fields: Sequence[str] = ("name", "namespace", "kubernetes_conn_id", "timeout", "poll_interval")
    operator_extra_links = (KServeInferenceServiceLink(),)
    ui_color = "#7fd3c3"

    def __init__(self, *, name: str, namespace: str = "default",
                 kubernetes_conn_id: str = KServeHook.default_conn_name, wait_for_completion: bool = True,
                 timeout: float = 900, poll_interval: float = 10,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.wait_for_completion = wait_for_completion
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> KServeHook:
        return KServeHook(kubernetes_conn_id=self.kubernetes_conn_id)

    @property
    def _where(self) -> str:
        return f"InferenceService {self.namespace}/{self.name}"

    @staticmethod
    def _result(details: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """The XCom: same keys on the synchronous and the deferred path."""
        traffic = status.get("traffic") or {}
        return {**details, "url": status.get("url"), "ready": bool(status.get("ready", True)),
                "latest_ready_revision": status.get("latest_ready_revision"),
                "storage_uri": status.get("storage_uri") or details.get("storage_uri"),
                "traffic": {"latest": traffic.get("latest"), "previous": traffic.get("previous"),
                            "revisions": traffic.get("revisions", [])}}

    @staticmethod
    def _linked(context: Any, result: dict[str, Any]) -> dict[str, Any]:
        """Keep the service URL for the "InferenceService" extra link."""
        if result.get("url"):
            KServeInferenceServiceLink.persist(context, result["url"])
        return result

    def _wait(self, expected: int | None, details: dict[str, Any]) -> dict[str, Any]:
        self.timeout, self.poll_interval = float(self.timeout), float(self.poll_interval)  # may be templated
        status = self.hook.status(self.name, self.namespace)
        if is_serving(status, expected):
            return self._result(details, status)
        if status["failed"]:
            self._raise_failed(status)
        if not self.wait_for_completion:
            return {**self._result(details, status), "ready": False}
        if self.deferrable:
            self.defer(
                trigger=KServeInferenceServiceReadyTrigger(
                    name=self.name, namespace=self.namespace, kubernetes_conn_id=self.kubernetes_conn_id,
                    expected_canary_percent=expected, poll_interval=self.poll_interval,
                    deadline=time.time() + self.timeout, details=details),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout + 60),
            )
        deadline = time.monotonic() + self.timeout
        while True:
            if time.monotonic() >= deadline:
                self._raise_timeout(expected, status)
            time.sleep(self.poll_interval)
            status = self.hook.status(self.name, self.namespace)
            if is_serving(status, expected):
                return self._result(details, status)
            if status["failed"]:
                self._raise_failed(status)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        details, expected = event.get("details") or {}, event.get("expected_canary_percent")
        kind = event.get("status")
        if kind == "ready":
            return self._linked(context, self._result(details, {**event, "ready": True}))
        if kind == "failed":
            self._raise_failed({**event, "failure_message": event.get("message"),
                                "failure_reason": event.get("reason")})
        if kind == "timeout":
            self._raise_timeout(expected, event)
        raise KServeError(f"cannot watch {self._where}: {event.get('message')}", name=self.name,
                          namespace=self.namespace, reason="api")

    def _raise_timeout(self, expected: int | None, status: dict[str, Any]) -> None:
        conditions = [c for c in status.get("conditions") or [] if c.get("status") != "True"]
        why = "; ".join(f"{c['type']}={c['status']} ({c.get('reason') or ''}: {c.get('message') or ''})"
                        for c in conditions[:3]) or "no failing condition reported"
        traffic = status.get("traffic") or {}
        raise KServeError(
            f"{self._where} did not become Ready with {expected if expected is not None else 100}% on the "
            f"latest revision within {float(self.timeout):g}s (ready={status.get('ready')}, latest revision "
            f"traffic={traffic.get('latest')}%): {why}",
            name=self.name, namespace=self.namespace, reason="timeout", timeout=self.timeout)

    def _raise_failed(self, status: dict[str, Any]) -> None:
        message = (f"{self._where}: KServe reports a terminal failure "
                   f"({status.get('failure_reason')}): {status.get('failure_message')}")
        context = {"name": self.name, "namespace": self.namespace, "reason": "failed",
                   "failure_reason": status.get("failure_reason")}
        if status.get("latest_ready_revision") or (status.get("traffic") or {}).get("previous"):
            # KServe keeps the last good revision serving: the platform rolled the canary back.
            raise DeploymentRolledBack(message + "; traffic stays on the previous revision", **context)
        raise KServeError(message, **context)


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
                                      "annotations", "runtime", "service_account", "mlflow_conn_id")
    template_fields_renderers = {"predictor_resources": "json", "labels": "json", "annotations": "json"}

    def __init__(self, *, name: str, model_name: str | None = None, model_version: str | int | None = None,
                 storage_uri: str | None = None, canary_traffic_percent: int | None = 10,
                 protocol_version: str = "v2", runtime: str | None = None, service_account: str | None = None,
                 predictor_resources: dict[str, dict[str, str]] | None = None, min_replicas: int | None = 1,
                 max_replicas: int | None = None, labels: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None, schema_path: str | None = None,
                 mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
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
        self.mlflow_conn_id = mlflow_conn_id

    def resolve_storage_uri(self) -> tuple[str, str | None]:
        """(storage URI, model version) from the arguments or the MLflow registry."""
        if self.storage_uri:
            return str(self.storage_uri), (str(self.model_version) if self.model_version not in (None, "") else None)
        if not self.model_name or self.model_version in (None, ""):
            raise InferenceServiceSpecError(
                f"{self._where}: pass storage_uri, or model_name and model_version",
                field="storage_uri", name=self.name, namespace=self.namespace, reason="invalid")
        mlflow = MlflowHook(mlflow_conn_id=self.mlflow_conn_id)
        version = str(self.model_version)
        if version.startswith("@"):
            version = str(mlflow.get_version_by_alias(self.model_name, version[1:]).version)
        uri = version_storage_uri(mlflow, self.model_name, version)
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
                f"{self._where}: MLflow model {self.model_name!r} version {version} has no model artifacts "
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
            labels=dict(self.labels or {}), annotations=annotations)
        manifest = spec.to_manifest()
        if self.schema_path:
            validate_manifest(manifest, load_schema(self.schema_path))
        applied = self.hook.apply(manifest)
        details = {"name": self.name, "namespace": self.namespace, "action": applied["action"],
                   "model_name": self.model_name, "model_version": version, "storage_uri": storage_uri,
                   "previous_storage_uri": previous, "canary_traffic_percent": spec.canary_traffic_percent}
        return self._linked(context, self._wait(spec.canary_traffic_percent, details))


class KServePromoteInferenceServiceOperator(_KServeOperator):
    """Send all traffic to the latest revision (canary → 100%) and wait until KServe reports it.

    Returns the deploy operator's shape with ``action: "promoted"``.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        self.hook.patch(self.name, self.namespace, {"spec": {"predictor": {"canaryTrafficPercent": 100}}})
        details = {"name": self.name, "namespace": self.namespace, "action": "promoted",
                   "canary_traffic_percent": 100}
        return self._wait(100, details)


class KServeRollbackInferenceServiceOperator(_KServeOperator):
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

    template_fields: Sequence[str] = (*_KServeOperator.template_fields, "mode", "model_name", "alias",
                                      "mlflow_conn_id")

    def __init__(self, *, name: str, mode: str = "auto", model_name: str | None = None, alias: str = "champion",
                 mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.mode = mode
        self.model_name = model_name
        self.alias = alias
        self.mlflow_conn_id = mlflow_conn_id

    def _alias_target(self) -> tuple[str, str] | None:
        """(storage URI, version) of the model the alias names now, or None when unset/not asked."""
        if not self.model_name:
            return None
        mlflow = MlflowHook(mlflow_conn_id=self.mlflow_conn_id)
        mv = mlflow.get_version_by_alias(self.model_name, self.alias, required=False)
        if mv is None:
            self.log.warning("%s has no @%s: rolling back to the recorded previous storage URI",
                             self.model_name, self.alias)
            return None
        return version_storage_uri(mlflow, self.model_name, str(mv.version)), str(mv.version)

    def execute(self, context: Any) -> dict[str, Any]:
        if self.mode not in ("auto", "traffic", "storage_uri"):
            raise InferenceServiceSpecError(f"{self._where}: rollback mode {self.mode!r} is not one of "
                                            f"'auto', 'traffic', 'storage_uri'", field="mode", reason="invalid")
        from airflow.sdk.exceptions import AirflowSkipException

        obj = self.hook.get(self.name, self.namespace, required=False)
        if obj is None:
            raise AirflowSkipException(f"{self._where} does not exist: nothing was deployed, nothing to roll back")

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
            return self._wait(100, {**details, "canary_traffic_percent": 100, "storage_uri": status["storage_uri"]})
        if mode == "traffic":
            if not has_previous_revision:
                raise KServeError(f"{self._where}: no previous revision in the traffic split to roll back to",
                                  name=self.name, namespace=self.namespace, reason="invalid")
            self.hook.patch(self.name, self.namespace, {"spec": {"predictor": {"canaryTrafficPercent": 0}}})
            return self._wait(0, {**details, "canary_traffic_percent": 0})
        if not previous_uri:
            raise KServeError(f"{self._where}: no previous storage URI recorded "
                              f"(annotation {PREVIOUS_STORAGE_URI_ANNOTATION}) to roll back to",
                              name=self.name, namespace=self.namespace, reason="invalid")
        self.hook.patch(self.name, self.namespace, {
            "metadata": {"annotations": {PREVIOUS_STORAGE_URI_ANNOTATION: status["storage_uri"]}},
            "spec": {"predictor": {"canaryTrafficPercent": 100, "model": {"storageUri": previous_uri}}}})
        return self._wait(100, {**details, "canary_traffic_percent": 100,
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
            raise KServeError(f"{self._where} reports no URL yet", name=self.name, namespace=self.namespace,
                              reason="smoke")
        result = smoke_test(url, self.model_name or self.name, [list(r) for r in self.rows], columns=self.columns,
                            protocol=self.protocol_version, timeout=self.request_timeout,
                            max_latency_ms=self.max_latency_ms, headers=self.headers)
        return {"name": self.name, "namespace": self.namespace, **result}
