"""DvcNewDataVersionTrigger against real git + DVC repositories (processes: integration)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from airflow_mlops_provider.triggers.dvc import DvcNewDataVersionTrigger, resolve_version
from tests.trigger_runs import Run, quiet_for, rebuild

pytestmark = [pytest.mark.integration]

DATA = "data/tx.csv"
V_A, V_B, V_C = b"id,amount\n1,10.5\n", b"id,amount\n1,10.5\n2,3.25\n", b"id,amount\n1,10.5\n2,3.25\n3,9\n"


async def in_thread(fn, *args):
    # git/dvc commands block; run them off the loop so the trigger keeps polling meanwhile.
    return await asyncio.to_thread(fn, *args)


def version(repo, rev: str | None = None) -> dict:
    return resolve_version(str(repo.path), DATA, rev)


def commit_readme(repo, text: str) -> str:
    (repo.path / "README.md").write_text(text)
    repo.git("add", "README.md")
    repo.git("commit", "-qm", "docs only")
    return repo.git("rev-parse", "HEAD")


async def wait_for_file(path: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while not path.is_file():
        assert time.monotonic() < deadline, f"{path} was not written within {within}s"
        await asyncio.sleep(0.05)


# -- serialization ---------------------------------------------------------------------------
def test_dvc_trigger_stays_quiet_while_the_data_is_unchanged(dvc_repo):
    dvc_repo.commit_file(DATA, V_A, "A")
    version(dvc_repo)  # warm DVC up so the window below is spent polling
    trigger = DvcNewDataVersionTrigger(repo=str(dvc_repo.path), path=DATA, poll_interval=0.1)

    async def scenario():
        events: list[dict] = []

        async def consume():
            async for event in trigger.run():
                events.append(event.payload)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(consume(), 2.0)
        return events

    assert asyncio.run(scenario()) == []


def test_dvc_trigger_ignores_other_commits_and_fires_once_for_a_new_version(dvc_repo):
    dvc_repo.commit_file(DATA, V_A, "A")
    a = version(dvc_repo)
    trigger = rebuild(DvcNewDataVersionTrigger(repo=str(dvc_repo.path), path=DATA, poll_interval=0.1))

    async def scenario():
        run = Run(trigger)
        await asyncio.sleep(1.5)  # takes A as known
        readme_commit = await in_thread(commit_readme, dvc_repo, "only docs changed\n")
        await asyncio.sleep(1.5)
        assert run.events == [] and not run.task.done(), "a commit that leaves the data alone fired"
        assert version(dvc_repo)["commit"] == readme_commit  # HEAD moved, md5 did not
        b_commit = await in_thread(dvc_repo.commit_file, DATA, V_B, "B")
        return b_commit, await run.finish(15)

    b_commit, events = asyncio.run(scenario())
    b = version(dvc_repo)
    assert b["md5"] != a["md5"]
    assert len(events) == 1
    assert events[0] == {"status": "new_version", "previous_md5": a["md5"], **b}
    assert events[0]["commit"] == b_commit and events[0]["size"] == len(V_B)


def test_dvc_trigger_with_state_is_edge_triggered_across_restarts(dvc_repo, tmp_path):
    state = tmp_path / "state" / "tx.json"
    dvc_repo.commit_file(DATA, V_A, "A")
    a = version(dvc_repo)
    first = DvcNewDataVersionTrigger(repo=str(dvc_repo.path), path=DATA, state_path=str(state),
                                     poll_interval=0.1)

    async def scenario():
        run = Run(first)
        await wait_for_file(state, 15)  # the trigger recorded A as its starting point
        assert json.loads(state.read_text())["md5"] == a["md5"]
        await in_thread(dvc_repo.commit_file, DATA, V_B, "B")
        fired = await run.finish(15)
        b = version(dvc_repo)
        assert json.loads(state.read_text())["md5"] == b["md5"]  # saved before the event was yielded
        # The triggerer restarts the watcher (or itself): a fresh instance from the stored kwargs
        # must not report B again...
        quiet = await quiet_for(rebuild(first), 2.0)
        # ...and a version committed while no trigger ran is still noticed, relative to B
        # (without the state a fresh instance would take C as known and never fire).
        await in_thread(dvc_repo.commit_file, DATA, V_C, "C")
        return b, fired, quiet, await Run(rebuild(first)).finish(15)

    b, fired, quiet, next_fired = asyncio.run(scenario())
    c = version(dvc_repo)
    assert fired == [{"status": "new_version", "previous_md5": a["md5"], **b}]
    assert quiet == [], "a restarted watcher fired again for the version it already reported"
    assert next_fired == [{"status": "new_version", "previous_md5": b["md5"], **c}]


def test_dvc_trigger_fires_at_once_when_since_md5_is_not_the_current_version(dvc_repo):
    dvc_repo.commit_file(DATA, V_A, "A")
    a = version(dvc_repo)
    stale = "0" * 32

    async def scenario():
        changed = Run(DvcNewDataVersionTrigger(repo=str(dvc_repo.path), path=DATA, since_md5=stale,
                                               poll_interval=30))
        fired = await changed.finish(15)  # well before a second poll at 30 s
        same = await quiet_for(DvcNewDataVersionTrigger(repo=str(dvc_repo.path), path=DATA,
                                                        since_md5=a["md5"], poll_interval=0.1), 1.5)
        return fired, same

    fired, same = asyncio.run(scenario())
    assert fired == [{"status": "new_version", "previous_md5": stale, **a}]
    assert same == []
