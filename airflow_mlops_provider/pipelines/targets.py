"""Deploy targets: one seam through which every serving platform plugs into a pipeline.

A target is a :class:`DeployTarget`: its name, the JSON-schema'd config a DAG exposes as a
Param (serving resource, timeouts, verification limits), and ``lane()``, which creates the
target's operators inside the lane's TaskGroup. The pipeline builders (``deployment_lane``,
``retraining_pipeline``) add what every target shares: the optional approval gate, the
promotion by aliases, the wiring that rolls back on any failure, and the rollback record.

A new target is one module that defines ``TARGET = DeployTarget(...)`` plus one registration:
a line in :data:`BUILTIN_TARGETS`, or ``register_deploy_target(TARGET)`` from a plugin or
``airflow_local_settings``. No DAG file changes: DAGs built with the builders offer every
registered target in their ``deploy_target`` Param.

Imports here stay light (DAG parse time): target modules are imported when first asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Verification limits every target shares: smoke rows, bake requests, error rate, p95 latency.
VERIFY_DEFAULTS: dict[str, Any] = {"smoke_rows": 5, "bake_requests": 5, "max_error_rate": 0.0,
                                   "max_latency_ms": 2000}
VERIFY_SCHEMA: dict[str, Any] = {
    "smoke_rows": {"type": "integer", "minimum": 1, "maximum": 1000},
    "bake_requests": {"type": "integer", "minimum": 1, "maximum": 1000},
    "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1},
    "max_latency_ms": {"type": "number", "exclusiveMinimum": 0},
}


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
    :param resource_field: the config key that names the serving resource (InferenceService,
        endpoint); the builders default it to :func:`resource_name` of the model.
    :param lane: ``lane(config=..., model_name=..., model_version=..., challenger=...)`` creates
        the operators; ``config`` is the Jinja path of the config (``"params.kserve"``), so an
        operator argument reads ``"{{ params.kserve.name }}"``; ``model_version`` and
        ``challenger`` are XComArgs of the registered challenger (its version, its dict).
    """

    name: str
    description: str
    defaults: dict[str, Any]
    schema: dict[str, Any]
    lane: Callable[..., DeployLane]
    resource_field: str | None = None
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


# name -> "module:attribute" of a DeployTarget; imported on first use.
BUILTIN_TARGETS: dict[str, str] = {
    "local": "airflow_mlops_provider.operators.deploy_local:TARGET",
    "kserve": "airflow_mlops_provider.operators.deploy_kserve:TARGET",
    "sagemaker": "airflow_mlops_provider.operators.deploy_sagemaker:TARGET",
}
_REGISTERED: dict[str, DeployTarget] = {}


def register_deploy_target(target: DeployTarget) -> DeployTarget:
    """Make ``target`` available to every pipeline built after this call."""
    if not target.name.isidentifier():
        raise ValueError(f"deploy target name {target.name!r} must be an identifier (it names a TaskGroup)")
    if target.name == "none":
        raise ValueError("'none' is reserved: it means no deployment")
    _REGISTERED[target.name] = target
    return target


def get_deploy_target(name: str) -> DeployTarget:
    if name in _REGISTERED:
        return _REGISTERED[name]
    spec = BUILTIN_TARGETS.get(name)
    if spec is None:
        raise KeyError(f"unknown deploy target {name!r}; known: {sorted(deploy_target_names())}")
    module, _, attr = spec.partition(":")
    target = getattr(importlib.import_module(module), attr)
    _REGISTERED[name] = target
    return target


def deploy_target_names() -> list[str]:
    """Every target a pipeline can offer: the built-in ones, then those registered at runtime."""
    return list(dict.fromkeys([*BUILTIN_TARGETS, *_REGISTERED]))
