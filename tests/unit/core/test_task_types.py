"""The task-type registry: every registered type keeps the contract the operators rely on.

The contract tests run over whatever is registered (the built-ins, the docs' ``count`` type
imported below, and any plug-in installed through the entry point), never over a hand-kept list.
"""

from __future__ import annotations

import importlib.metadata
import sys

import numpy as np
import pandas as pd
import pytest

from airflow_mlops_provider.core import task_types as registry
from airflow_mlops_provider.core.decay import DecayPolicy, count_late, evaluate_versions, version_outputs
from airflow_mlops_provider.core.fairness import group_metrics
from airflow_mlops_provider.core.policy import PromotionPolicy
from airflow_mlops_provider.core.task_types import (
    BinaryTaskType,
    RegressionTaskType,
    TaskType,
    get_task_type,
    register_task_type,
    task_type_of_tags,
    task_type_of_version,
    task_types,
    unregister_task_type,
)
from airflow_mlops_provider.core.tasks import TaskTypeError, complete_policy
from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "examples"))
import count_task_type  # the docs' example plug-in: importing it registers "count"

REGISTERED = sorted(task_types())
DIRECTIONS = {"higher", "lower"}


def test_the_registry_holds_the_built_ins_and_the_registered_plug_in():
    assert {"binary", "multiclass", "regression", "count"} <= set(REGISTERED)
    assert get_task_type("count") is count_task_type.COUNT


def sample(task: TaskType, n: int = 300, seed: int = 0):
    """A target and a raw pyfunc output of the type's kind: class probabilities or positive values."""
    rng = np.random.default_rng(seed)
    if task.has_classes:
        classes = list(range(max(task.n_classes[0], 2)))
        proba = rng.dirichlet(np.ones(len(classes)), n)
        y = np.array([rng.choice(classes, p=p) for p in proba])
        return y, proba, classes
    y = rng.poisson(3.0, n).astype(float)
    return y, y + rng.gamma(2.0, 0.5, n), None


@pytest.mark.parametrize("name", REGISTERED)
def test_metrics_directions_and_default_policies_agree(name):
    task = get_task_type(name)
    assert task.name == name == name.strip().lower()
    assert task.metrics and set(task.metrics.values()) <= DIRECTIONS | {None}
    assert set(task.group_metrics.values()) <= DIRECTIONS
    assert not set(task.metrics) & set(task.group_metrics), "a metric name means one thing"
    assert task.predict_method in ("predict", "predict_proba")
    # The default promotion policy names only the type's own metrics, each in its own direction.
    policy = complete_policy(name, dict(task.default_policy))
    for rule in policy["metrics"]:
        assert rule["direction"] == task.metrics[rule["name"]], rule
    PromotionPolicy.from_dict(policy)
    decay = DecayPolicy.from_dict(name, None)
    assert [r.direction for r in decay.rules] == [task.metrics[r.name] for r in decay.rules]


@pytest.mark.parametrize("name", REGISTERED)
def test_outputs_metrics_and_group_metrics_follow_the_declared_names(name):
    task = get_task_type(name)
    y, raw, classes = sample(task)
    metrics = task.compute_metrics(y, raw, classes)
    assert set(metrics) <= set(task.metrics)
    for rule in task.default_policy["metrics"]:
        assert rule["name"] in metrics, f"{name}'s default policy gates on {rule['name']}, which it does not compute"
    columns = task.output_columns(raw, classes)
    assert list(columns) == list(task.output_types(classes))
    assert task.primary_output in columns and all(len(v) == len(y) for v in columns.values())
    names = ["row_id", *columns, "model_version", "model_run_id"]
    assert task.scored_columns(names) == list(columns)
    # Decay monitoring evaluates the scored columns: the same figures as the raw output gives.
    scored = pd.DataFrame(columns)
    assert version_outputs(task, scored, classes) is not None
    again = task.compute_metrics(y, version_outputs(task, scored, classes), classes)
    assert again == pytest.approx(metrics)
    groups = pd.DataFrame({"region": np.where(np.arange(len(y)) % 3 == 0, "north", "south")})
    result = group_metrics(name, y, raw, groups, classes)
    assert set(result["metrics"]) == set(task.group_metrics)


def test_a_second_type_under_a_taken_name_is_refused_and_the_same_one_is_a_no_op():
    class Other(RegressionTaskType):
        name = "binary"

    with pytest.raises(TaskTypeError, match="'binary' is already registered"):
        register_task_type(Other())
    assert register_task_type(get_task_type("binary")) is get_task_type("binary")
    with pytest.raises(TaskTypeError, match="built-in"):
        unregister_task_type("binary")
    with pytest.raises(TypeError, match="TaskType instance"):
        register_task_type("ordinal")


class Proportion(BinaryTaskType):
    """A plug-in found only through its entry point (below)."""

    name = "proportion-toy"


def test_a_type_installed_by_entry_point_is_found_lazily_and_a_broken_one_is_named(monkeypatch):
    group = registry.ENTRY_POINT_GROUP
    found = [importlib.metadata.EntryPoint("proportion-toy", f"{__name__}:Proportion", group),
             importlib.metadata.EntryPoint("broken-toy", "tests.no_such_module:TYPE", group)]
    asked = []

    def entry_points(group):
        asked.append(group)
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setattr(registry, "_BROKEN", {})
    try:
        get_task_type("binary")  # a registered name does not scan the installed packages
        assert asked == []
        assert isinstance(get_task_type("proportion-toy"), Proportion)
        assert asked == [registry.ENTRY_POINT_GROUP]
        with pytest.raises(TaskTypeError, match=r"'broken-toy' is not one of .*cannot be loaded: ModuleNotFoundError"):
            get_task_type("broken-toy")
    finally:
        unregister_task_type("proportion-toy")


def test_a_version_without_its_tag_is_refused_naming_model_version_and_tag():
    class Version:
        version, tags = "7", {"mlops.classes": "[0, 1]"}

    with pytest.raises(TaskTypeError, match=r"model 'fraud' version 7 has no mlops.task_type tag"):
        task_type_of_version("fraud", Version())
    with pytest.raises(TaskTypeError, match=r"run abc: tag mlops.task_type='ranking': task_type 'ranking' is not"):
        task_type_of_tags({"mlops.task_type": "ranking"}, "run abc")
    assert task_type_of_tags({"mlops.task_type": "count"}, "run abc") is count_task_type.COUNT


def test_the_count_type_refuses_targets_and_models_it_cannot_judge():
    task = get_task_type("count")
    with pytest.raises(TaskTypeError, match=r"whole numbers >= 0 in target column 'visits' of 'v.parquet'"):
        task.check_target(pd.Series([1.0, 2.5, 3.0]), "visits", "v.parquet")
    with pytest.raises(TaskTypeError, match="numeric target"):
        task.check_target(pd.Series(["a", "b"]), "visits", "v.parquet")
    assert task.check_target(pd.Series([0, 4, 2]), "visits", "v.parquet") is None
    with pytest.raises(TaskTypeError, match="rates > 0"):
        task.compute_metrics([1, 2], np.array([0.0, 1.5]))


def test_monitoring_judges_each_version_as_its_own_type_and_counts_late_labels_per_policy():
    joined = pd.DataFrame({"y": [0, 1, 1, 0, 3.0, 1.0], "score": [0.2, 0.9, 0.7, 0.4, None, None],
                           "prediction": [None, None, None, None, 2.5, 1.2],
                           "model_version": ["1", "1", "1", "1", "2", "2"],
                           "scored_day": ["2026-11-01"] * 3 + ["2026-11-09"] * 3})
    result = evaluate_versions({"1": get_task_type("binary"), "2": get_task_type("count")}, joined, "y",
                               {"1": [0, 1], "2": None})
    assert set(result["1"]["metrics"]) <= set(get_task_type("binary").metrics)
    assert set(result["2"]["metrics"]) == {"poisson_deviance", "d2_poisson", "mae"}
    labels_day = pd.Timestamp("2026-11-10").date()
    # Three of v1's rows came 9 days after scoring (its policy allows 7), v2's two 1 day after (it allows 0).
    assert count_late(joined, labels_day, {"1": 7, "2": 0}) == 5
    assert count_late(joined, labels_day, {"1": 10, "2": 1}) == 0
    assert count_late(joined, labels_day, 7) == 3


def test_a_model_config_takes_a_registered_type_by_name_and_lists_the_known_ones_otherwise():
    from airflow_mlops_provider.pipelines import ModelConfig, batch_scoring_dag, retraining_dag

    def train(X, y):  # never called here
        raise AssertionError

    visits = ModelConfig(name="visits", task_type=" Count ", target="visits", train=train, data_path="v.parquet",
                         id_columns=["store_day_id"])
    assert visits.task_type == "count"
    assert visits.effective_policy["metrics"][0]["name"] == "d2_poisson"
    assert visits.effective_decay_policy["metrics"] == [{"name": "poisson_deviance", "max_relative_degradation": 0.1}]
    dag = retraining_dag(visits, dag_id="visits")
    assert [m["name"] for m in dag.params["policy"]["metrics"]] == ["d2_poisson", "poisson_deviance"]
    assert dag.task_dict["train"].model_task_type == "count"
    assert "score" in batch_scoring_dag(visits, dag_id="visits_scoring").task_dict
    with pytest.raises(TaskTypeError, match=r"ModelConfig\('visits'\).task_type: task_type 'ranking' is not one of "
                                            r"\[.*'count'.*'regression'\]"):
        ModelConfig(name="visits", task_type="ranking", target="visits", train=train, data_path="v.parquet")
    with pytest.raises(TaskTypeError, match="names metric 'rmse', which a count model does not produce"):
        ModelConfig(name="visits", task_type="count", target="visits", train=train, data_path="v.parquet",
                    policy={"metrics": [{"name": "rmse"}]})
