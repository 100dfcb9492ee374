"""What every registered deploy target must do — enumerated from the entry points, never a hand-kept
list: the built-in three and any installed plug-in (the test package ``mlops-echo-target``) alike.

Lane shape and rollback wiring, the config Param's schema, one wait rule shared by the sync loop
and the trigger, the rollback contract, error types, and the shape of ``serving()``. Nothing
runs a platform here: lanes are built in a DAG, Params validated, probes serialized.
"""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import pytest

from airflow_mlops_provider.deploy.base import (
    ENTRY_POINT_GROUP,
    SERVING_KEYS,
    VERIFY_DEFAULTS,
    DeployProbe,
    DeployTarget,
    deploy_target_names,
    get_deploy_target,
)
from airflow_mlops_provider.exceptions import DeploymentError
from airflow_mlops_provider.operators.deploy import (
    DeploymentVerifyOperator,
    DeployTargetOperator,
    DeployTargetRollbackOperator,
)
from airflow_mlops_provider.pipelines import ModelConfig, retraining_dag
from tests.deploy_lanes import lane_of

NAMES = deploy_target_names()  # the entry points (runtime registrations come later, in tests)


def registered_by_entry_point() -> set[str]:
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}


def test_the_suite_covers_every_entry_point_the_built_ins_and_the_plug_in():
    assert set(NAMES) == registered_by_entry_point()
    assert {"local", "kserve", "sagemaker", "echo"} <= set(NAMES)


def train(X, y, **params):  # never called
    raise AssertionError


def retrain_dag():
    model = ModelConfig(name="conformance", task_type="binary", target="label", train=train,
                        data_path="data/c.parquet")
    return retraining_dag(model, dag_id="conformance_retrain")


@pytest.fixture(scope="module")
def dag():
    return retrain_dag()


HEAVY = {"mlflow", "boto3", "botocore", "kubernetes", "sklearn", "pandas", "numpy", "pyarrow", "sagemaker"}


@pytest.mark.parametrize("name", NAMES)
def test_a_target_module_imports_nothing_heavy_at_module_level(name):
    """Listing and loading targets happens at DAG parse: their modules import heavy libraries lazily."""
    import ast
    import importlib
    from importlib.metadata import entry_points

    (ep,) = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    source = importlib.import_module(ep.module).__file__
    tree = ast.parse(open(source).read())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    roots = {(a.name if isinstance(n, ast.Import) else n.module or "").split(".")[0]
             for n in top for a in n.names}
    assert not roots & HEAVY, f"{source} imports {sorted(roots & HEAVY)} at module level"
    target = get_deploy_target(name)
    assert isinstance(target, DeployTarget) and target.name == name


@pytest.mark.parametrize("name", NAMES)
def test_lane_shape(name):
    target, dag, lane = lane_of(name)
    steps = {"deploy": lane.deploy, "verify": lane.verify, "rollback": lane.rollback,
             "promote_traffic": lane.promote_traffic}
    present = {step: op for step, op in steps.items() if op is not None}
    assert sorted(dag.task_ids) == sorted(["register_challenger", *(f"{name}.{s}" for s in present)])
    assert isinstance(lane.deploy, DeployTargetOperator)
    assert isinstance(lane.rollback, DeployTargetRollbackOperator)
    assert isinstance(lane.verify, DeploymentVerifyOperator)
    assert lane.promote_traffic is None or isinstance(lane.promote_traffic, DeployTargetOperator)
    assert lane.deploy.upstream_task_ids == {"register_challenger"}  # the version is an XComArg
    assert lane.verify.upstream_task_ids == {"register_challenger", f"{name}.deploy"}
    for limit in VERIFY_DEFAULTS:  # the verify limits come from the target's Param
        assert getattr(lane.verify, limit) in ("{{ params." + name + "." + limit + " }}",
                                               "{{ params." + name + ".get('" + limit + "') }}")
    # One name per setting: the wait's timeout and interval are ready_timeout_s / poll_interval_s.
    for op in (lane.deploy, lane.rollback, *([lane.promote_traffic] if lane.promote_traffic else [])):
        assert op.timeout == "{{ params." + name + ".ready_timeout_s }}"
        assert op.poll_interval == "{{ params." + name + ".poll_interval_s }}"
    assert lane.rollback.alias == "champion" and lane.rollback.model_name == "{{ params.model_name }}"
    for op in present.values():
        assert "mlflow_conn_id" in op.template_fields
    rendered = lane.verify.render_template(lane.verify.bake_requests, {"params": {name: target.defaults_for("m")}})
    assert rendered == "5"


@pytest.mark.parametrize("name", NAMES)
def test_the_retrain_dag_wires_the_lane_and_rolls_back_on_any_failure(name, dag):
    assert name in dag.params.get_param("deploy_target").schema["enum"]
    assert dag.params[name] == get_deploy_target(name).defaults_for("conformance")
    ids = set(dag.task_dict)
    assert {f"{name}.deploy", f"{name}.verify", f"{name}.approve", f"{name}.promote", f"{name}.rollback"} <= ids
    rollback = dag.task_dict[f"{name}.rollback"]
    assert rollback.trigger_rule == "one_failed"
    assert rollback.after_task_id == f"{name}.deploy"
    lane_steps = {f"{name}.deploy", f"{name}.verify", f"{name}.approve", f"{name}.promote"}
    if f"{name}.promote_traffic" in ids:
        lane_steps.add(f"{name}.promote_traffic")
    assert lane_steps <= rollback.upstream_task_ids
    assert f"{name}.rollback" in dag.task_dict["record_rollback"].upstream_task_ids


@pytest.mark.parametrize("name", NAMES)
def test_param_schema_validates_the_defaults_and_refuses_bad_values(name):
    target = get_deploy_target(name)
    schema = target.param_schema()
    defaults = target.defaults_for("Penguin_Species.v2")
    jsonschema.validate(defaults, schema)
    assert set(defaults) == set(schema["properties"])
    assert {k: defaults[k] for k in VERIFY_DEFAULTS} == VERIFY_DEFAULTS
    assert {"ready_timeout_s", "poll_interval_s"} <= set(defaults)
    assert not [k for k in defaults if k.endswith("timeout_s") and k != "ready_timeout_s"]
    if target.resource_field:
        assert defaults[target.resource_field] == "penguin-species-v2"
    for bad in ({"max_error_rate": 2}, {"smoke_rows": 0}, {"bake_requests": "many"}, {"max_latency_ms": 0},
                {"ready_timeout_s": 0}, {"poll_interval_s": -1}, {"unknown": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**defaults, **bad}, schema)


@pytest.mark.parametrize("name", NAMES)
def test_one_wait_rule_for_the_sync_loop_and_the_trigger(name):
    """Every wait of the lane goes through DeployTargetOperator's loop, which runs the probe in the
    task or hands the same probe (classpath + kwargs) to the one trigger: no target overrides
    the wait, the deferral or the resume."""
    _, _, lane = lane_of(name)
    waiting = [op for op in (lane.deploy, lane.rollback, lane.promote_traffic) if op is not None]
    for op in waiting:
        for method in ("wait", "execute_complete", "_settled", "defer"):
            assert getattr(type(op), method) is getattr(DeployTargetOperator, method), (type(op), method)


def probes_of(name: str) -> list[type[DeployProbe]]:
    """The probe classes a target's module and its operators' modules define."""
    import importlib
    import inspect

    _, _, lane = lane_of(name)
    modules = {importlib.import_module(type(op).__module__) for op in (lane.deploy, lane.rollback)}
    modules.add(importlib.import_module(get_deploy_target(name).lane.__module__))
    found = set()
    for module in modules:
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, DeployProbe) and value is not DeployProbe:
                found.add(value)
    return sorted(found, key=lambda c: c.__qualname__)


@pytest.mark.parametrize("name", NAMES)
def test_the_probe_is_a_json_safe_dataclass_that_round_trips(name):
    probes = probes_of(name)
    assert probes, f"{name}: no DeployProbe in its target or operator modules"
    for cls in probes:
        assert dataclasses.is_dataclass(cls)
        assert issubclass(cls.error, DeploymentError)
        sample = {f.name: (f.default if f.default is not dataclasses.MISSING else _sample(f.type))
                  for f in dataclasses.fields(cls)}
        probe = cls(**sample)
        classpath, kwargs = probe.serialize()
        assert json.loads(json.dumps(kwargs)) == kwargs
        assert DeployProbe.load(classpath, kwargs) == probe


def _sample(annotation: str) -> object:
    text = str(annotation)
    if text.startswith("dict"):
        return {"version": "1", "port": 5001, "pid": 1}
    if text.startswith("int"):
        return 10
    return "sample"


@pytest.mark.parametrize("name", NAMES)
def test_errors_derive_from_deployment_error(name):
    target, _, lane = lane_of(name)
    assert issubclass(target.error, DeploymentError)
    for op in (lane.deploy, lane.verify, lane.rollback, lane.promote_traffic):
        if op is not None:
            assert issubclass(op.failure, DeploymentError), type(op)


class _TI:
    dag_id, run_id = "retrain", "manual__1"

    def __init__(self, state):
        self.state = state

    def get_task_states(self, dag_id, run_ids, task_ids):
        return {self.run_id: {t: self.state for t in task_ids}}


@pytest.mark.parametrize("name", NAMES)
def test_rollback_skips_when_the_deploy_never_ran(name, dag):
    """A failure before the lane reaches the rollback as upstream_failed: nothing was deployed."""
    from airflow.sdk.exceptions import AirflowSkipException

    rollback = dag.task_dict[f"{name}.rollback"]
    for state in (None, "upstream_failed", "skipped"):
        with pytest.raises(AirflowSkipException, match="nothing to roll back"):
            rollback.pre_execute({"ti": _TI(state)})
    for state in ("success", "failed"):
        rollback.pre_execute({"ti": _TI(state)})  # the deploy ran: the rollback goes ahead


@pytest.mark.parametrize("name", NAMES)
def test_serving_answers_rows_or_says_why_not(name, mlops_home):
    from airflow_mlops_provider.deploy.base import serving_of

    target = get_deploy_target(name)
    rows = serving_of(target, "no-such-model", timeout_s=10)
    if target.serving is None:
        assert rows == []
        return
    for row in rows:
        if row.get("available") is False:
            assert row["reason"]  # e.g. no connection configured: the view shows why
        else:
            assert set(SERVING_KEYS) <= set(row) and row["target"] == name
    json.dumps(rows)


def test_a_target_that_cannot_be_reached_is_listed_as_unavailable_once(mlops_home):
    from airflow_mlops_provider.deploy.base import (
        register_deploy_target,
        serving_everywhere,
        unregister_deploy_target,
    )

    calls = []

    def serving(model):
        calls.append(model)
        raise DeploymentError("no connection 'edge_default'")

    register_deploy_target(DeployTarget(name="edge", description="", defaults={}, schema={}, lane=lambda **kw: None,
                                        serving=serving))
    try:
        unreachable: dict[str, str] = {}
        first = [r for r in serving_everywhere("a", unreachable=unreachable) if r["target"] == "edge"]
        second = [r for r in serving_everywhere("b", unreachable=unreachable) if r["target"] == "edge"]
    finally:
        unregister_deploy_target("edge")
    assert first == second == [{"target": "edge", "available": False,
                                "reason": "DeploymentError: no connection 'edge_default'"}]
    assert calls == ["a"]


def test_an_unknown_target_names_the_known_ones():
    with pytest.raises(KeyError, match="unknown deploy target 'heroku'; known:"):
        get_deploy_target("heroku")


def test_reserved_and_bad_names_are_refused():
    from airflow_mlops_provider.deploy.base import register_deploy_target

    for bad in ("none", "not-an-identifier"):
        with pytest.raises(ValueError):
            register_deploy_target(DeployTarget(name=bad, description="", defaults={}, schema={},
                                                lane=lambda **kw: None))


def test_the_retrain_dag_takes_every_registered_target(dag):
    assert dag.params.get_param("deploy_target").schema["enum"] == ["none", *NAMES]
