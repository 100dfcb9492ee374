"""GreatExpectationsValidateDataOperator: real GE on real CSV and Parquet files.

``execute`` is called directly with a minimal context; the task instance is the boundary mock
(its ``xcom_push`` calls are what a real task would store). GE, pandas, the files and the data
docs are all real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest.mock import MagicMock, call
from urllib.parse import quote, urlsplit

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops_provider.core import files
from airflow_mlops_provider.exceptions import DataFileError, DataValidationError, SuiteDefinitionError
from airflow_mlops_provider.links.validation import GreatExpectationsDataDocsLink
from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def allowed_roots(tmp_path, monkeypatch):
    """These files live in the test's folder and a (moto) bucket: allow both, as a deployment would."""
    monkeypatch.setenv("MLOPS_ALLOWED_ROOTS", f"{tmp_path}, s3://lake, s3://bucket")

SUITE = {
    "name": "transactions",
    "expectations": [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["id", "amount", "hour", "cat"]}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}, "severity": "critical"},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}, "severity": "critical"},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0},
         "severity": "critical"},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "hour", "min_value": 0, "max_value": 23},
         "severity": "critical"},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "cat", "value_set": ["food", "travel"]},
         "severity": "warning"},
    ],
}


def clean_frame(n: int = 12) -> pd.DataFrame:
    return pd.DataFrame({
        "id": list(range(1, n + 1)),
        "amount": [float(10 + i) for i in range(n)],
        "hour": [i % 24 for i in range(n)],
        "cat": ["food" if i % 2 else "travel" for i in range(n)],
    })


def write(df: pd.DataFrame, path: Path) -> str:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return str(path)


def run(context_ti: MagicMock | None = None, **kwargs):
    ti = context_ti or MagicMock()
    kwargs.setdefault("suite", SUITE)
    op = GreatExpectationsValidateDataOperator(task_id="validate", **kwargs)
    return op.execute({"ti": ti}), ti


def pushed(ti: MagicMock) -> dict:
    return {c.kwargs["key"]: c.kwargs["value"] for c in ti.xcom_push.call_args_list}


def local(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(urlsplit(uri).path)


def no_temp_files(*folders: Path) -> None:
    leftovers = [p for folder in folders for p in folder.rglob(".*.tmp")]
    assert leftovers == [], leftovers


# -- gate ------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_clean_file_passes_and_records_everything(mlops_home, tmp_path, suffix):
    path = write(clean_frame(), tmp_path / f"tx{suffix}")
    result, ti = run(path=path)

    assert result["success"] is True and result["failed"] == [] and result["warnings"] == []
    assert result["rows"] == 12 and result["path"] == path and result["quarantine"] is None
    assert result["result_id"].startswith("tx-")
    json.dumps(result, allow_nan=False)

    # XCom: the summary first, then the data docs link.
    assert [c.kwargs["key"] for c in ti.xcom_push.call_args_list] == ["validation_result", "data_docs_page"]
    summary = pushed(ti)["validation_result"]
    assert summary["result_id"] == result["result_id"] and summary["rows"] == 12
    assert (summary["evaluated"], summary["successful"], summary["unsuccessful"]) == (6, 6, 0)

    # Full result on disk, under MLOPS_HOME, in GE's shape.
    report = local(result["result_uri"])
    assert report == mlops_home / "reports" / "validation" / f"{result['result_id']}.json"
    full = json.loads(report.read_text())
    assert full["suite_name"] == "transactions" and len(full["results"]) == 6
    assert full["meta"]["mlops"] == {"result_id": result["result_id"], "path": path, "rows": 12,
                                     "file_format": suffix[1:], "success": True}

    # Data docs page rendered for this very run, linked through XCom.
    page = local(result["data_docs_uri"])
    assert page.is_file() and page.is_relative_to(mlops_home / "reports" / "data_docs")
    html = page.read_text()
    assert result["result_id"] in str(page) and result["result_id"] in html
    assert "values must be unique" in html and "values must never be null" in html
    # The link's XCom holds the page relative to the data docs folder (the plugin serves it over http).
    assert pushed(ti)["data_docs_page"] == page.relative_to(mlops_home / "reports" / "data_docs").as_posix()
    verdict = json.loads(page.with_name(page.name + ".verdict.json").read_text())
    assert verdict == {"success": True, "evaluated": 6, "successful": 6, "failed": 0, "warnings": 0}
    assert "pass; 6/6 passed" in (mlops_home / "reports" / "data_docs" / "index.html").read_text()
    no_temp_files(mlops_home)


def test_later_runs_keep_earlier_data_docs_pages(mlops_home, tmp_path):
    first, _ = run(path=write(clean_frame(), tmp_path / "a.csv"))
    second, _ = run(path=write(clean_frame(), tmp_path / "b.parquet"),
                    suite={**SUITE, "name": "other_suite"})
    assert first["data_docs_uri"] != second["data_docs_uri"]
    assert local(first["data_docs_uri"]).is_file() and local(second["data_docs_uri"]).is_file()
    suites = mlops_home / "reports" / "data_docs" / "expectations"
    assert sorted(p.name for p in suites.iterdir()) == ["other_suite.html", "transactions.html"]


def test_failing_file_fails_with_each_expectation_after_pushing_the_summary(mlops_home, tmp_path):
    df = clean_frame()
    df.loc[[1, 4, 7], "amount"] = None
    df.loc[[2, 3], "amount"] = -5.0
    df.loc[5, "id"] = 1  # duplicate of row 0
    df.loc[9, "cat"] = "crypto"  # a warning only
    path = write(df, tmp_path / "tx.parquet")
    ti = MagicMock()

    with pytest.raises(AirflowFailException) as err:
        run(ti, path=path)

    message = str(err.value)
    assert f"Data validation of '{path}' against suite 'transactions' failed: 3 critical expectation(s)" in message
    assert "expect_column_values_to_not_be_null on column 'amount': 3 unexpected of 12 rows (25.00%)" in message
    assert "expect_column_values_to_be_between on column 'amount': 2 unexpected of 12 rows" in message
    assert "expect_column_values_to_be_unique on column 'id': 2 unexpected of 12 rows" in message
    assert "crypto" not in message and "expect_column_values_to_be_in_set" not in message  # warning
    assert "hour" not in message

    # The summary was pushed before the raise, and the exception chain carries the same record.
    assert ti.xcom_push.call_args_list[0] == call(key="validation_result", value=pushed(ti)["validation_result"])
    summary = pushed(ti)["validation_result"]
    assert isinstance(err.value.__cause__, DataValidationError)
    assert err.value.__cause__.context == summary
    assert summary["success"] is False
    assert sorted((i["column"], i["unexpected_count"]) for i in summary["failed"]) == [
        ("amount", 2), ("amount", 3), ("id", 2)]
    assert [(w["column"], w["unexpected_count"]) for w in summary["warnings"]] == [("cat", 1)]
    assert summary["result_uri"] in message and summary["data_docs_uri"] in message
    full = json.loads(local(summary["result_uri"]).read_text())
    assert full["meta"]["mlops"]["success"] is False


def test_warning_only_failure_passes_and_is_recorded(mlops_home, tmp_path):
    df = clean_frame()
    df.loc[[0, 3], "cat"] = "crypto"
    path = write(df, tmp_path / "tx.csv")

    result, ti = run(path=path, data_docs=False)

    assert result["success"] is True and result["failed"] == []
    assert result["data_docs_uri"] is None
    assert [(w["expectation_type"], w["severity"], w["column"], w["unexpected_count"]) for w in result["warnings"]] == [
        ("expect_column_values_to_be_in_set", "warning", "cat", 2)]
    assert pushed(ti)["validation_result"]["warnings"] == result["warnings"]
    assert "data_docs_page" not in pushed(ti)  # no docs, no link
    assert not (mlops_home / "reports" / "data_docs").exists()
    full = json.loads(local(result["result_uri"]).read_text())
    assert full["success"] is False  # GE's own verdict counts warnings...
    assert full["meta"]["mlops"]["success"] is True  # ...the gate does not


def test_suite_from_a_json_file_and_a_templated_render(mlops_home, tmp_path):
    suite_file = tmp_path / "suite.json"
    suite_file.write_text(json.dumps(SUITE))
    path = write(clean_frame(), tmp_path / "tx.csv")
    op = GreatExpectationsValidateDataOperator(task_id="validate", path="{{ params.path }}", suite=str(suite_file),
                                               result_name="{{ params.label }}")
    assert op.template_fields_renderers == {"suite": "json"}
    assert {"path", "suite", "quarantine_path", "valid_output_path", "conn_id"} <= set(op.template_fields)
    assert [type(link) for link in op.operator_extra_links] == [GreatExpectationsDataDocsLink]
    op.render_template_fields({"params": {"path": path, "label": "daily tx"}})
    assert op.path == path
    result = op.execute({"ti": MagicMock()})
    assert result["success"] is True and result["result_id"].startswith("daily_tx-")


# -- quarantine ------------------------------------------------------------------------------
@pytest.mark.parametrize(("suffix", "custom_paths"), [(".csv", False), (".parquet", True)])
def test_quarantine_writes_both_files_with_exact_rows(mlops_home, tmp_path, suffix, custom_paths):
    df = clean_frame(20)
    df.loc[[2, 11], "amount"] = None
    df.loc[11, "hour"] = 30  # same row fails twice: quarantined once
    df.loc[15, "hour"] = -1
    df.loc[7, "cat"] = "crypto"  # warning: the row stays valid
    path = write(df, tmp_path / f"tx{suffix}")
    outputs = tmp_path / "out"
    kwargs = {"quarantine_path": str(outputs / f"bad{suffix}"), "valid_output_path": str(outputs / f"good{suffix}")}

    result, ti = run(path=path, quarantine=True, **(kwargs if custom_paths else {}))

    assert result["success"] is False  # the input failed; the task handled it
    q = result["quarantine"]
    assert (q["rows"], q["valid_rows"]) == (3, 17)
    if custom_paths:
        assert local(q["path"]) == outputs / f"bad{suffix}" and local(q["valid_path"]) == outputs / f"good{suffix}"
    else:
        assert local(q["path"]).parent == mlops_home / "reports" / "validation"
        assert local(q["path"]).name == f"{result['result_id']}.quarantine{suffix}"
        assert local(q["valid_path"]) == mlops_home / "data" / "validated" / result["result_id"] / f"tx{suffix}"
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    bad, good = read(local(q["path"])), read(local(q["valid_path"]))
    assert sorted(bad["id"]) == [3, 12, 16]
    assert sorted(good["id"]) == sorted(set(range(1, 21)) - {3, 12, 16})
    assert list(good.columns) == list(df.columns)
    pd.testing.assert_frame_equal(good.reset_index(drop=True),
                                  df[~df["id"].isin([3, 12, 16])].reset_index(drop=True), check_dtype=False)
    reasons = dict(zip(bad["id"], bad["_failed_expectations"], strict=True))
    assert reasons == {
        3: "expect_column_values_to_not_be_null(amount)",
        12: "expect_column_values_to_be_between(hour); expect_column_values_to_not_be_null(amount)",
        16: "expect_column_values_to_be_between(hour)",
    }
    assert sorted((i["column"], i["unexpected_count"]) for i in result["failed"]) == [("amount", 2), ("hour", 2)]
    assert pushed(ti)["validation_result"]["result_id"] == result["result_id"]
    no_temp_files(mlops_home, tmp_path)


def test_quarantine_with_every_row_failing_fails_the_task(mlops_home, tmp_path):
    df = clean_frame(4)
    df["amount"] = None
    path = write(df, tmp_path / "tx.csv")
    valid = tmp_path / "valid.csv"
    ti = MagicMock()
    with pytest.raises(AirflowFailException, match=r"all 4 rows failed \(quarantined in file://"):
        run(ti, path=path, quarantine=True, quarantine_path=str(tmp_path / "bad.csv"), valid_output_path=str(valid))
    assert len(pd.read_csv(tmp_path / "bad.csv")) == 4
    assert not valid.exists()
    assert pushed(ti)["validation_result"]["failed"][0]["unexpected_count"] == 4


def test_quarantine_of_a_header_only_file_writes_two_empty_files(mlops_home, tmp_path):
    path = write(clean_frame(0), tmp_path / "tx.csv")
    result, _ = run(path=path, quarantine=True)
    assert result["success"] is True and result["rows"] == 0
    q = result["quarantine"]
    assert (q["rows"], q["valid_rows"]) == (0, 0)
    assert list(pd.read_csv(local(q["valid_path"])).columns) == ["id", "amount", "hour", "cat"]
    assert pd.read_csv(local(q["path"])).empty


def test_quarantine_cannot_fix_a_table_level_failure(mlops_home, tmp_path):
    df = clean_frame(5).drop(columns=["cat"])
    df.loc[0, "amount"] = None
    path = write(df, tmp_path / "tx.csv")
    with pytest.raises(AirflowFailException, match=r"1 critical expectation\(s\) failed that name no rows") as err:
        run(path=path, quarantine=True, valid_output_path=str(tmp_path / "valid.csv"))
    assert "expect_table_columns_to_match_set" in str(err.value)
    assert not (tmp_path / "valid.csv").exists()
    assert not list((mlops_home / "reports" / "validation").glob("*.quarantine.*"))


def test_a_failed_write_publishes_nothing_partial(mlops_home, tmp_path, monkeypatch):
    df = clean_frame(6)
    df.loc[0, "amount"] = None
    path = write(df, tmp_path / "tx.parquet")
    valid = tmp_path / "out" / "valid.parquet"
    real_replace = os.replace

    def replace(src, dst):  # the disk fills up as the valid rows are published
        if Path(dst) == valid:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        run(path=path, quarantine=True, quarantine_path=str(tmp_path / "out" / "bad.parquet"),
            valid_output_path=str(valid))
    assert not valid.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bad.parquet"]  # complete, no temp files
    assert len(pd.read_parquet(tmp_path / "out" / "bad.parquet")) == 1


# -- object storage --------------------------------------------------------------------------
def test_s3_input_and_outputs_through_object_storage(mlops_home, tmp_path, s3_bucket):
    df = clean_frame(8)
    df.loc[[1, 6], "hour"] = 99
    s3_bucket.put_object(Bucket="lake", Key="in/tx.csv", Body=df.to_csv(index=False).encode())

    result, _ = run(path="s3://lake/in/tx.csv", conn_id="aws_lake", quarantine=True,
                    quarantine_path="s3://lake/quarantine/tx.csv", valid_output_path="s3://lake/valid/tx.parquet")

    assert result["rows"] == 8
    assert result["quarantine"] == {"path": "s3://lake/quarantine/tx.csv", "rows": 2,
                                    "valid_path": "s3://lake/valid/tx.parquet", "valid_rows": 6}
    bad = pd.read_csv(s3_bucket.get_object(Bucket="lake", Key="quarantine/tx.csv")["Body"])
    assert sorted(bad["id"]) == [2, 7]
    good = tmp_path / "good.parquet"
    good.write_bytes(s3_bucket.get_object(Bucket="lake", Key="valid/tx.parquet")["Body"].read())
    assert sorted(pd.read_parquet(good)["id"]) == [1, 3, 4, 5, 6, 8]
    with pytest.raises(FileNotFoundError, match="Data file 's3://lake/in/nope.csv' does not exist"):
        run(path="s3://lake/in/nope.csv", conn_id="aws_lake")


# -- bad input -------------------------------------------------------------------------------
def test_bad_inputs_name_the_path(mlops_home, tmp_path):
    missing = tmp_path / "missing.csv"
    with pytest.raises(FileNotFoundError, match=f"Data file '{missing}' does not exist"):
        run(path=str(missing))
    with pytest.raises(DataFileError, match=f"Cannot infer the file format of '{tmp_path / 'tx.json'}'"):
        run(path=str(tmp_path / "tx.json"))
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"definitely not parquet")
    with pytest.raises(DataFileError, match=f"Cannot read '{corrupt}' as parquet"):
        run(path=str(corrupt))
    with pytest.raises(DataFileError, match="'s3://bucket/out.xlsx'"):
        run(path=str(missing), quarantine=True, quarantine_path="s3://bucket/out.xlsx")
    with pytest.raises(ValueError, match="quarantine_path only apply with quarantine=True"):
        run(path=str(missing), quarantine_path=str(tmp_path / "q.csv"))
    with pytest.raises(SuiteDefinitionError, match=r"expectation #0 \(expect_nope\)"):
        GreatExpectationsValidateDataOperator(
            task_id="v", path=write(clean_frame(), tmp_path / "ok.csv"),
            suite={"name": "s", "expectations": [{"type": "expect_nope", "kwargs": {}}]},
        ).execute({"ti": MagicMock()})
    assert not (mlops_home / "reports").exists()  # nothing recorded for input that never ran


# -- a real Airflow run ----------------------------------------------------------------------
DAG_FILE = '''
"""Two validation tasks: one clean file, one failing file."""
from airflow.sdk import DAG

from airflow_mlops_provider.operators.validation import GreatExpectationsValidateDataOperator

SUITE = {suite!r}

with DAG("ge_validation_check", schedule=None, catchup=False, doc_md=__doc__) as dag:
    GreatExpectationsValidateDataOperator(task_id="clean", path={clean!r}, suite=SUITE)
    GreatExpectationsValidateDataOperator(task_id="failing", path="{{{{ params.bad }}}}", suite=SUITE,
                                          params={{"bad": {bad!r}}}, retries=3)
'''


def test_airflow_run_stores_summary_link_and_fails_without_retry(mlops_home, tmp_path, run_dag, airflow_db):
    import sqlite3

    bad_df = clean_frame()
    bad_df.loc[0, "amount"] = None
    clean, bad = write(clean_frame(), tmp_path / "clean.csv"), write(bad_df, tmp_path / "bad.csv")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "ge_validation_check.py").write_text(DAG_FILE.format(suite=SUITE, clean=clean, bad=bad))

    result = run_dag("ge_validation_check", dags_folder=dags)

    assert result.returncode != 0, result
    assert result.states == {"clean": "success", "failing": "failed"}, result  # retries=3, yet no retry
    assert "expect_column_values_to_not_be_null on column 'amount': 1 unexpected of 12 rows" in result.output
    with sqlite3.connect(airflow_db) as db:
        rows = db.execute("SELECT task_id, key, value FROM xcom WHERE dag_id=? AND run_id=?",
                          ("ge_validation_check", result.run_id)).fetchall()
    xcoms = {(task, key): json.loads(value) for task, key, value in rows}
    link_key = GreatExpectationsDataDocsLink().xcom_key
    for task in ("clean", "failing"):
        summary = xcoms[(task, "validation_result")]
        # Airflow asked the link in the worker and stored what it returned for the UI.
        page = local(summary["data_docs_uri"])
        relative = page.relative_to(mlops_home / "reports" / "data_docs").as_posix()
        assert xcoms[(task, "data_docs_page")] == relative
        assert xcoms[(task, link_key)].endswith(f"/mlops/reports/data_docs/{quote(relative)}")
        assert page.is_file()
    assert xcoms[("clean", "return_value")]["success"] is True
    assert xcoms[("clean", "return_value")]["result_id"] == xcoms[("clean", "validation_result")]["result_id"]
    assert ("failing", "return_value") not in xcoms
    assert [i["unexpected_count"] for i in xcoms[("failing", "validation_result")]["failed"]] == [1]
