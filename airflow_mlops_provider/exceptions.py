"""Exceptions raised by the provider; each carries the structured context a user needs."""

from __future__ import annotations

from typing import Any


class MlopsProviderError(Exception):
    """Base class; ``context`` holds JSON-safe details for logs and XCom."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.context = context


class MissingDependencyError(MlopsProviderError, ImportError):
    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"The optional dependency {module!r} is not installed. "
            f"Install it with: pip install 'airflow-mlops-provider[{extra}]'",
            module=module,
            extra=extra,
        )


class ConnectionConfigError(MlopsProviderError, ValueError):
    """An Airflow connection's fields are malformed; names the connection and the field."""


class MlflowConnectionError(MlopsProviderError):
    """The MLflow tracking server or store could not be reached."""


class DataVersionError(MlopsProviderError):
    """A DVC repo, rev or path could not be resolved."""


class DataValidationError(MlopsProviderError):
    """Critical expectations failed; ``context['failed']`` lists them."""


class ModelNotFoundError(MlopsProviderError, LookupError):
    """A registered model, version or alias does not exist."""


class ModelLoadError(MlopsProviderError):
    """A model version exists but cannot be loaded here (flavor library missing, untrusted types, ...)."""


class PromotionRejected(MlopsProviderError):
    """The promotion policy rejected the challenger."""


class DeploymentError(MlopsProviderError):
    """A deploy target's step (deploy, wait, verify, promote, rollback) failed.

    ``context`` names the resource and a ``reason`` (``invalid``, ``api``, ``timeout``,
    ``failed``, ``smoke``); every target's errors (KServe, SageMaker, local, a plug-in's) derive
    from it.
    """


class DeploymentRolledBack(DeploymentError):
    """A deployment was rolled back (by us or by the platform)."""


class SuiteDefinitionError(MlopsProviderError, ValueError):
    """An expectation suite (dict, JSON file or object) is malformed; names the source and expectation."""


class DataFileError(MlopsProviderError, ValueError):
    """A data file cannot be read or written in the expected format; names the path."""


class OutputSpaceError(MlopsProviderError, OSError):
    """The disk (or quota) filled up while an output was written; names the output path.

    Nothing partial is left: the temporary file is removed and a previous output stays as it was.
    """


class KServeError(DeploymentError):
    """A KServe InferenceService could not be applied, read, served or verified.

    ``context`` names the InferenceService (``name``, ``namespace``) and a ``reason``
    (``invalid``, ``api``, ``timeout``, ``failed``, ``smoke``).
    """


class SageMakerError(DeploymentError):
    """A SageMaker deployment step could not be done, was throttled, timed out or failed its smoke test.

    ``context`` names the resource (``endpoint``, ``call``) and a ``reason`` (``invalid``,
    ``throttled``, ``api``, ``failed``, ``timeout``, ``conflict``, ``smoke``).
    """


class PromotionSuperseded(MlopsProviderError):
    """``champion`` moved after the decision was taken; the challenger was judged against a stale champion.

    Raised (instead of a skip) when a deployment is waiting on the promotion, so that the
    deployment is rolled back rather than left serving a model the registry did not promote.
    """


class DeploymentRejected(MlopsProviderError):
    """A reviewer rejected the deployment (or did not answer before the response timeout)."""


class LocalServingError(DeploymentError):
    """A local MLflow scoring server could not be started, reached, verified or stopped.

    ``context`` names the model, the version and the port (``model``, ``version``, ``port``)
    and a ``reason``.
    """


class PathNotAllowedError(MlopsProviderError, PermissionError):
    """An input or output path lies outside the allowed roots (:mod:`airflow_mlops_provider.core.paths`).

    ``context`` names the argument, the path and the allowed roots. Operators raise it before
    anything is read or written; retrying cannot help, so they fail the task without retries.
    """
