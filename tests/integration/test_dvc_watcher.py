"""The DVC AssetWatcher through Airflow's own machinery, in this process, without daemons.

``assets.dvc_data`` builds an Asset whose watcher is a DvcNewDataVersionTrigger. Here a DAG
scheduled on it goes through the dag-processor's DB sync (which registers watcher triggers for
unpaused consumers), the triggerer's own ``TriggerRunner`` runs the stored trigger against a real
git + DVC repo, ``Trigger.submit_event`` turns its event into an AssetEvent, and the scheduler's
asset-triggered run creation makes the DagRun — each called directly: no scheduler, triggerer
or dag-processor process is started.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from airflow.sdk import DAG, Asset, AssetWatcher
from airflow.triggers.base import BaseEventTrigger

from airflow_mlops_provider.assets import dvc_data
from airflow_mlops_provider.triggers.dvc import DvcNewDataVersionTrigger, resolve_version

pytestmark = pytest.mark.integration

DATA = "data/tx.csv"
V_A, V_B, V_C = b"id,amount\n1,10.5\n", b"id,amount\n1,10.5\n2,3.25\n", b"id,amount\n1,10.5\n2,3.25\n3,9\n"


def test_dvc_data_asset_has_an_event_trigger_watcher(dvc_repo, tmp_path):
    state = str(tmp_path / "state" / "tx.json")
    asset = dvc_data("transactions", repo=str(dvc_repo.path), path=DATA, state_path=state, rev="main",
                     poll_interval=15)
    assert isinstance(asset, Asset)
    assert (asset.name, asset.uri) == ("transactions", "mlops://datasets/transactions")
    [watcher] = asset.watchers
    assert isinstance(watcher, AssetWatcher) and watcher.name == "transactions__dvc_version"
    assert isinstance(watcher.trigger, BaseEventTrigger)
    assert watcher.trigger.serialize() == (
        "airflow_mlops_provider.triggers.dvc.DvcNewDataVersionTrigger",
        {"repo": str(dvc_repo.path), "path": DATA, "rev": "main", "since_md5": None, "state_path": state,
         "poll_interval": 15},
    )
    # Same arguments, same trigger hash: DAG files building it alike share one watcher trigger.
    again = dvc_data("transactions", repo=str(dvc_repo.path), path=DATA, state_path=state, rev="main",
                     poll_interval=15)
    assert BaseEventTrigger.hash(*again.watchers[0].trigger.serialize()) == BaseEventTrigger.hash(
        *watcher.trigger.serialize())


# -- the event-driven path -------------------------------------------------------------------
def _sync(dag, bundle: str) -> None:
    """What the dag-processor does after parsing a file: write the DAG, its assets, its watchers."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.models.dagbundle import DagBundleModel
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        if session.get(DagBundleModel, bundle) is None:
            session.add(DagBundleModel(name=bundle))
            session.flush()
        update_dag_parsing_results_in_db(bundle, None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(),
                                         session)


def _watcher_triggers(asset_name: str) -> list:
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        model = session.scalar(select(AssetModel).where(AssetModel.name == asset_name))
        return [(t.id, t.classpath, t.kwargs) for t in model.triggers]


def _workload(trigger_id: int):
    """The RunTrigger workload the triggerer's supervisor builds for an asset watcher's trigger row."""
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        row = Trigger.bulk_fetch([trigger_id], session=session)[trigger_id]
        # Watcher triggers have no task instance: that branch of _create_workload reads nothing
        # from the supervisor, so it is called without one (starting a supervisor forks a process).
        return TriggerRunnerSupervisor._create_workload(None, trigger=row, dag_bag=None,
                                                        render_log_fname=None, session=session)


async def _triggerer(workload, window: float, during=None):
    """Run ``workload`` in the triggerer's own TriggerRunner; the state changes it reports back.

    Waits up to ``window`` seconds for an event (``during`` runs meanwhile), then lets the runner
    collect finished triggers and build the message its supervisor would receive over the socket.
    """
    from airflow.jobs.triggerer_job_runner import TriggerRunner, messages

    runner = TriggerRunner()
    runner.to_create.append(workload)
    await runner.create_triggers()
    assert not runner.failed_triggers, runner.failed_triggers
    if during is not None:
        await during()
    deadline = time.monotonic() + window
    while not runner.events and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a second event, if the trigger yielded one, would land now
    finished = await runner.cleanup_finished_triggers()
    still_running = [details["task"] for details in runner.triggers.values()]
    for task in still_running:
        task.cancel()
    await asyncio.gather(*still_running, return_exceptions=True)
    msg = runner.process_trigger_events(finished)
    # Through the same pydantic model the runner sends to its supervisor: the payload must survive it.
    return messages.TriggerStateChanges.model_validate_json(msg.model_dump_json())


def _submit(msg) -> None:
    """The supervisor's handle_events: each event goes to Trigger.submit_event."""
    from airflow.models.trigger import Trigger

    for entry in msg.events or ():
        Trigger.submit_event(trigger_id=entry.trigger_id, event=entry.event)


def _asset_events(asset_name: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return [e.extra for e in session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset_name).order_by(AssetEvent.id))]


def _create_asset_triggered_runs(dag_id: str) -> list[tuple[str, str, list[dict]]]:
    """The scheduler loop's asset step, called once: which DAGs are due, then create their runs."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query, triggered_date_by_dag = DagModel.dags_needing_dagruns(session)
        due = [d for d in query.all() if d.dag_id == dag_id and d.dag_id in triggered_date_by_dag]
        if due:
            SchedulerJobRunner(job=Job())._create_dag_runs_asset_triggered(dag_models=due, session=session)
        session.flush()
        return [(run.run_type, run.state, [e.extra["payload"] for e in run.consumed_asset_events])
                for run in session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id))]


def test_new_dvc_version_becomes_one_asset_triggered_run(airflow_db, dvc_repo, tmp_path):
    from airflow.models.dag import DagModel
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.utils.session import create_session

    suffix = uuid.uuid4().hex[:8]
    asset_name, dag_id = f"tx_{suffix}", f"retrain_on_tx_{suffix}"
    state = tmp_path / "state" / "tx.json"
    dvc_repo.commit_file(DATA, V_A, "A")
    a = resolve_version(str(dvc_repo.path), DATA, None)
    asset = dvc_data(asset_name, repo=str(dvc_repo.path), path=DATA, state_path=str(state), poll_interval=0.1)
    with DAG(dag_id, schedule=[asset], catchup=False) as dag:
        EmptyOperator(task_id="retrain")

    # Parsed while paused: no watcher trigger is registered for a DAG nobody runs.
    _sync(dag, "mlops-tests-watcher")
    assert _watcher_triggers(asset_name) == []
    with create_session() as session:
        session.get(DagModel, dag_id).is_paused = False
    _sync(dag, "mlops-tests-watcher")  # the next parse after unpausing
    [(trigger_id, classpath, kwargs)] = _watcher_triggers(asset_name)
    assert (classpath, kwargs) == asset.watchers[0].trigger.serialize()

    # The triggerer runs the stored trigger; a new data version is committed while it watches.
    async def commit_b():
        deadline = time.monotonic() + 20
        while not state.is_file():  # the watcher has taken A as its starting point
            assert time.monotonic() < deadline, "the watcher never read the starting version"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(dvc_repo.commit_file, DATA, V_B, "B")

    msg = asyncio.run(_triggerer(_workload(trigger_id), 20, during=commit_b))
    b = resolve_version(str(dvc_repo.path), DATA, None)
    assert msg.failures is None and msg.finished == [trigger_id]
    assert [(e.trigger_id, e.event.payload) for e in msg.events] == [
        (trigger_id, {"status": "new_version", "previous_md5": a["md5"], **b})]
    _submit(msg)
    assert _asset_events(asset_name) == [{"from_trigger": True, "payload": msg.events[0].event.payload}]

    runs = _create_asset_triggered_runs(dag_id)
    assert [(run_type, payloads) for run_type, _, payloads in runs] == [
        ("asset_triggered", [msg.events[0].event.payload])]
    assert _create_asset_triggered_runs(dag_id) == runs  # the queue was consumed: no second run

    # The triggerer starts the watcher again (the trigger row is still the asset's): it stays
    # quiet on B, and a version committed while nothing watched fires once, relative to B.
    assert _watcher_triggers(asset_name) == [(trigger_id, classpath, kwargs)]
    quiet = asyncio.run(_triggerer(_workload(trigger_id), 1.5))
    assert quiet.events is None and quiet.failures is None
    dvc_repo.commit_file(DATA, V_C, "C")
    c = resolve_version(str(dvc_repo.path), DATA, None)
    msg_c = asyncio.run(_triggerer(_workload(trigger_id), 20))
    assert [e.event.payload for e in msg_c.events] == [{"status": "new_version", "previous_md5": b["md5"], **c}]
    _submit(msg_c)
    runs = _create_asset_triggered_runs(dag_id)
    assert [payloads for _, _, payloads in runs] == [[msg.events[0].event.payload],
                                                     [msg_c.events[0].event.payload]]


def test_watcher_trigger_kwargs_survive_the_trigger_table(airflow_db, tmp_path):
    """The stored, encrypted kwargs inflate back into the same trigger (what create_triggers does)."""
    from airflow.models.trigger import Trigger
    from airflow.serialization.decoders import smart_decode_trigger_kwargs

    trigger = DvcNewDataVersionTrigger(repo=str(tmp_path / "repo"), path=DATA, rev=None,
                                       state_path=str(tmp_path / "s.json"), poll_interval=0.5)
    row = Trigger.from_object(trigger)
    kwargs = {k: smart_decode_trigger_kwargs(v) for k, v in Trigger._decrypt_kwargs(row.encrypted_kwargs).items()}
    assert DvcNewDataVersionTrigger(**kwargs).serialize() == trigger.serialize()
