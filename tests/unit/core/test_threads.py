"""Scoring threads: sized to the cores the task gets, overridable by one setting, and idle OpenMP
threads told to sleep (when that can still take effect)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from airflow_mlops_provider.core import threads


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in (threads.ENV_VAR, "AIRFLOW__MLOPS__SCORING_THREADS", "AIRFLOW_CONFIG", *threads.WAIT_VARIABLES):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow-home"))
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", tmp_path / "no-cgroup")
    return monkeypatch


def test_the_default_is_the_cpu_affinity_not_the_machine(clean_env):
    clean_env.setattr(os, "sched_getaffinity", lambda pid: {0, 5, 7}, raising=False)
    clean_env.setattr(os, "cpu_count", lambda: 64)
    assert threads.resolve_scoring_threads() == (3, "the cores this process may run on")


def test_a_cgroup_quota_caps_the_affinity(clean_env, tmp_path):
    clean_env.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    quota = tmp_path / "cpu.max"
    clean_env.setattr(threads, "CGROUP_CPU_MAX", quota)
    quota.write_text("150000 100000\n")  # 1.5 cores: 2 threads
    assert threads.available_cores() == 2
    quota.write_text("20000 100000\n")  # a fifth of a core: still one thread
    assert threads.available_cores() == 1
    quota.write_text("max 100000\n")
    assert threads.available_cores() == 8


def test_the_setting_overrides_the_affinity_in_order(clean_env, tmp_path):
    clean_env.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    cfg = tmp_path / "airflow-home" / "airflow.cfg"
    cfg.parent.mkdir()
    cfg.write_text("[core]\ndags_folder = /x\n\n[mlops]\nscoring_threads = 5\n")
    assert threads.resolve_scoring_threads() == (5, "[mlops] scoring_threads")
    clean_env.setenv("AIRFLOW__MLOPS__SCORING_THREADS", "4")
    assert threads.resolve_scoring_threads() == (4, "[mlops] scoring_threads")
    clean_env.setenv(threads.ENV_VAR, "3")
    assert threads.resolve_scoring_threads() == (3, f"the {threads.ENV_VAR} environment variable")
    assert threads.resolve_scoring_threads(1) == (1, "the scoring_threads argument")
    assert threads.resolve_scoring_threads("None")[0] == 3  # an unset templated argument


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_an_invalid_setting_names_its_key(clean_env, value):
    clean_env.setenv("AIRFLOW__MLOPS__SCORING_THREADS", value)
    with pytest.raises(ValueError, match=r"\[mlops\] scoring_threads \(AIRFLOW__MLOPS__SCORING_THREADS\) must be"):
        threads.resolve_scoring_threads()
    clean_env.setenv(threads.ENV_VAR, value)
    with pytest.raises(ValueError, match=f"the {threads.ENV_VAR} environment variable must be a whole number"):
        threads.resolve_scoring_threads()
    with pytest.raises(ValueError, match="^scoring_threads must be"):
        threads.resolve_scoring_threads(value)


def test_a_wait_policy_the_user_chose_is_left_alone(clean_env):
    clean_env.setenv("GOMP_SPINCOUNT", "10000")
    assert threads.quiet_openmp_waits() == "user"
    assert "OMP_WAIT_POLICY" not in os.environ


def test_the_wait_policy_is_set_only_before_the_openmp_runtime_loads(tmp_path):
    """In a fresh process (this one may have loaded libgomp already): passive before scikit-learn
    is imported, and reported as too late after, with the runtime named."""
    script = """
import json, os
from airflow_mlops_provider.core import threads
for var in threads.WAIT_VARIABLES:
    os.environ.pop(var, None)
before = threads.quiet_openmp_waits()
policy = os.environ.get("OMP_WAIT_POLICY")
import sklearn.ensemble  # loads scikit-learn's libgomp
del os.environ["OMP_WAIT_POLICY"]
print(json.dumps({"before": before, "policy": policy, "after": threads.quiet_openmp_waits(),
                  "loaded": threads.openmp_loaded()}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] == "passive" and result["policy"] == "PASSIVE"
    assert result["after"] == "too late" and any("libgomp" in p for p in result["loaded"])


def test_thread_limits_bound_openmp_while_scoring_and_keep_scores_identical(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_info

    from airflow_mlops_provider.core.scoring import score_file

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(6000, 4)), columns=list("abcd"))
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, (X["a"] + X["b"] > 0).astype(int))
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": np.arange(len(X)), **{c: X[c] for c in X}}), src)
    seen = []

    def predict(frame):
        seen.append({i["user_api"]: i["num_threads"] for i in threadpool_info()}.get("openmp"))
        return model.predict_proba(frame)[:, 1]

    scores = {}
    for limit in (1, 2, None):
        out = tmp_path / f"out-{limit}.parquet"
        stats = score_file(src, out, predict, list("abcd"), ["id"], chunk_rows=1000, threads=limit)
        assert stats.threads == limit and stats.rows == len(X)
        assert min(stats.read_seconds, stats.convert_seconds, stats.predict_seconds, stats.write_seconds) > 0
        scores[limit] = pq.read_table(out).column("score").to_numpy()
    assert seen[0] == 1 and seen[6] == 2  # the limit holds in the thread that predicts
    expected = model.predict_proba(X)[:, 1]
    for limit, got in scores.items():
        assert np.array_equal(got, expected), limit


class _SliceRecorder:
    """A predict callable that declares itself thread-safe, as TaskScorer does on the raw
    scikit-learn path, and records each call's thread, OpenMP limit and rows."""

    thread_safe = True

    def __init__(self, model):
        import threading

        self.model, self.calls, self.lock = model, [], threading.Lock()

    def __call__(self, frame):
        import threading

        from threadpoolctl import threadpool_info

        with self.lock:
            self.calls.append((threading.current_thread().name, len(frame),
                               {i["user_api"]: i["num_threads"] for i in threadpool_info()}.get("openmp")))
        return self.model.predict_proba(frame)[:, 1]


def test_a_thread_safe_model_predicts_slices_side_by_side_in_order(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.ensemble import HistGradientBoostingClassifier

    from airflow_mlops_provider.core.scoring import score_file

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(5000, 3)), columns=list("abc"))
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, (X["a"] > X["b"]).astype(int))
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": np.arange(len(X)), **{c: X[c] for c in X}}), src, row_group_size=1000)
    predict = _SliceRecorder(model)
    out = tmp_path / "out.parquet"
    stats = score_file(src, out, predict, list("abc"), ["id"], chunk_rows=1000, threads=2)
    table = pq.read_table(out)
    assert stats.rows == 5000 and table.column("id").to_pylist() == list(range(5000))
    assert np.array_equal(table.column("score").to_numpy(), model.predict_proba(X)[:, 1])
    # Every 1000-row chunk went to the two predict threads as two 500-row slices, one OpenMP thread each.
    assert len(predict.calls) == 10 and {rows for _, rows, _ in predict.calls} == {500}
    assert {name.rsplit("_", 1)[0] for name, _, _ in predict.calls} == {"score-predict"}
    assert {omp for _, _, omp in predict.calls} == {1}


def test_a_slice_the_model_cannot_score_is_named_by_its_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.ensemble import HistGradientBoostingClassifier

    from airflow_mlops_provider.core.scoring import ScoringInputError, score_file

    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(2000, 2)), columns=list("ab"))
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, (X["a"] > 0).astype(int))
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": np.arange(len(X)), **{c: X[c] for c in X}}), src)
    out = tmp_path / "out.parquet"
    # The fourth call is one of the two slices of the second chunk (they run side by side).
    calls = []

    class Failing(_SliceRecorder):
        def __call__(self, frame):
            calls.append(len(frame))
            if len(calls) == 4:
                raise ValueError("cannot convert")
            return self.model.predict_proba(frame)[:, 1]

    with pytest.raises(ScoringInputError, match=r"rows (1000\.\.1499|1500\.\.1999) of") as info:
        score_file(src, out, Failing(model), list("ab"), ["id"], chunk_rows=1000, threads=2)
    assert "ValueError: cannot convert" in str(info.value) and not out.exists()
