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
