"""What a user who may trigger a DAG can put in ``dag_run.conf``: paths outside the allowed roots,
shell metacharacters, oversize values. Airflow cases run ``airflow dags test`` for real."""

from __future__ import annotations

import os

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops_provider.core.demo_data import TARGET, generate
from tests.reliability.conftest import context, tree

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability")]


def day_partition(home, day: str):
    path = home / "data" / "incoming" / f"{day}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    generate(200, seed=3).drop(columns=[TARGET]).to_parquet(path, index=False)
    return path


def test_conf_output_path_outside_mlops_home_is_refused_and_the_file_is_untouched(mlops_home, run_dag, tmp_path):
    """The probe's hole: `--conf {"output_path": <a file outside MLOPS_HOME>}` replaced that file."""
    day_partition(mlops_home, "2026-11-24")
    precious = tmp_path / "precious.conf"
    precious.write_text("do not overwrite\n")
    result = run_dag("mlops_batch_inference", "2026-11-24", conf={"output_path": str(precious)})
    assert result.returncode != 0
    assert result.states["inspect_partition"] == "failed", result.states
    assert f"output_path {str(precious)!r}" in result.output and "is outside the allowed roots" in result.output
    assert "score" not in result.states or result.states["score"] != "success"
    assert precious.read_text() == "do not overwrite\n"


def test_conf_with_shell_metacharacters_is_refused_by_the_params(mlops_home, run_dag, tmp_path):
    marker = tmp_path / "pwned"
    result = run_dag("mlops_batch_inference", "2026-11-25",
                     conf={"shadow_alias": f"challenger; touch {marker}", "input_path": f"$(touch {marker})"})
    assert result.returncode != 0
    assert "shadow_alias" in result.output and "does not match" in result.output
    assert not marker.exists()
    assert result.run_id is None or "2026-11-25" not in result.run_id  # no run was created


def test_oversize_conf_values_are_refused_by_the_params(mlops_home, run_dag):
    result = run_dag("mlops_batch_inference", "2026-11-26", conf={"output_path": "/" + "x" * 10_000})
    assert result.returncode != 0
    assert "output_path" in result.output and "is too long" in result.output
    assert result.run_id is None or "2026-11-26" not in result.run_id  # no run was created


def test_input_path_traversal_is_refused_before_reading(env, tmp_path):
    from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator

    secret = tmp_path / "secret.csv"
    secret.write_text("user,password\nroot,hunter2\n")
    sneaky = f"{env.root}/data/../../../{tmp_path.name}/secret.csv"
    op = GreatExpectationsValidateDataOperator(task_id="validate", path=sneaky, suite={"expectations": []})
    before = tree(env.reports_dir) if env.reports_dir.exists() else {}
    with pytest.raises(AirflowFailException, match=r"path '.*secret.csv' \(resolved: .*\) is outside the allowed "
                                                   r"roots; allowed roots: "):
        op.execute(context("validate"))
    assert (tree(env.reports_dir) if env.reports_dir.exists() else {}) == before  # nothing read, nothing recorded


def test_output_through_a_symlink_leaving_mlops_home_is_refused(env, tmp_path):
    from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = env.outputs_dir / "shortcut"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(outside)
    op = MlflowBatchScoreOperator(task_id="score", model_name="any", input_path=str(day_partition(env.root, "x")),
                                  output_path=str(link / "scores.parquet"))
    with pytest.raises(AirflowFailException, match="is outside the allowed roots"):
        op.execute(context("score"))
    assert os.listdir(outside) == []


def test_dvc_data_path_leaving_the_repository_is_refused(env):
    from airflow_mlops_provider.exceptions import PathNotAllowedError
    from airflow_mlops_provider.operators.dvc import DvcGetDataVersionOperator

    for path in ("../../etc/passwd", "/etc/passwd", "s3://bucket/x.parquet"):
        with pytest.raises(PathNotAllowedError, match="must be a relative path inside the DVC repository"):
            DvcGetDataVersionOperator(task_id="data", path=path).execute(context("data"))


def test_object_store_outside_the_allowed_buckets_is_refused(env, monkeypatch):
    from airflow_mlops_provider.sensors.object_storage import ObjectStoragePartitionSensor

    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", f"{env.root}, s3://landing/daily")
    for path in ("s3://other-team/daily/x.parquet", "s3://landing/private/x.parquet",
                 "s3://landing/daily/../private/x.parquet"):
        with pytest.raises(AirflowFailException, match=r"allowed roots: .*s3://landing/daily"):
            ObjectStoragePartitionSensor(task_id="wait", path=path, deferrable=True).execute(context("wait"))


def test_performance_check_refuses_labels_and_scores_outside_the_allowed_roots(env, tmp_path):
    """The monitoring DAG's Params name a labels file and a scored-partition pattern: both are
    checked before anything is read, and nothing is recorded."""
    from airflow_mlops_provider.operators.performance import MlflowCheckPerformanceDecayOperator

    secret = tmp_path / "2026-11-20.parquet"
    secret.write_text("not yours\n")
    inside = env.root / "data" / "labels" / "2026-11-20.parquet"
    inside.parent.mkdir(parents=True, exist_ok=True)
    inside.write_text("never read\n")
    before = env.ledger_path.read_bytes() if env.ledger_path.exists() else b""
    cases = [(str(secret), None, f"labels_path {str(secret)!r}"),
             (str(inside), f"{env.root}/../../{tmp_path.name}/date={{date}}.parquet", "scores_path '")]
    for labels, scores, needle in cases:
        op = MlflowCheckPerformanceDecayOperator(
            task_id="check_performance", model_name="any", model_task_type="binary", target="y",
            key_columns=["id"], labels_path=labels, labels_day="2026-11-20", scores_path=scores)
        with pytest.raises(AirflowFailException) as err:
            op.execute(context("check_performance"))
        assert needle in str(err.value) and "is outside the allowed roots" in str(err.value)
    assert (env.ledger_path.read_bytes() if env.ledger_path.exists() else b"") == before
