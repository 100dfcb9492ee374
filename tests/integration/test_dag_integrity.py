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
         "kubernetes", "scipy", "pyarrow", "shap", "numba", "pyspark", "matplotlib"]


def test_there_are_dags():
    assert DAG_FILES, "dags/ is empty"


@pytest.mark.parametrize(("folder", "dag_ids"), [
    ("dags", {"mlops_retrain", "mlops_batch_inference", "mlops_performance_monitoring", "mlops_rollback",
              "mlops_alias_audit", "mlops_online_monitoring", "mlops_online_performance"}),
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


# One interpreter parses the reference DAG, then every DAG file in turn, and reports after each which
# heavy modules are loaded: a heavy module is named with the first file that brought it in (a new
# interpreter per file cost ~10 s each, about 3 minutes in all).
PROBE = """
import json, runpy, sys
heavy = {heavy!r}
def loaded():
    return sorted(m for m in heavy if m in sys.modules)
exec(compile({reference!r}, 'reference', 'exec'))
report = {{'reference': loaded()}}
for path in {paths!r}:
    folder = path.rsplit('/', 1)[0]
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as Airflow does: a DAG file may import its model config beside it
    runpy.run_path(path, run_name='parse')
    report[path] = loaded()
print(json.dumps(report))
"""


def test_parsing_the_dag_files_imports_nothing_heavy():
    # Airflow itself loads the amazon provider's S3 asset handler (and so boto3) for any DAG with
    # Assets when that provider is installed; compare with a minimal DAG to measure only ours.
    paths = [str(p) for p in DAG_FILES]
    code = PROBE.format(heavy=HEAVY, reference=REFERENCE_DAG, paths=paths)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report) == {"reference", *paths}
    seen, brought = set(report["reference"]), {}
    for path in paths:
        new = set(report[path]) - seen
        if new:
            brought[path.rsplit("/", 1)[-1]] = sorted(new)
        seen |= new
    assert brought == {}, f"these DAG files import heavy modules at parse time: {brought}"
