"""The scoring-backend seam: the batch builder asks a registered backend for its tasks by name,
and wires validation before them and drift after their commit, whatever they are."""

from __future__ import annotations

import pytest

from airflow_mlops_provider.pipelines import ModelConfig, batch_scoring_dag
from airflow_mlops_provider.scoring import (
    ScoringTasks,
    get_scoring_backend,
    register_scoring_backend,
    scoring_backend_names,
)


def train(X, y, **params):  # never called here
    raise AssertionError


def config(**overrides) -> ModelConfig:
    return ModelConfig(**{"name": "fraud", "task_type": "binary", "target": "label", "train": train,
                          "data_path": "data/tx.parquet", "id_columns": ["tx_id"], **overrides})


class OneTaskBackend:
    """A backend that scores the whole partition in one task (as a Spark job would)."""

    name = "one-task"

    def tasks(self, *, model_name, model_version, input_path, output_path, expected_rows, key_columns,
              shadow_alias, shards):
        from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator

        score = MlflowBatchScoreOperator(task_id="score_all", model_name=model_name, model_version=model_version,
                                         input_path=input_path, output_path=output_path, key_columns=key_columns,
                                         scoring_backend=self.name)
        return ScoringTasks(first=score, score=score, commit=score)

    def score(self, job, storage):
        raise AssertionError("not run here")


def test_the_local_backend_is_the_default_and_builds_the_sharded_tasks():
    assert "local" in scoring_backend_names()
    dag = batch_scoring_dag(config(), dag_id="fraud_batch")
    assert [t for t in dag.task_dict if t in ("plan_shards", "score", "commit")] == ["plan_shards", "score", "commit"]
    assert dag.task_dict["score"].partial_kwargs["scoring_backend"] == "local"
    assert dag.task_dict["plan_shards"].upstream_task_ids == {"validate_input"}
    assert dag.task_dict["check_drift"].upstream_task_ids == {"commit"}


def test_a_registered_backend_plugs_in_behind_the_builder():
    register_scoring_backend(OneTaskBackend())
    try:
        dag = batch_scoring_dag(config(), dag_id="fraud_one_task", scoring_backend="one-task")
        assert "plan_shards" not in dag.task_dict and "commit" not in dag.task_dict
        assert dag.task_dict["score_all"].upstream_task_ids >= {"validate_input"}
        drift = dag.task_dict["check_drift"]
        # Drift reads the facts the backend's last step returned: version and output partition.
        assert drift.upstream_task_ids == {"score_all"}
        assert "score_all" in repr(drift.model_version) and "score_all" in repr(drift.predictions_path)
    finally:
        from airflow_mlops_provider import scoring

        scoring._REGISTERED.pop("one-task", None)


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown scoring backend 'dask'; known: \[.*'local'.*'spark'.*\]"):
        get_scoring_backend("dask")
    with pytest.raises(ValueError, match="unknown scoring backend 'dask'"):
        batch_scoring_dag(config(), dag_id="fraud_dask", scoring_backend="dask")
    with pytest.raises(ValueError, match=r"ModelConfig\('fraud'\).scoring_backend 'dask' is not a registered"):
        config(scoring_backend="dask")
    with pytest.raises(TypeError, match="is not a scoring backend"):
        register_scoring_backend(object())


def test_reason_codes_reach_the_local_scoring_task_through_a_param():
    dag = batch_scoring_dag(config(explain_top_k=3), dag_id="fraud_reasons")
    assert dag.params["explain_top_k"] == 3
    assert dag.task_dict["score"].partial_kwargs["explain_top_k"] == "{{ params.explain_top_k }}"
    assert batch_scoring_dag(config(), dag_id="fraud_plain").params["explain_top_k"] == 0


def test_reason_codes_on_a_backend_that_cannot_write_them_are_refused_at_parse():
    register_scoring_backend(OneTaskBackend())
    try:
        batch_scoring_dag(config(), dag_id="fraud_one_task_plain", scoring_backend="one-task")  # no reasons: fine
        with pytest.raises(ValueError, match=r"explain_top_k is set but the scoring backend 'one-task' does not"):
            batch_scoring_dag(config(explain_top_k=2), dag_id="fraud_one_task_reasons", scoring_backend="one-task")
    finally:
        from airflow_mlops_provider import scoring

        scoring._REGISTERED.pop("one-task", None)


@pytest.mark.parametrize("bad", [-1, 21, True, "3"])
def test_explain_top_k_out_of_range_is_refused_naming_the_field(bad):
    with pytest.raises(ValueError, match=r"ModelConfig\('fraud'\)\.explain_top_k must be an integer in 0\.\.20"):
        config(explain_top_k=bad)


def test_the_spark_backend_is_registered_by_entry_point_and_builds_score_then_commit():
    """``spark`` comes from the entry-point group (as a plug-in's backend would); the builder takes it
    from the model config, with the config's Spark settings handed to the scoring task."""
    from importlib.metadata import entry_points

    from airflow_mlops_provider.scoring.spark import STAGING_PATH, SparkScoringBackend

    assert "spark" in {ep.name for ep in entry_points(group="airflow_mlops_provider.scoring_backends")}
    assert isinstance(get_scoring_backend("spark"), SparkScoringBackend)
    dag = batch_scoring_dag(config(scoring_backend="spark", scoring_config={"spark_conn_id": "spark_prod"}),
                            dag_id="fraud_spark")
    assert "plan_shards" not in dag.task_dict
    score, commit = dag.task_dict["score"], dag.task_dict["commit"]
    assert score.scoring_backend == "spark" and score.backend_config == {"spark_conn_id": "spark_prod"}
    assert score.model_version is not None and score.output_path == STAGING_PATH
    assert score.upstream_task_ids >= {"validate_input"} and commit.upstream_task_ids == {"score", "inspect_partition"}
    assert commit.scoring_backend == "spark"
    assert dag.task_dict["check_drift"].upstream_task_ids == {"commit"}
