"""The ``spark`` scoring backend against a real local Spark (pyspark 4.2 + the machine's OpenJDK 17),
through Spark Connect: one local Spark with a Connect server on a free loopback port for the whole
session (the JVM takes a while to start on 2 cores), reached through an Airflow connection of the
Spark provider (``spark_connect``) like a cluster would be.

Three models are trained and registered by the provider's real operators in a sqlite MLflow store:
binary (scikit-learn, the fraud demo), multiclass (a scikit-learn Pipeline, string labels) and
regression (LightGBM's own flavor). Each partition is scored by both backends through
``MlflowBatchScoreOperator``; the values must be identical, row for row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from airflow_mlops_provider.core.scoring import ScoringInputError
from tests.reliability.conftest import context

# The first test pays the JVM start, three trainings and the Python workers' first model load: minutes
# on a loaded 2-core machine, so the limit is above the suite's default 600 s.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("spark"), pytest.mark.timeout(1800)]

SPARK_CONN = "spark_connect_test"


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory):
    return tmp_path_factory.mktemp("spark") / "mlops"


@pytest.fixture(scope="session")
def spark_url():
    """One local Spark + Spark Connect server for the session (stopped at the end)."""
    from airflow_mlops_provider.scoring import spark as backend

    url = backend.local_connect_url("local[2]")
    yield url
    for key, session in list(backend._LOCAL.items()):  # the Connect sessions first, then the server
        if isinstance(key, tuple):
            session.stop()
    classic = backend._LOCAL.pop("classic", None)
    backend._LOCAL.clear()
    if classic is not None:
        classic.stop()


@pytest.fixture
def env(spark_home, spark_url, monkeypatch):
    """MLOPS_HOME with its sqlite MLflow store, and the Spark provider's connection to the server."""
    host, port = spark_url.removeprefix("sc://").rsplit(":", 1)
    monkeypatch.setenv("MLOPS_HOME", str(spark_home))
    monkeypatch.setenv(f"AIRFLOW_CONN_{SPARK_CONN.upper()}",
                       json.dumps({"conn_type": "spark_connect", "host": host, "port": int(port)}))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "AIRFLOW_CONN_MLFLOW_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    from airflow_mlops_provider.core.settings import mlops_home

    return mlops_home().ensure()


def _train(name: str, frame, target: str, id_column: str, train, task_type: str, **kwargs) -> dict:
    from airflow_mlops_provider.core.settings import mlops_home
    from airflow_mlops_provider.operators.registry import MlflowRegisterModelOperator
    from airflow_mlops_provider.operators.training import MlflowTrainModelOperator

    data = mlops_home().ensure().data_dir / f"{name}-train.parquet"
    frame.to_parquet(data, index=False)
    trained = MlflowTrainModelOperator(task_id="train", train_callable=train, data_path=str(data), target=target,
                                       experiment_name=f"{name}-training", model_task_type=task_type,
                                       id_columns=[id_column], **kwargs).execute(context("train"))
    registered = MlflowRegisterModelOperator(task_id="register", name=name, run_id=trained["run_id"],
                                             alias="champion").execute(context("register"))
    return {"version": str(registered["version"]), "run_id": trained["run_id"]}


@pytest.fixture(scope="session")
def models(spark_home):
    """binary, multiclass and regression champions (small data: a few seconds each)."""
    import sys

    from airflow_mlops_provider.core.demo_data import generate

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "examples"))
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_HOME", str(spark_home))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "AIRFLOW_CONN_MLFLOW_DEFAULT"):
        mp.delenv(name, raising=False)
    try:
        from example_data import house_frame, species_frame
        from house_price_pipeline import train_house_prices
        from species_pipeline import train_species

        from dags.fraud_model import train_fraud_model

        out = {
            "binary": {"name": "spark-fraud", "id": "transaction_id", "make": lambda n, s: generate(n, seed=s),
                       "target": "is_fraud", **_train("spark-fraud", generate(1500, seed=1), "is_fraud",
                                                      "transaction_id", train_fraud_model, "binary",
                                                      train_params={"max_iter": 30},
                                                      pip_requirements=["scikit-learn", "skops"])},
            "multiclass": {"name": "spark-species", "id": "bird_id", "make": species_frame, "target": "species",
                           **_train("spark-species", species_frame(900, 0), "species", "bird_id", train_species,
                                    "multiclass", pip_requirements=["scikit-learn", "skops"])},
            "regression": {"name": "spark-houses", "id": "house_id", "make": house_frame, "target": "price",
                           **_train("spark-houses", house_frame(900, 0), "price", "house_id", train_house_prices,
                                    "regression", flavor="lightgbm", train_params={"num_boost_round": 40},
                                    pip_requirements=["lightgbm"])},
        }
    finally:
        mp.undo()
    return out


def partition(home: Path, model: dict, rows: int = 600, seed: int = 7) -> Path:
    path = home / "data" / "incoming" / f"{model['name']}-{seed}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several row groups: Spark reads them as several partitions, the merge keeps their order.
    model["make"](rows, seed).drop(columns=[model["target"]]).to_parquet(path, index=False, row_group_size=250)
    return path


def score(model: dict, src: Path, out: Path, backend: str, **kwargs) -> dict:
    from airflow_mlops_provider.operators.batch import MlflowBatchScoreOperator

    config = {"spark_conn_id": SPARK_CONN} if backend == "spark" else None
    return MlflowBatchScoreOperator(task_id="score", model_name=model["name"], input_path=str(src),
                                    output_path=str(out), key_columns=[model["id"]], scoring_backend=backend,
                                    backend_config=config, **kwargs).execute(context("score"))


@pytest.mark.parametrize("task_type", ["binary", "multiclass", "regression"])
def test_spark_scores_are_identical_to_the_local_path(env, models, task_type):
    model = models[task_type]
    home = Path(os.environ["MLOPS_HOME"])
    src = partition(home, model)
    local = score(model, src, home / "outputs" / f"{task_type}-local.parquet", "local")
    spark = score(model, src, home / "outputs" / f"{task_type}-spark.parquet", "spark")
    a = pq.read_table(home / "outputs" / f"{task_type}-local.parquet")
    b = pq.read_table(home / "outputs" / f"{task_type}-spark.parquet")
    # The same output contract: columns, their order and types, one row per input row, in input order.
    assert b.schema == a.schema, (a.schema, b.schema)
    assert b.num_rows == a.num_rows == pq.ParquetFile(src).metadata.num_rows == spark["rows"] == 600
    assert b.column(model["id"]).to_pylist() == a.column(model["id"]).to_pylist()
    for column in local["output_columns"]:
        assert b.column(column).to_pylist() == a.column(column).to_pylist(), column  # identical, not close
    assert set(b.column("model_version").to_pylist()) == {model["version"]}
    assert set(b.column("model_run_id").to_pylist()) == {model["run_id"]}
    assert spark["output_columns"] == local["output_columns"]
    assert spark["model_version"] == local["model_version"] == model["version"]
    # The prediction summary is computed by Spark and agrees with the committed values.
    summary = spark["summary"]
    assert summary["rows"] == 600
    first = next(c for c in local["output_columns"] if summary.get(c, {}).get("mean") is not None)
    assert np.isclose(summary[first]["mean"], np.mean(a.column(first).to_numpy()), rtol=1e-9)


def test_the_version_is_pinned_at_run_start_and_shadow_scored(env, models):
    """A later version under the alias is not picked up by a run that pinned its version; the shadow
    (challenger) is scored beside it and compared by Spark."""
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    model = models["binary"]
    home = Path(os.environ["MLOPS_HOME"])
    src = partition(home, model, seed=8)
    client = MlflowHook().client
    first = model["version"]
    pinned_version = client.get_model_version(model["name"], first)
    second = client.create_model_version(model["name"], pinned_version.source, pinned_version.run_id,
                                         tags=dict(pinned_version.tags))
    client.set_registered_model_alias(model["name"], "challenger", second.version)
    try:
        pinned = score(model, src, home / "outputs" / "pinned.parquet", "spark", model_version=first,
                       shadow_alias="challenger")
        table = pq.read_table(home / "outputs" / "pinned.parquet")
        assert pinned["model_version"] == first and set(table.column("model_version").to_pylist()) == {first}
        assert pinned["shadow"]["version"] == str(second.version)
        # The same run's model under two versions: the shadow agrees everywhere.
        assert pinned["shadow"]["mean_abs_diff"] == 0.0 and pinned["shadow"]["decision_agreement"] == 1.0
        assert table.column("shadow_score").to_pylist() == table.column("score").to_pylist()
    finally:
        client.delete_registered_model_alias(model["name"], "challenger")


def test_a_missing_column_is_named_and_nothing_is_written(env, models):
    model = models["regression"]
    home = Path(os.environ["MLOPS_HOME"])
    src = home / "data" / "incoming" / "no-area.parquet"
    model["make"](50, 3).drop(columns=[model["target"], "area_m2"]).to_parquet(src, index=False)
    out = home / "outputs" / "no-area.parquet"
    with pytest.raises(ScoringInputError, match=r"lacks columns \['area_m2'\]"):
        score(model, src, out, "spark")
    assert not out.exists()


def test_infinite_values_are_refused_by_column(env, models):
    model = models["regression"]
    home = Path(os.environ["MLOPS_HOME"])
    frame = model["make"](50, 4).drop(columns=[model["target"]])
    frame.loc[3, "distance_km"] = float("inf")
    src = home / "data" / "incoming" / "inf.parquet"
    frame.to_parquet(src, index=False)
    out = home / "outputs" / "inf.parquet"
    with pytest.raises(ScoringInputError, match=r"column 'distance_km' holds 1 infinite value"):
        score(model, src, out, "spark")
    assert not out.exists()
