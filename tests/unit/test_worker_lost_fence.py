"""A step whose fenced append lost is not a failed attempt: StandDown (another worker owns the
export) stops without acking, naking or recording anything; a Conflict (the log moved) naks for a
prompt re-decision, again recording nothing. On the in-memory event log; no server."""

from __future__ import annotations

import asyncio

import pytest

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.eventlog.jetstream import Conflict
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StandDown, StepContext, StepWorker
from tests.unit.test_append_fence import SECOND_REQUEST, Interloper
from tests.unit.test_worker_tenant_bound import Beats, FakeMsg


@pytest.mark.parametrize(("error", "calls"), [
    (StandDown("another worker logged part 1"), []),
    (Conflict("the log moved"), [("nak", 0.5)]),
])
async def test_a_lost_fence_is_not_a_failed_attempt(error: Exception, calls: list[tuple[str, float]]) -> None:
    log = InMemoryEventLog()
    requested = ev.ExportRequested(export_id="exp_f", tenant_id="t_f", user_id="u", user_email="u@example.org",
                                   username="u")
    await log.append(requested, 0)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]

    async def work(ctx: StepContext) -> None:
        raise error

    worker = StepWorker("assemble", bus, Settings(progress_interval_s=60, ack_wait_s=120), work, lambda loaded: True)
    msg = FakeMsg("exports.t_f.exp_f.ExportRequested", data=requested.to_json())
    await worker.handle(msg)  # type: ignore[arg-type]
    await asyncio.wait_for(asyncio.gather(*worker.running.values()), 5)
    assert msg.calls == calls
    assert [e.name() async for _, e in log.history("t_f", "exp_f")] == ["ExportRequested"]  # nothing recorded


@pytest.mark.parametrize("attempts", [5, 1])
async def test_a_failure_is_recorded_past_an_event_the_fold_ignores(attempts: int) -> None:
    """The worker's own failure records (StepFailed, and ExportFailed on the last attempt) append
    through the same fence rule as the steps: a message that moved nothing (here a second
    ExportRequested, stored while the step failed) no longer makes the record a Conflict — 'could not
    record the failure', a nak, and no attempt counted, for as long as such messages kept coming."""
    log = Interloper(SECOND_REQUEST)
    log.foreign = None
    requested = SECOND_REQUEST.model_copy(update={"event_id": "a" * 32})
    await log.append(requested, 0)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]

    async def work(ctx: StepContext) -> None:
        log.foreign = SECOND_REQUEST  # stored just before the worker records the failure
        raise RuntimeError("the store is down")

    settings = Settings(progress_interval_s=60, ack_wait_s=120, step_attempts=attempts)
    worker = StepWorker("catalog", bus, settings, work, lambda loaded: True)
    tenant, export = requested.tenant_id, requested.export_id
    msg = FakeMsg(f"exports.{tenant}.{export}.ExportRequested", data=requested.to_json())
    await worker.handle(msg)  # type: ignore[arg-type]
    await asyncio.wait_for(asyncio.gather(*worker.running.values()), 5)
    recorded = "StepFailed" if attempts > 1 else "ExportFailed"
    assert [e.name() async for _, e in log.history(tenant, export)] == ["ExportRequested", "ExportRequested", recorded]
    assert msg.calls[-1][0] == ("nak" if attempts > 1 else "ack")
