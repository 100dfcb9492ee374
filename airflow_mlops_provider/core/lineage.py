"""OpenLineage dataset names for what the provider reads and writes (no Airflow, no OpenLineage import).

The lineage graph reads: training data (DVC version) → logged model (the MLflow run's model) →
registered model version → scored partition (batch) or serving endpoint (deploy). Every task that
touches one of these names it through the functions below, so the output of one task is, byte for
byte, the input of the next. Naming follows https://openlineage.io/docs/spec/naming where the spec
has an entry (local files: ``file`` + absolute path; S3: ``s3://<bucket>`` + key; GCS:
``gs://<bucket>`` + key); MLflow, DVC over git and serving endpoints have none, so:

===================== ============================================= =====================================
dataset               namespace                                     name
===================== ============================================= =====================================
DVC-tracked file      ``file`` (local repo) / repo URL (git remote) repo path + file / file in the repo
logged model (run)    MLflow tracking URI                           ``logged_models/<model_id>`` or
                                                                    ``runs/<run_id>/<artifact path>``
model version         MLflow registry URI                           ``models/<name>/versions/<n>``
alias                 MLflow registry URI                           ``models/<name>/aliases/<alias>``
SageMaker endpoint    ``sagemaker://<region>``                      endpoint name
KServe service        ``kserve://<kubernetes namespace>``           InferenceService name
HTTP scoring server   ``<scheme>://<host>:<port>``                  path (``/invocations``)
===================== ============================================= =====================================

URIs never carry credentials into a namespace: user info, query and fragment are dropped.
Facets are plain dicts here, keyed by the OpenLineage facet name; ``hooks/lineage.py`` turns
them into OpenLineage objects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: Custom facet keys (OpenLineage asks custom facets to carry a producer prefix).
DVC_FACET = "mlops_dvc"
MODEL_FACET = "mlops_model"
#: Standard facet keys.
VERSION_FACET = "version"
TYPE_FACET = "datasetType"
SYMLINKS_FACET = "symlinks"


@dataclass(frozen=True)
class LineageDataset:
    """One OpenLineage dataset: ``namespace`` + ``name``, and facets as plain JSON-safe dicts."""

    namespace: str
    name: str
    facets: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


def without_credentials(uri: str) -> str:
    """``uri`` without user info, query and fragment; a plain path is returned unchanged."""
    uri = str(uri).strip()
    if "://" not in uri:
        return uri
    # By hand, not urlunsplit: that turns ``sqlite:////abs/path.db`` into ``sqlite://abs/path.db``.
    scheme, rest = uri.split("://", 1)
    authority, slash, path = rest.partition("/")
    path = path.split("#", 1)[0].split("?", 1)[0]
    authority = authority.split("#", 1)[0].split("?", 1)[0]
    return f"{scheme}://{authority.rsplit('@', 1)[-1]}{slash}{path}"


def _scp_to_ssh(uri: str) -> str:
    """``git@host:org/repo.git`` (scp syntax) as ``ssh://host/org/repo.git``."""
    if "://" in uri or ":" not in uri or uri.startswith("/"):
        return uri
    host, _, path = uri.partition(":")
    return f"ssh://{host.rsplit('@', 1)[-1]}/{path.lstrip('/')}"


# -- storage ------------------------------------------------------------------------------------
def storage_dataset(path_or_uri: str, **facets: dict[str, Any]) -> LineageDataset:
    """A file or object: ``file`` + absolute path, ``s3://bucket`` + key, ``gs://bucket`` + key.

    Other schemes: ``<scheme>://<host>`` + path without its leading slash, as the OpenLineage
    provider names object-storage URIs.
    """
    raw = str(path_or_uri).strip()
    if "://" not in raw or raw.startswith("file://"):
        path = raw[len("file://"):] if raw.startswith("file://") else raw
        # Absolute, normalised, but symlinks kept: the name must match what other tasks report.
        return LineageDataset("file", os.path.normpath(os.path.abspath(os.path.expanduser(path))), dict(facets))
    parts = urlsplit(raw)
    scheme = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}.get(parts.scheme, parts.scheme)
    host = parts.netloc.rsplit("@", 1)[-1]
    return LineageDataset(f"{scheme}://{host}", parts.path.lstrip("/") or "/", dict(facets))


def storage_uri(dataset: LineageDataset) -> str:
    """The Airflow asset URI of a storage dataset (what the hook lineage collector takes)."""
    if dataset.namespace == "file":
        return f"file://{dataset.name}"
    return f"{dataset.namespace}/{dataset.name.lstrip('/')}"


# -- DVC --------------------------------------------------------------------------------------
def dvc_facet(data_version: dict[str, Any]) -> dict[str, Any]:
    """The ``mlops_dvc`` facet: which file, at which git rev/commit, with which DVC md5."""
    facet = {key: str(data_version[key]) for key in ("path", "rev", "commit", "md5", "id")
             if data_version.get(key) not in (None, "")}
    if data_version.get("repo"):
        facet["repo"] = without_credentials(_scp_to_ssh(str(data_version["repo"])))
    return facet


def dvc_dataset(data_version: dict[str, Any]) -> LineageDataset | None:
    """The DVC-tracked file a data version names, versioned by its DVC md5; None without repo/path.

    A local repository's file is a local file (``file`` + absolute path in the work tree); a
    file in a remote git repository is named by the repository URL (without credentials) and
    its path inside it.
    """
    if not isinstance(data_version, dict):
        return None
    repo, path = data_version.get("repo"), data_version.get("path")
    if not repo or not path:
        return None
    repo = _scp_to_ssh(str(repo))
    facets: dict[str, dict[str, Any]] = {DVC_FACET: dvc_facet(data_version)}
    if data_version.get("md5"):
        facets[VERSION_FACET] = {"datasetVersion": str(data_version["md5"])}
    if "://" not in repo or repo.startswith("file://"):
        local = storage_dataset(os.path.join(repo.removeprefix("file://"), str(path)))
        return LineageDataset(local.namespace, local.name, facets)
    return LineageDataset(without_credentials(repo).rstrip("/"), str(path).lstrip("/"), facets)


def training_data(data_path: str, data_version: dict[str, Any] | None) -> LineageDataset:
    """What a training task read: the DVC-tracked file when ``data_path`` is its local copy.

    The copy under ``MLOPS_HOME/data/versions/<md5>/`` is one path per version; the DVC file is
    one dataset whose versions OpenLineage tracks, so the graph keeps one node for the training
    data. The copy is kept as a ``symlinks`` alias. Any other file (a validated subset, a file
    never versioned) is reported as itself, with the DVC facet when the version is known.
    """
    read = storage_dataset(data_path)
    dvc = dvc_dataset(data_version) if data_version else None
    if dvc is None:
        return read
    local = data_version.get("local_path") if isinstance(data_version, dict) else None
    if local and storage_dataset(local).key == read.key:
        symlink = {"identifiers": [{"namespace": read.namespace, "name": read.name, "type": "FILE"}]}
        return LineageDataset(dvc.namespace, dvc.name, {**dvc.facets, SYMLINKS_FACET: symlink})
    return LineageDataset(read.namespace, read.name, {DVC_FACET: dvc.facets[DVC_FACET]})


# -- MLflow -----------------------------------------------------------------------------------
def mlflow_namespace(uri: str) -> str:
    """An MLflow tracking or registry URI as a namespace: no credentials, no trailing slash."""
    return without_credentials(uri).rstrip("/") or "mlflow"


def _model_type() -> dict[str, Any]:
    return {"datasetType": "MODEL"}


def logged_model_dataset(tracking_uri: str, model_uri: str, run_id: str | None = None,
                         **info: Any) -> LineageDataset:
    """The model an MLflow run logged: ``logged_models/<id>`` (``models:/m-…``) or ``runs/<run>/<path>``."""
    uri = str(model_uri)
    if uri.startswith("models:/m-"):
        name = "logged_models/" + uri.removeprefix("models:/").strip("/")
    elif uri.startswith("runs:/"):
        name = "runs/" + uri.removeprefix("runs:/").strip("/")
    elif run_id:
        name = f"runs/{run_id}/model"
    else:
        name = "artifacts/" + without_credentials(uri).split("://", 1)[-1].lstrip("/")
    model = {"model_uri": without_credentials(uri), **({"run_id": str(run_id)} if run_id else {}),
             **{k: str(v) for k, v in info.items() if v not in (None, "")}}
    return LineageDataset(mlflow_namespace(tracking_uri), name, {TYPE_FACET: _model_type(), MODEL_FACET: model})


def model_version_dataset(registry_uri: str, model_name: str, version: str | int, run_id: str | None = None,
                          **info: Any) -> LineageDataset:
    """A registered model version: ``models/<name>/versions/<n>``, versioned by its number."""
    model = {"name": str(model_name), "version": str(version), **({"run_id": str(run_id)} if run_id else {}),
             **{k: (without_credentials(v) if k == "source" else str(v)) for k, v in info.items()
                if v not in (None, "")}}
    return LineageDataset(mlflow_namespace(registry_uri), f"models/{model_name}/versions/{version}",
                          {TYPE_FACET: _model_type(), VERSION_FACET: {"datasetVersion": str(version)},
                           MODEL_FACET: model})


def alias_dataset(registry_uri: str, model_name: str, alias: str, version: str | int) -> LineageDataset:
    """An alias (``@champion``) of a registered model, versioned by the version it names now."""
    return LineageDataset(mlflow_namespace(registry_uri), f"models/{model_name}/aliases/{alias}",
                          {TYPE_FACET: _model_type(), VERSION_FACET: {"datasetVersion": str(version)},
                           MODEL_FACET: {"name": str(model_name), "alias": str(alias), "version": str(version)}})


# -- serving endpoints --------------------------------------------------------------------------
def _endpoint(namespace: str, name: str, **info: Any) -> LineageDataset:
    facets: dict[str, dict[str, Any]] = {TYPE_FACET: {"datasetType": "MODEL", "subType": "ENDPOINT"}}
    details = {k: str(v) for k, v in info.items() if v not in (None, "")}
    if details:
        facets[MODEL_FACET] = details
    return LineageDataset(namespace, name, facets)


def sagemaker_endpoint_dataset(region: str, endpoint_name: str, **info: Any) -> LineageDataset:
    return _endpoint(f"sagemaker://{region}", str(endpoint_name), **info)


def kserve_dataset(namespace: str, name: str, **info: Any) -> LineageDataset:
    return _endpoint(f"kserve://{namespace}", str(name), **info)


def http_endpoint_dataset(url: str, path: str = "/invocations", **info: Any) -> LineageDataset:
    """A scoring server at ``url`` (``http://host:port``); ``path`` is where it scores."""
    parts = urlsplit(without_credentials(url))
    return _endpoint(f"{parts.scheme}://{parts.netloc}", (parts.path.rstrip("/") or "") + path, **info)
