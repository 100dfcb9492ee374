"""examples/release_checks.py (shown in docs/release.md) is a valid config of every built-in target."""

from __future__ import annotations

import runpy

import jsonschema
import pytest

from airflow_mlops_provider.core.canary import CANARY_LIMITS, canary_policy
from airflow_mlops_provider.core.load import LOAD_LIMITS, load_policy
from airflow_mlops_provider.deploy.base import VERIFY_DEFAULTS, VERIFY_SCHEMA, get_deploy_target
from tests.conftest import REPO_ROOT

CHECKS = runpy.run_path(str(REPO_ROOT / "examples" / "release_checks.py"))["RELEASE_CHECKS"]


def test_the_example_sets_every_limit_once_defined():
    assert set(CHECKS) == set(LOAD_LIMITS) | set(CANARY_LIMITS)
    assert load_policy(**{k: v for k, v in CHECKS.items() if k in LOAD_LIMITS})["load_concurrency"] == 4
    assert canary_policy(**{k: v for k, v in CHECKS.items() if k in CANARY_LIMITS})["canary_rows"] == 200
    # The targets' Param schema and defaults derive from the same definitions.
    assert set(LOAD_LIMITS) | set(CANARY_LIMITS) <= set(VERIFY_SCHEMA) == set(VERIFY_DEFAULTS)


@pytest.mark.parametrize("name", ["local", "kserve", "sagemaker"])
def test_the_example_is_a_valid_target_config(name):
    target = get_deploy_target(name)
    config = target.defaults_for("fraud", CHECKS)
    jsonschema.validate(config, target.param_schema())
    with pytest.raises(jsonschema.ValidationError, match="65 is greater than the maximum of 64"):
        jsonschema.validate({**config, "load_concurrency": 65}, target.param_schema())
