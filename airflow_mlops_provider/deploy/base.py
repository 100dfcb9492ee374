"""The deploy-target contract: what a target is, its one wait rule, what serves where, the lookup.

A target is a :class:`DeployTarget`: its name, the JSON-schema'd config a DAG exposes as a
Param (serving resource, timeouts, verification limits), ``lane()``, which creates the
target's operators inside the lane's TaskGroup, and ``serving(model)``, what serves a model
on it now. Its wait rule is one :class:`DeployProbe` (read one status, classify it) that the
operator's synchronous loop and the generic trigger
(:class:`~airflow_mlops_provider.triggers.base.DeployTargetWaitTrigger`) both run, the way
botocore's waiter model serves both paths in the amazon provider.

Targets are found through the entry-point group ``airflow_mlops_provider.deploy_targets``
(``name = "package.module:TARGET"``), the built-in ones included: a target in another pip
package needs no edit here. Names are listed without importing any target; a target module is
imported when first asked for. :func:`register_deploy_target` adds one at runtime (tests).

This module sits below the operators and the pipelines: it imports neither, nor Airflow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from airflow_mlops_provider.core.verify import lane_check_limits
from airflow_mlops_provider.exceptions import DeploymentError

ENTRY_POINT_GROUP = "airflow_mlops_provider.deploy_targets"
# The provider's own distribution: its targets come first in every list.
PROVIDER_DISTRIBUTION = "airflow-mlops-provider"

# The limits every target's config carries: verification, load test, quality canary (each defined
# once: core.verify.VERIFY_LIMITS, core.load.LOAD_LIMITS, core.canary.CANARY_LIMITS).
VERIFY_DEFAULTS: dict[str, Any] = {name: rule["default"] for name, rule in lane_check_limits().items()}
VERIFY_SCHEMA: dict[str, Any] = {name: {k: v for k, v in rule.items() if k != "default"}
                                 for name, rule in lane_check_limits().items()}

# The keys of one row of ``DeployTarget.serving(model)``.
SERVING_KEYS = ("target", "resource", "role", "version", "url", "traffic_percent")


@dataclass(frozen=True)
class DeployLane:
    """The target-specific operators of one deployment lane (created inside its TaskGroup).

    :param deploy: rolls the version out as a canary (or beside the live model) and waits until
        it serves; its XCom is the deployment result.
    :param verify: smoke test plus bake against the limits; fails when they are not met.
    :param promote_traffic: sends all traffic to the new version before ``@champion`` moves;
        None when the deploy already made it the only model serving.
    :param rollback: sends serving back to what ``@champion`` names when it runs; the builder
        gives it ``trigger_rule="one_failed"`` on every step of the lane.
    """

    deploy: Any
    verify: Any
    rollback: Any
    promote_traffic: Any | None = None


@dataclass(frozen=True)
class DeployTarget:
    """A serving platform the pipelines can deploy to.

    :param name: the value of the ``deploy_target`` Param and the lane's TaskGroup id.
    :param description: one line for the Param form.
    :param defaults: the target's config (a Param object), verification limits included.
    :param schema: JSON schema ``properties`` of that config.
    :param lane: ``lane(config=..., model_name=..., model_version=..., challenger=...)`` creates
        the operators; ``config`` is the Jinja path of the config (``"params.kserve"``), so an
        operator argument reads ``"{{ params.kserve.name }}"``; ``model_version`` and
        ``challenger`` are XComArgs of the registered challenger (its version, its dict).
    :param serving: ``serving(model_name)`` -> the live deployments of a model on this target,
        rows of :data:`SERVING_KEYS` (:func:`serving_row`); raises :attr:`error` naming why
        when the platform cannot be reached. None: the target cannot say.
    :param resource_field: the config key that names the serving resource (InferenceService,
        endpoint); the builders default it to :func:`resource_name` of the model.
    :param error: the exception class every error of the target is (a :class:`DeploymentError`).
    """

    name: str
    description: str
    defaults: dict[str, Any]
    schema: dict[str, Any]
    lane: Callable[..., DeployLane]
    serving: Callable[[str], list[dict[str, Any]]] | None = None
    resource_field: str | None = None
    error: type[DeploymentError] = DeploymentError
    extra: dict[str, Any] = field(default_factory=dict)

    def defaults_for(self, model_name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The config Param default for one model: the serving resource is named after the model."""
        config = dict(self.defaults)
        if self.resource_field:
            config[self.resource_field] = resource_name(model_name)
        return {**config, **dict(overrides or {})}

    def param_schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False, "properties": self.schema}


def resource_name(model_name: str) -> str:
    """A DNS-1035 label from a model name (what KServe and SageMaker both accept): ``Fraud_Model.v2`` ->
    ``fraud-model-v2``."""
    import re

    name = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}".rstrip("-")
    return name[:63].rstrip("-")


def serving_row(target: str, *, resource: str, version: str | None, url: str | None = None, role: str = "live",
                traffic_percent: float | None = None, **extra: Any) -> dict[str, Any]:
    """One live deployment: where (target, resource, url), what (version), how much traffic, as what role."""
    return {"target": target, "resource": resource, "role": role,
            "version": None if version is None else str(version), "url": url,
            "traffic_percent": traffic_percent, **extra}


# -- the wait rule ------------------------------------------------------------------------------
DONE, FAILED = "done", "failed"


@dataclass
class DeployProbe:
    """One wait rule of a target: read a status, classify it. Subclasses are dataclasses whose
    fields are JSON-safe (they are the trigger's kwargs); hooks are built lazily, inside
    :meth:`read`, so a probe crosses to the triggerer as ``(classpath, kwargs)``.

    The synchronous loop of ``DeployTargetOperator`` and ``DeployTargetWaitTrigger`` both call
    :meth:`read` then :meth:`classify`; a failed or timed-out wait raises :meth:`failure` /
    :meth:`timeout_error` in the task.
    """

    error: ClassVar[type[DeploymentError]] = DeploymentError

    # -- what a target supplies ---------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        """One status read, JSON-safe (it travels in the trigger's event)."""
        raise NotImplementedError

    def classify(self, status: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """``("done", payload)``, ``("failed", payload)``, or None while the wait goes on."""
        raise NotImplementedError

    @property
    def resource(self) -> str:
        """The watched resource, as messages name it."""
        return type(self).__name__

    def context(self) -> dict[str, Any]:
        """Structured context of every error about the resource."""
        return {}

    def is_transient(self, err: Exception) -> bool:
        """A read error worth another read at the next poll (throttling)."""
        return False

    def failure(self, status: dict[str, Any], payload: dict[str, Any], details: dict[str, Any]) -> Exception:
        """The error a ``failed`` verdict raises in the task."""
        return self.error(f"{self.resource} failed: {payload.get('message') or status}", **self.context(),
                          reason="failed")

    def timeout_error(self, status: dict[str, Any], timeout: float, details: dict[str, Any]) -> Exception:
        """The error the task raises when the wait ran out of time."""
        return self.error(f"{self.resource} did not settle within {float(timeout):g}s (last status: {status})",
                          **self.context(), reason="timeout", timeout=timeout)

    # -- serialization --------------------------------------------------------------------------
    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", asdict(self)

    @staticmethod
    def load(classpath: str, kwargs: dict[str, Any]) -> DeployProbe:
        """The probe ``serialize()`` described; refuses a class that is not a probe."""
        module, _, name = str(classpath).rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as err:
            raise DeploymentError(f"deploy probe {classpath!r} cannot be imported: {err}", probe=classpath,
                                  reason="invalid") from err
        if not (isinstance(cls, type) and issubclass(cls, DeployProbe)):
            raise DeploymentError(f"{classpath!r} is not a DeployProbe", probe=classpath, reason="invalid")
        return cls(**dict(kwargs or {}))


# -- the lookup ---------------------------------------------------------------------------------
_REGISTERED: dict[str, DeployTarget] = {}
_LOADED: dict[str, DeployTarget] = {}


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, list[Any]]:
    """name -> entry points of the group (more than one: two packages claim the name)."""
    from importlib.metadata import entry_points

    found: dict[str, list[Any]] = {}
    eps = sorted(entry_points(group=ENTRY_POINT_GROUP),
                 key=lambda ep: (_distribution(ep) != PROVIDER_DISTRIBUTION, _distribution(ep)))
    for ep in eps:
        if not any(e.value == ep.value for e in found.get(ep.name, [])):  # one dist seen twice on sys.path
            found.setdefault(ep.name, []).append(ep)
    return found


def _distribution(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return str(getattr(dist, "name", "") or "").lower().replace("_", "-")


def register_deploy_target(target: DeployTarget) -> DeployTarget:
    """Make ``target`` available to every pipeline built after this call (tests, local settings)."""
    _check_name(target.name)
    _REGISTERED[target.name] = target
    return target


def unregister_deploy_target(name: str) -> None:
    """Undo :func:`register_deploy_target` (tests)."""
    _REGISTERED.pop(name, None)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"deploy target name {name!r} must be an identifier (it names a TaskGroup)")
    if name == "none":
        raise ValueError("'none' is reserved: it means no deployment")


def deploy_target_names() -> list[str]:
    """Every target a pipeline can offer, without importing any: the provider's own, those of
    other installed packages (by name), then those registered at runtime."""
    return list(dict.fromkeys([*_entry_points(), *_REGISTERED]))


def get_deploy_target(name: str) -> DeployTarget:
    """The target called ``name``; its module is imported on first use."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _LOADED:
        return _LOADED[name]
    eps = _entry_points().get(name)
    if not eps:
        hint = "" if _entry_points() else (
            f" (no package declares the entry-point group {ENTRY_POINT_GROUP!r}, not even the provider: its "
            "installed metadata is stale or missing; reinstall it, e.g. `uv sync` or `pip install -e .`)")
        raise KeyError(f"unknown deploy target {name!r}; known: {sorted(deploy_target_names())}{hint}")
    if len(eps) > 1:
        raise DeploymentError(
            f"deploy target {name!r} is registered by more than one package: "
            f"{[f'{_distribution(ep)} ({ep.value})' for ep in eps]}; uninstall one", target=name, reason="invalid")
    (ep,) = eps
    where = f"entry point {name} = {ep.value!r} ({ENTRY_POINT_GROUP}, package {_distribution(ep) or '?'})"
    try:
        target = ep.load()
    except Exception as err:
        raise DeploymentError(f"{where} cannot be loaded: {type(err).__name__}: {err}", target=name,
                              reason="invalid") from err
    if not isinstance(target, DeployTarget):
        raise DeploymentError(f"{where} is a {type(target).__name__}, not a DeployTarget", target=name,
                              reason="invalid")
    if target.name != name:
        raise DeploymentError(f"{where} names its target {target.name!r}: the entry point name must be the "
                              "target's name", target=name, reason="invalid")
    _check_name(name)
    _LOADED[name] = target
    return target


def serving_of(target: DeployTarget, model_name: str, *, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """``target.serving(model_name)``, or one ``{"target", "available": False, "reason"}`` row when
    it raises or does not answer within ``timeout_s`` (the call runs in a thread)."""
    import threading

    if target.serving is None:
        return []
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["rows"] = list(target.serving(model_name))  # type: ignore[misc]
        except Exception as err:  # noqa: BLE001 - shown as unavailable, with the reason
            outcome["error"] = f"{type(err).__name__}: {err}"[:500]

    worker = threading.Thread(target=call, name=f"serving-{target.name}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if "rows" in outcome:
        return outcome["rows"]
    reason = outcome.get("error") or f"no answer within {timeout_s:g}s"
    return [{"target": target.name, "available": False, "reason": reason}]


def serving_everywhere(model_name: str, *, timeout_s: float = 5.0,
                       unreachable: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """What serves ``model_name`` on every registered target, in registry order: :func:`serving_of`
    each. ``unreachable`` (target -> reason) is filled in and skips those targets on the next
    call, so a page of many models asks an unreachable platform once."""
    unreachable = {} if unreachable is None else unreachable
    rows: list[dict[str, Any]] = []
    for name in deploy_target_names():
        if name not in unreachable:
            try:
                found = serving_of(get_deploy_target(name), model_name, timeout_s=timeout_s)
            except Exception as err:  # noqa: BLE001 - one broken plug-in must not hide the others
                found = [{"target": name, "available": False, "reason": f"{type(err).__name__}: {err}"[:500]}]
            if found and found[0].get("available") is False:
                unreachable[name] = found[0]["reason"]
            else:
                rows.extend(found)
        if name in unreachable:
            rows.append({"target": name, "available": False, "reason": unreachable[name]})
    return rows
