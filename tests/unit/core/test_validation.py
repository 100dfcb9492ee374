"""core.validation: suite parsing, result summaries and row splits, on real Great Expectations runs."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone

import great_expectations as gx
import numpy as np
import pandas as pd
import pytest

from airflow_mlops_provider.core import tables
from airflow_mlops_provider.core import validation as v
from airflow_mlops_provider.exceptions import DataFileError, SuiteDefinitionError

SUITE = {
    "name": "tx",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}, "severity": "critical"},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}, "severity": "critical"},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "cat", "value_set": ["a", "b"]},
         "severity": "warning"},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "amount", "max_value": 1000},
         "severity": "info"},
    ],
}


def frame(**overrides) -> pd.DataFrame:
    data = {"id": [1, 2, 3, 4, 5, 6], "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "cat": ["a", "b", "a", "b", "a", "b"]}
    data.update(overrides)
    return pd.DataFrame(data)


# -- load_suite ------------------------------------------------------------------------------
def test_load_suite_from_dict_file_inline_json_and_suite_object(tmp_path):
    built = v.load_suite(SUITE)
    assert isinstance(built, gx.ExpectationSuite) and built.name == "tx"
    assert [e.expectation_type for e in built.expectations] == [e["type"] for e in SUITE["expectations"]]
    # Severity is GE's own field; a missing one defaults to critical.
    assert [e.severity.value for e in built.expectations] == ["critical", "critical", "critical", "warning", "info"]

    path = tmp_path / "suite.json"
    path.write_text(json.dumps({k: val for k, val in SUITE.items() if k != "name"}))
    from_file = v.load_suite(path)
    assert from_file.name == "suite"  # unnamed: the file's stem
    assert len(from_file.expectations) == 5
    assert v.load_suite(str(path)).expectations[3].severity.value == "warning"
    assert v.load_suite(json.dumps(SUITE)).name == "tx"

    # A suite already bound to a context (ids set) is copied into a fresh, unbound one.
    context = gx.get_context(mode="ephemeral")
    bound = context.suites.add(v.load_suite(SUITE))
    assert bound.id and all(e.id for e in bound.expectations)
    copy = v.load_suite(bound)
    assert copy is not bound and copy.id is None and not any(e.id for e in copy.expectations)
    assert [e.severity.value for e in copy.expectations] == [e.severity.value for e in bound.expectations]


def test_legacy_expectation_type_key_is_accepted():
    suite = v.load_suite({"name": "s", "expectations": [
        {"expectation_type": "expect_column_to_exist", "kwargs": {"column": "a"}}]})
    assert suite.expectations[0].expectation_type == "expect_column_to_exist"


@pytest.mark.parametrize(("spec", "pattern"), [
    ({"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
                                    {"type": "expect_column_values_to_be_nul", "kwargs": {"column": "a"}}]},
     r"expectation #1 \(expect_column_values_to_be_nul\): unknown expectation type; did you mean "
     r"expect_column_values_to_be_null"),
    ({"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {}}]},
     r"expectation #0 \(expect_column_values_to_not_be_null\): invalid kwargs: column: field required"),
    ({"name": "s", "expectations": [{"type": "expect_column_values_to_be_between",
                                     "kwargs": {"column": "a", "min_value": "zero"}}]},
     r"expectation #0 \(expect_column_values_to_be_between\): invalid kwargs: min_value: .*\(got 'zero'\)"),
    ({"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"},
                                     "severity": "fatal"}]},
     r"expectation #0 \(expect_column_values_to_not_be_null\): severity 'fatal' is not one of"),
    ({"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null", "column": "a"}]},
     r"expectation #0 .*unknown key\(s\) \['column'\]; expectation arguments go under 'kwargs'"),
    ({"name": "s", "expectations": [{"kwargs": {"column": "a"}}]}, r"expectation #0 has no 'type'"),
    ({"name": "s", "expectations": ["expect_column_to_exist"]}, r"expectation #0 must be an object.*not str"),
    ({"name": "s", "expectations": [{"type": "expect_column_to_exist", "kwargs": ["a"]}]},
     r"expectation #0 \(expect_column_to_exist\): 'kwargs' must be an object"),
    ({"name": "s", "expectations": []}, r"empty 'expectations' list"),
    ({"name": "s", "expectation": []}, r"unknown key\(s\) \['expectation'\]"),
    ({"name": "s"}, r"has no 'expectations' list"),
    ({"name": "s", "expectations": {"type": "x"}}, r"'expectations' must be a list, not dict"),
    (["not", "a", "suite"], r"must be a dict, a JSON file path or an ExpectationSuite, not list"),
])
def test_bad_suites_name_the_expectation(spec, pattern):
    with pytest.raises(SuiteDefinitionError, match=pattern) as err:
        v.load_suite(spec)
    assert isinstance(err.value, ValueError)


def test_bad_suite_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(SuiteDefinitionError, match=f"Suite file '{missing}' does not exist"):
        v.load_suite(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "s",\n "expectations": [}\n')
    with pytest.raises(SuiteDefinitionError, match=f"suite file '{broken}' is not valid JSON: .* line 2"):
        v.load_suite(str(broken))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "s", "expectations": [{"type": "expect_nothing_at_all", "kwargs": {}}]}))
    with pytest.raises(SuiteDefinitionError, match=f"suite file '{bad}': expectation #0 \\(expect_nothing_at_all\\)"):
        v.load_suite(bad)


# -- run_suite + summarize -------------------------------------------------------------------
def test_summarize_splits_critical_failures_from_warnings():
    df = frame(id=[1, 2, 2, 4, 5, 6], amount=[1.0, None, -3.0, 4.0, 5.0, 6.0], cat=["a", "b", "z", "b", "a", "b"])
    run = v.run_suite(df, SUITE)
    summary = v.summarize(run.result)
    json.dumps(summary, allow_nan=False)  # JSON-safe, no NaN
    assert run.data_docs_uri is None
    assert summary["success"] is False and summary["suite_name"] == "tx"
    assert (summary["evaluated"], summary["successful"], summary["unsuccessful"]) == (5, 1, 4)
    failed = {(i["expectation_type"], i["column"]): i for i in summary["failed"]}
    assert set(failed) == {("expect_column_values_to_not_be_null", "amount"),
                           ("expect_column_values_to_be_between", "amount"),
                           ("expect_column_values_to_be_unique", "id")}
    nulls = failed[("expect_column_values_to_not_be_null", "amount")]
    assert (nulls["unexpected_count"], nulls["element_count"]) == (1, 6)
    assert nulls["unexpected_percent"] == pytest.approx(100 / 6)
    assert nulls["severity"] == "critical" and nulls["kwargs"] == {"column": "amount"}  # no batch_id
    assert failed[("expect_column_values_to_be_unique", "id")]["unexpected_count"] == 2
    assert [(w["expectation_type"], w["severity"], w["unexpected_count"]) for w in summary["warnings"]] == [
        ("expect_column_values_to_be_in_set", "warning", 1)]
    assert v.describe_failure(nulls) == ("expect_column_values_to_not_be_null on column 'amount': "
                                         "1 unexpected of 6 rows (16.67%)")


def test_only_non_critical_failures_is_a_success_although_ge_says_false():
    df = frame(cat=["a", "b", "z", "z", "a", "b"], amount=[5000.0] * 6)
    result = v.run_suite(df, SUITE).result
    assert result["success"] is False  # GE counts every severity
    summary = v.summarize(result)
    assert summary["success"] is True and summary["failed"] == []
    by_type = {w["expectation_type"]: w for w in summary["warnings"]}
    assert by_type["expect_column_values_to_be_in_set"]["unexpected_count"] == 2
    mean = by_type["expect_column_mean_to_be_between"]
    assert mean["severity"] == "info" and mean["observed_value"] == 5000.0 and mean["unexpected_count"] is None
    assert v.describe_failure(mean) == "expect_column_mean_to_be_between on column 'amount': observed 5000.0"


def test_summarize_reports_errors_and_drops_large_observed_values():
    suite = {"name": "s", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "missing_col"}},
        {"type": "expect_column_distinct_values_to_be_in_set", "kwargs": {"column": "id", "value_set": [1]},
         "severity": "warning"},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1000}},
    ]}
    df = pd.DataFrame({"id": range(500)})
    result = v.run_suite(df, suite).result
    summary = v.summarize(result)
    failed = {i["expectation_type"]: i for i in summary["failed"]}
    assert "missing_col" in failed["expect_column_values_to_not_be_null"]["exception"]
    assert "error:" in v.describe_failure(failed["expect_column_values_to_not_be_null"])
    assert failed["expect_table_row_count_to_be_between"]["observed_value"] == 500
    assert failed["expect_table_row_count_to_be_between"]["column"] is None
    assert summary["warnings"][0]["observed_value"] is None  # 500 distinct values: too large for XCom
    assert [i["expectation_type"] for i in v.unsplittable_failures(result)] == [
        "expect_column_values_to_not_be_null", "expect_table_row_count_to_be_between"]


def test_summarize_accepts_the_ge_result_object():
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
    suite = context.suites.add(v.load_suite(SUITE))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="d", data=batch, suite=suite))
    result = definition.run(batch_parameters={"dataframe": frame(amount=[None] * 6)})
    assert not isinstance(result, dict)
    summary = v.summarize(result)
    assert summary == v.summarize(result.to_json_dict())
    assert [i["unexpected_count"] for i in summary["failed"]] == [6]


# -- split_failing_rows ----------------------------------------------------------------------
def test_split_uses_index_labels_and_joins_reasons():
    suite = {"name": "s", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
        {"type": "expect_column_pair_values_a_to_be_greater_than_b",
         "kwargs": {"column_A": "amount", "column_B": "floor", "or_equal": True, "ignore_row_if": "either_value_is_missing"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "cat", "value_set": ["a"]},
         "severity": "warning"},
    ]}
    df = pd.DataFrame({"amount": [1.0, None, -2.0, 4.0, 0.5], "floor": [0.0, 0.0, -1.0, 0.0, 1.0],
                       "cat": ["a", "a", "a", "z", "a"]}, index=[10, 11, 12, 13, 14])
    result = v.run_suite(df, suite, result_format="COMPLETE").result
    kept, quarantined, reasons = v.split_failing_rows(df, result)
    assert list(quarantined.index) == [11, 12, 14]
    assert list(kept.index) == [10, 13]  # 13 only failed a warning
    assert len(kept) + len(quarantined) == len(df)
    assert reasons.to_dict() == {
        11: "expect_column_values_to_not_be_null(amount)",
        12: "expect_column_pair_values_a_to_be_greater_than_b(amount, floor); "
            "expect_column_values_to_be_between(amount)",
        14: "expect_column_pair_values_a_to_be_greater_than_b(amount, floor)",
    }
    pd.testing.assert_frame_equal(quarantined, df.loc[[11, 12, 14]])
    # Warnings quarantine too when asked.
    split = v.split_failing_rows(df, result, severities=("critical", "warning"))
    assert list(split.kept.index) == [10]
    assert split.reasons[13] == "expect_column_values_to_be_in_set(cat)"


def test_split_with_nothing_failing_keeps_every_row():
    df = frame()
    split = v.split_failing_rows(df, v.run_suite(df, SUITE, result_format="COMPLETE").result)
    assert split.quarantined.empty and split.reasons.empty
    pd.testing.assert_frame_equal(split.kept, df)


def test_split_refuses_partial_results_and_foreign_frames():
    df = frame(amount=[None, 2.0, 3.0, 4.0, 5.0, 6.0])
    with pytest.raises(ValueError, match="result_format='COMPLETE'"):
        v.split_failing_rows(df, v.run_suite(df, SUITE, result_format="SUMMARY").result)
    complete = v.run_suite(df, SUITE, result_format="COMPLETE").result
    with pytest.raises(ValueError, match="not in the frame's index: the result was computed on another frame"):
        v.split_failing_rows(df.iloc[1:], complete)


# -- files -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "file_format", "expected"), [
    ("data/tx.csv", None, ("csv", None)),
    ("s3://bucket/TX.CSV", None, ("csv", None)),
    ("tx.csv.gz", None, ("csv", "gzip")),
    ("tx.parquet", None, ("parquet", None)),
    ("/x/tx.pq", None, ("parquet", None)),
    ("tx.data", "CSV", ("csv", None)),
    ("tx.data", ".parquet", ("parquet", None)),
])
def test_infer_format(path, file_format, expected):
    assert tables.infer_format(path, file_format) == expected


def test_unknown_formats_name_the_path():
    with pytest.raises(DataFileError, match="Cannot infer the file format of 's3://b/tx.json'"):
        tables.infer_format("s3://b/tx.json")
    with pytest.raises(DataFileError, match="'tx.parquet.gz'"):
        tables.infer_format("tx.parquet.gz")
    with pytest.raises(DataFileError, match="file_format 'xlsx' for 'tx.csv' is not supported"):
        tables.infer_format("tx.csv", "xlsx")


def test_read_frame_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataFileError, match=f"Cannot read '{bad}' as parquet"):
        tables.read_frame(str(bad), "parquet", name=str(bad))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataFileError, match=f"Cannot read '{empty}' as csv: EmptyDataError"):
        tables.read_frame(str(empty), "csv", name=str(empty))
    with pytest.raises(FileNotFoundError, match="Data file 'gone.csv' does not exist"):
        tables.read_frame(str(tmp_path / "gone.csv"), "csv", name="gone.csv")


@pytest.mark.parametrize(("fmt", "compression"), [("csv", None), ("csv", "gzip"), ("parquet", None)])
def test_frame_bytes_round_trip(tmp_path, fmt, compression):
    df = frame()
    target = tmp_path / "out"
    target.write_bytes(tables.frame_to_bytes(df, fmt, compression=compression))
    pd.testing.assert_frame_equal(tables.read_frame(str(target), fmt, name="out", compression=compression), df)


def test_write_json_atomic_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "reports" / "r.json"
    v.write_json_atomic(target, {"x": float("nan"), "n": np.int64(3)})
    assert json.loads(target.read_text()) == {"x": None, "n": 3}

    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        v.write_json_atomic(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": None, "n": 3}  # the old file, untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.json"]  # no temp file left


def test_json_safe():
    when = datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert v.json_safe({"a": np.float64("nan"), "b": [np.int32(2), math.inf], 3: when, "c": np.array([1, 2]),
                        "d": object}) == {"a": None, "b": [2, None], "3": when.isoformat(), "c": [1, 2],
                                          "d": str(object)}
    assert v.safe_name("s3://b/Daily Tx!") == "s3_b_Daily_Tx" and v.safe_name("///") == "data"
    assert type(v.json_safe(np.float64(1.5))) is float and type(v.json_safe(np.bool_(True))) is bool
