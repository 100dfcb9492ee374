"""The ``kserve`` deploy target: a KServe InferenceService on Kubernetes (canary share, verify, all traffic).

The wait: Ready on the latest created revision with the traffic split asked for
(:class:`InferenceServiceProbe`). What serves where: the InferenceServices of the Kubernetes
connection's namespace that the deploy operator annotated with the model. The operators are in
:mod:`airflow_mlops_provider.operators.deploy_kserve`.
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
from airflow_mlops_provider.exceptions import DeploymentRolledBack, KServeError

DEFAULT_CONN_ID = "kubernetes_default"


@dataclass
class InferenceServiceProbe(DeployProbe):
    """Done when KServe reports Ready on the latest revision with ``expected_canary_percent`` of
    the traffic (None: 100; 0: the previous revision serves everything); failed on a terminal
    failure (model failed to load, invalid spec). Status: ``core.kserve.parse_status``."""

    name: str
    namespace: str = "default"
    kubernetes_conn_id: str = DEFAULT_CONN_ID
    expected_canary_percent: int | None = None
    error = KServeError

    @cached_property
    def _hook(self) -> Any:
        from airflow_mlops_provider.hooks.kserve import KServeHook

        return KServeHook(kubernetes_conn_id=self.kubernetes_conn_id)

    def read(self) -> dict[str, Any]:
        return self._hook.status(self.name, self.namespace)

    def classify(self, status: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        from airflow_mlops_provider.core.kserve import is_serving

        if is_serving(status, self.expected_canary_percent):
            return DONE, {}
        if status.get("failed"):
            return FAILED, {"message": status.get("failure_message")}
        return None

    @property
    def resource(self) -> str:
        return f"InferenceService {self.namespace}/{self.name}"

    def context(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace}

    def failure(self, status: dict[str, Any], payload: dict[str, Any], details: dict[str, Any]) -> Exception:
        message = (f"{self.resource}: KServe reports a terminal failure "
                   f"({status.get('failure_reason')}): {status.get('failure_message')}")
        context = {**self.context(), "reason": "failed", "failure_reason": status.get("failure_reason")}
        if status.get("latest_ready_revision") or (status.get("traffic") or {}).get("previous"):
            # KServe keeps the last good revision serving: the platform rolled the canary back.
            return DeploymentRolledBack(message + "; traffic stays on the previous revision", **context)
        return KServeError(message, **context)

    def timeout_error(self, status: dict[str, Any], timeout: float, details: dict[str, Any]) -> Exception:
        conditions = [c for c in status.get("conditions") or [] if c.get("status") != "True"]
        why = "; ".join(f"{c['type']}={c['status']} ({c.get('reason') or ''}: {c.get('message') or ''})"
                        for c in conditions[:3]) or "no failing condition reported"
        traffic = status.get("traffic") or {}
        expected = self.expected_canary_percent
        return KServeError(
            f"{self.resource} did not become Ready with {expected if expected is not None else 100}% on the "
            f"latest revision within {float(timeout):g}s (ready={status.get('ready')}, latest revision "
            f"traffic={traffic.get('latest')}%): {why}", **self.context(), reason="timeout", timeout=timeout)


def serving(model_name: str, *, kubernetes_conn_id: str = DEFAULT_CONN_ID,
            namespace: str | None = None) -> list[dict[str, Any]]:
    """The InferenceServices annotated with ``model_name`` (``mlops.airflow.apache.org/model``) in
    ``namespace`` (None: the connection's): the latest revision with its share of traffic, and the
    previous one while it still takes some."""
    from airflow_mlops_provider.core.kserve import (
        MODEL_ANNOTATION,
        PREVIOUS_STORAGE_URI_ANNOTATION,
        parse_status,
    )
    from airflow_mlops_provider.hooks.kserve import KServeHook

    _check_configured(kubernetes_conn_id)
    hook = KServeHook(kubernetes_conn_id=kubernetes_conn_id)
    rows = []
    for obj in hook.list(namespace):
        notes = (obj.get("metadata") or {}).get("annotations") or {}
        model, _, version = str(notes.get(MODEL_ANNOTATION) or "").partition("/")
        if model != model_name:
            continue
        status = parse_status(obj)
        traffic = status["traffic"]
        resource = f"{status['namespace']}/{status['name']}"
        latest = traffic["latest"] if traffic["revisions"] else 100
        rows.append(serving_row("kserve", resource=resource, version=version or None, url=status["url"],
                                role="live" if latest >= 100 else "canary", traffic_percent=latest,
                                ready=status["ready"], storage_uri=status["storage_uri"]))
        if traffic["revisions"] and traffic["previous"]:
            rows.append(serving_row("kserve", resource=resource, version=None, url=status["url"], role="previous",
                                    traffic_percent=traffic["previous"],
                                    storage_uri=notes.get(PREVIOUS_STORAGE_URI_ANNOTATION)))
    return rows


def _check_configured(conn_id: str) -> None:
    """Refuse at once (without importing the Kubernetes client) when nothing says where the cluster is:
    no connection ``conn_id``, no in-cluster service account, no kubeconfig."""
    import os
    from pathlib import Path

    from airflow_mlops_provider.version_compat import BaseHook

    try:
        BaseHook.get_connection(conn_id)
        return
    except Exception:  # noqa: BLE001 - AirflowNotFoundException: fall back as KubernetesHook does
        pass
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if os.environ.get("KUBERNETES_SERVICE_HOST") or any(Path(p).is_file() for p in kubeconfig.split(os.pathsep)):
        return
    raise KServeError(f"no Kubernetes connection {conn_id!r}, no in-cluster config and no kubeconfig "
                      f"({kubeconfig}): the cluster's InferenceServices cannot be listed", reason="invalid",
                      conn_id=conn_id)


def lane(*, config: str, model_name: Any, model_version: Any, challenger: Any) -> DeployLane:
    """Canary → verify → traffic 100%; rollback sends serving back to ``@champion``."""
    from airflow_mlops_provider.operators.deploy import config_field, optional_config_field
    from airflow_mlops_provider.operators.deploy_kserve import (
        KServeDeployInferenceServiceOperator,
        KServePromoteInferenceServiceOperator,
        KServeRollbackInferenceServiceOperator,
        KServeVerifyInferenceServiceOperator,
    )

    def cfg(key: str) -> str:
        return config_field(config, key)

    service = {"name": cfg("name"), "namespace": cfg("namespace"), "timeout": cfg("ready_timeout_s"),
               "poll_interval": cfg("poll_interval_s")}
    deploy = KServeDeployInferenceServiceOperator(
        task_id="deploy", model_name=model_name, model_version=model_version,
        canary_traffic_percent=cfg("canary_traffic_percent"), logger_url=optional_config_field(config, "logger_url"),
        **service)
    verify = KServeVerifyInferenceServiceOperator.from_config(config, deployment=deploy.output, challenger=challenger)
    promote_traffic = KServePromoteInferenceServiceOperator(task_id="promote_traffic", **service)
    rollback = KServeRollbackInferenceServiceOperator(task_id="rollback", model_name=model_name, alias="champion",
                                                      **service)
    return DeployLane(deploy=deploy, verify=verify, rollback=rollback, promote_traffic=promote_traffic)


TARGET = DeployTarget(
    name="kserve",
    description="KServe InferenceService on Kubernetes: canary share, verify, then all traffic",
    resource_field="name",  # the builders name the InferenceService after the model
    defaults={"namespace": "default", "canary_traffic_percent": 10, "logger_url": "",
              "ready_timeout_s": 900, "poll_interval_s": 10, **VERIFY_DEFAULTS},
    schema={
        "name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string", "minLength": 1},
        "canary_traffic_percent": {"type": "integer", "minimum": 1, "maximum": 100},
        "logger_url": {"type": "string", "pattern": "^(https?://.+)?$",
                       "description": "KServe inference logger: requests and responses as CloudEvents to this "
                                      "sink (what online_monitoring_dag reads); empty: off"},
        "ready_timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "poll_interval_s": {"type": "number", "exclusiveMinimum": 0},
        **VERIFY_SCHEMA,
    },
    lane=lane,
    serving=serving,
    error=KServeError,
)
