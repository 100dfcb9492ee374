"""The audit ledger keeps every record whole under concurrent writers."""

from __future__ import annotations

import multiprocessing

from airflow_mlops_provider.core import ledger


def _write(path, worker):
    for i in range(50):
        ledger.append(path, {"worker": worker, "i": i, "payload": "x" * 2000})


def test_concurrent_appends_keep_every_line_whole(tmp_path):
    path = tmp_path / "ledger" / "decisions.jsonl"
    procs = [multiprocessing.Process(target=_write, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    records = ledger.read(path)
    assert len(records) == 200
    assert {(r["worker"], r["i"]) for r in records} == {(w, i) for w in range(4) for i in range(50)}
    assert all("recorded_at" in r for r in records)
