"""Running triggers the way the triggerer does, shared by the trigger and sensor tests."""

from __future__ import annotations

import asyncio
import importlib
import json

from airflow.triggers.base import BaseTrigger


def rebuild(trigger: BaseTrigger) -> BaseTrigger:
    """What the triggerer does with a stored row: import the classpath, call it with the kwargs."""
    classpath, kwargs = trigger.serialize()
    json.dumps(kwargs)  # stored as JSON: must be JSON-safe
    module, name = classpath.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    assert cls is type(trigger)
    return cls(**kwargs)


class Run:
    """A trigger's ``run()`` as a background task, with the events it yielded so far."""

    def __init__(self, trigger: BaseTrigger):
        self.events: list[dict] = []
        self.task = asyncio.create_task(self._consume(trigger))

    async def _consume(self, trigger: BaseTrigger) -> None:
        async for event in trigger.run():
            self.events.append(event.payload)

    async def finish(self, within: float) -> list[dict]:
        """Wait for ``run()`` to return (it must, after its one event) and give every event."""
        await asyncio.wait_for(asyncio.shield(self.task), within)
        return self.events

    async def stop(self) -> list[dict]:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        return self.events


async def quiet_for(trigger: BaseTrigger, seconds: float) -> list[dict]:
    """Run ``trigger`` for ``seconds``; the events it yielded (it must still be running)."""
    run = Run(trigger)
    await asyncio.sleep(seconds)
    assert not run.task.done(), f"trigger stopped early with {run.events}"
    return await run.stop()


async def first_event(trigger) -> dict:
    """The payload of the first event ``trigger.run()`` yields."""
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger returned without an event")
