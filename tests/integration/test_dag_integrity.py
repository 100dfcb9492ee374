"""Every file in dags/ parses with no import errors, and parsing stays free of heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

DAG_FILES = sorted(p for folder in ("dags", "examples") for p in (REPO_ROOT / folder).glob("*.py")
                   if not p.name.startswith("_"))
HEAVY = ["mlflow", "great_expectations", "evidently", "dvc", "sklearn", "pandas", "sagemaker", "boto3",
         "kubernetes", "scipy", "pyarrow"]


def test_there_are_dags():
    assert DAG_FILES, "dags/ is empty"


@pytest.mark.parametrize(("folder", "dag_ids"), [
    ("dags", {"mlops_retrain", "mlops_batch_inference", "mlops_performance_monitoring", "mlops_rollback",
              "mlops_alias_audit"}),
    ("examples", {"species_retrain", "species_batch_inference", "house_price_retrain", "house_price_batch_inference",
                  "visit_count_retrain", "visit_count_batch_inference", "species_spark_batch_inference",
                  "fraud_governed_retrain"}),
])
def test_dagbag_imports_every_file_without_errors(folder, dag_ids, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    # As Airflow does for its DAG folder: a DAG file may import its model config from beside it.
    monkeypatch.syspath_prepend(str(REPO_ROOT / folder))
    bag = DagBag(dag_folder=str(REPO_ROOT / folder))
    assert bag.import_errors == {}
    assert dag_ids == set(bag.dag_ids)
    for dag_id in bag.dag_ids:
        dag = bag.dags[dag_id]
        assert dag.doc_md, f"{dag_id} has no doc_md"
        assert dag.catchup is False


REFERENCE_DAG = """
from datetime import datetime
from airflow.sdk import DAG, Asset, task
with DAG("reference", schedule=[Asset(name="r", uri="mlops://reference")], start_date=datetime(2026, 1, 1)):
    task(lambda: None, task_id="t")()
"""


def _heavy_after(code: str) -> set[str]:
    probe = code + f"\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_parsing_a_dag_file_imports_nothing_heavy(dag_file):
    # Airflow itself loads the amazon provider's S3 asset handler (and so boto3) for any DAG with
    # Assets when that provider is installed; compare with a minimal DAG to measure only ours.
    airflow_own = _heavy_after(f"exec(compile({REFERENCE_DAG!r}, 'reference', 'exec'))")
    # Airflow puts the DAG folder on sys.path (a DAG file may import its model config beside it).
    ours = _heavy_after(f"import runpy, sys; sys.path.insert(0, {str(dag_file.parent)!r}); "
                        f"runpy.run_path({str(dag_file)!r}, run_name='parse')")
    assert ours - airflow_own == set(), f"{dag_file.name} imports heavy modules at parse time"
