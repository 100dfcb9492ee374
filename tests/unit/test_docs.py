"""The docs' code comes from files the tests run: ``python file=PATH`` blocks are those files
verbatim, ``python test=tests/unit/test_docs.py`` blocks are executed here."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT

PAGES = sorted((REPO_ROOT / "docs").glob("*.md"))


def blocks(kind: str) -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        for target, code in re.findall(rf"```(?:python|toml) {kind}=(\S+)\n(.*?)```", page.read_text(), flags=re.S):
            found.append((page.name, target, code))
    return found


@pytest.mark.parametrize(("page", "path", "code"), blocks("file"), ids=lambda v: v if "\n" not in v else "")
def test_file_blocks_show_the_file_verbatim(page, path, code):
    assert code == (REPO_ROOT / path).read_text(), f"docs/{page} is out of date with {path}"
    if page == "pipelines.md":
        assert len(code.splitlines()) <= 40, f"{path} is longer than a user's DAG should be"


def test_there_are_verbatim_and_executed_blocks():
    assert {p for p, _, _ in blocks("file")} >= {"pipelines.md", "monitoring.md", "release.md"}
    assert [p for p, _, _ in blocks("test")] == ["monitoring.md"]


def test_the_bias_and_decay_snippet_builds_the_dag_it_describes():
    ((_, path, code),) = blocks("test")
    assert path == "tests/unit/test_docs.py"
    namespace: dict = {}
    exec(compile(code, "docs/monitoring.md", "exec"), namespace)  # our own docs
    dag, config = namespace["retrain"], namespace["LOANS"]
    assert dag.task_dict["train"].exclude_features == ["region"]
    assert dag.task_dict["decide"].sensitive_features == ["region"]
    rules = {r["name"]: r for r in dag.params["policy"]["metrics"]}
    assert rules["demographic_parity_difference"] == {"name": "demographic_parity_difference", "floor": 0.1,
                                                      "max_regression": 0.02, "direction": "lower"}
    assert config.effective_decay_policy["min_rows"] == 500
    assert any(a.name == "mlops_performance_degraded__loan-default" for a in dag.timetable.asset_condition.objects)
