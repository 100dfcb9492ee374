"""KServeHook: KServe InferenceServices through the cncf-kubernetes provider's ``KubernetesHook``.

The Kubernetes connection (type ``kubernetes``: ``in_cluster``, ``kube_config_path`` or
``kube_config`` in its extras, optional ``namespace`` and ``cluster_context``) is read by
``KubernetesHook``; this hook adds idempotent apply and KServe-aware status on top of its
custom-objects client.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.core.kserve import GROUP, PLURAL, VERSION, parse_status
from airflow_mlops_provider.exceptions import KServeError
from airflow_mlops_provider.version_compat import BaseHook

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook


class KServeHook(BaseHook):
    """Create, patch, read and delete KServe ``v1beta1`` InferenceServices.

    :param kubernetes_conn_id: the Airflow Kubernetes connection (``kubernetes_default``: when it
        does not exist, KubernetesHook falls back to in-cluster config or ``~/.kube/config``).
    :param conflict_retries: how often a 409 on patch (a concurrent writer) is retried.
    """

    conn_name_attr = "kubernetes_conn_id"
    default_conn_name = "kubernetes_default"
    conn_type = "kubernetes"
    hook_name = "KServe"

    def __init__(self, kubernetes_conn_id: str = default_conn_name, conflict_retries: int = 5,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.conflict_retries = conflict_retries

    @cached_property
    def kube_hook(self) -> KubernetesHook:
        from airflow_mlops_provider.core.optional import require

        module = require("airflow.providers.cncf.kubernetes.hooks.kubernetes")
        return module.KubernetesHook(kubernetes_conn_id=self.kubernetes_conn_id)

    def get_conn(self) -> Any:
        """The ``kubernetes.client.CustomObjectsApi`` bound to this connection (built once)."""
        return self.kube_hook.custom_object_client

    def test_connection(self) -> tuple[bool, str]:
        return self.kube_hook.test_connection()

    def namespace(self, namespace: str | None) -> str:
        return namespace or self.kube_hook.get_namespace() or "default"

    def _error(self, action: str, name: str, namespace: str, err: Exception) -> KServeError:
        status = getattr(err, "status", None)
        reason = getattr(err, "reason", None) or type(err).__name__
        body = str(getattr(err, "body", "") or err)[:500]
        return KServeError(f"cannot {action} InferenceService {namespace}/{name}: HTTP {status} {reason}: {body}",
                           name=name, namespace=namespace, reason="api", status=status, action=action)

    # -- API -------------------------------------------------------------------------------
    def get(self, name: str, namespace: str | None = None, *, required: bool = True) -> dict[str, Any] | None:
        """The InferenceService object; None when missing and not ``required``."""
        from kubernetes.client.exceptions import ApiException

        ns = self.namespace(namespace)
        try:
            return self.get_conn().get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        except ApiException as err:
            if err.status == 404 and not required:
                return None
            raise self._error("read", name, ns, err) from err

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The InferenceServices of ``namespace`` (None: the connection's, else ``default``)."""
        from kubernetes.client.exceptions import ApiException

        ns = self.namespace(namespace)
        try:
            listed = self.get_conn().list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
        except ApiException as err:
            raise self._error("list", "*", ns, err) from err
        return list((listed or {}).get("items") or [])

    def status(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """:func:`parse_status` of the live object."""
        return parse_status(self.get(name, namespace))

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create the InferenceService, or merge-patch it when it exists (idempotent).

        A conflict on patch (someone else wrote in between) is retried, so callers never see 409.
        Merge-patch semantics: fields absent from ``manifest`` keep their live values; set them to
        None to remove them.
        Returns ``{"action": "created" | "patched", "object": <the stored object>}``.
        """
        from kubernetes.client.exceptions import ApiException

        meta = manifest.get("metadata") or {}
        name, ns = meta.get("name"), self.namespace(meta.get("namespace"))
        if not name:
            raise KServeError("InferenceService manifest has no metadata.name", namespace=ns, reason="invalid")
        manifest = {**manifest, "metadata": {**meta, "namespace": ns}}
        api = self.get_conn()
        try:
            created = api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest)
            self.log.info("Created InferenceService %s/%s", ns, name)
            return {"action": "created", "object": created}
        except ApiException as err:
            if err.status != 409:
                raise self._error("create", name, ns, err) from err
        patch = {"metadata": {k: v for k, v in meta.items() if k in ("labels", "annotations")},
                 "spec": manifest.get("spec") or {}}
        return {"action": "patched", "object": self.patch(name, ns, patch)}

    def patch(self, name: str, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """JSON merge-patch (RFC 7386: ``None`` removes a key); 409 conflicts are retried."""
        from kubernetes.client.exceptions import ApiException

        ns = self.namespace(namespace)
        api = self.get_conn()
        for attempt in range(self.conflict_retries + 1):
            try:
                patched = api.patch_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL, name, body, _content_type="application/merge-patch+json")
                self.log.info("Patched InferenceService %s/%s", ns, name)
                return patched
            except ApiException as err:
                if err.status != 409 or attempt == self.conflict_retries:
                    raise self._error("patch", name, ns, err) from err
                self.log.warning("Conflict patching InferenceService %s/%s; retrying (%d)", ns, name, attempt + 1)
                time.sleep(min(0.2 * 2**attempt, 5.0))
        raise AssertionError("unreachable")

    def delete(self, name: str, namespace: str | None = None, *, missing_ok: bool = True) -> bool:
        """Delete the InferenceService; False when it did not exist (and ``missing_ok``)."""
        from kubernetes.client.exceptions import ApiException

        ns = self.namespace(namespace)
        try:
            self.get_conn().delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        except ApiException as err:
            if err.status == 404 and missing_ok:
                return False
            raise self._error("delete", name, ns, err) from err
        self.log.info("Deleted InferenceService %s/%s", ns, name)
        return True
