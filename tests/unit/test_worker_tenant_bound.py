"""One tenant holds at most ``tenant_concurrency`` of a replica's slots: its next export waits
(nak with a short delay, not an attempt) while another tenant's export starts at once.
On the in-memory event log; no server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepWorker


@dataclass
class FakeMsg:
    subject: str
    calls: list[tuple[str, Any]] = field(default_factory=list)
    headers: dict[str, str] | None = None  # no trace context
    data: bytes = b""  # the event's body: the worker checks it against the subject

    async def ack(self) -> None:
        self.calls.append(("ack", None))

    async def nak(self, delay: float | None = None) -> None:
        self.calls.append(("nak", delay))

    async def in_progress(self) -> None:
        pass


class Beats:
    async def put(self, key: str, value: bytes) -> None:
        pass

    async def delete(self, key: str) -> None:
        pass


async def test_a_tenant_at_its_share_waits_while_another_tenant_starts() -> None:
    log = InMemoryEventLog()
    ids = [("t_big", "exp_a1"), ("t_big", "exp_a2"), ("t_small", "exp_b1")]
    for tenant, export in ids:
        await log.append(ev.ExportRequested(export_id=export, tenant_id=tenant, user_id="u", user_email="u@x.org",
                                            username="u"), 0)
    release, started = asyncio.Event(), []

    async def work(ctx: StepContext) -> None:
        started.append(ctx.state.export_id)
        await release.wait()

    settings = Settings(concurrency=4, tenant_concurrency=1, tenant_backoff_s=1.5, progress_interval_s=60, ack_wait_s=120)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]
    worker = StepWorker("catalog", bus, settings, work, lambda loaded: True)
    msgs = [FakeMsg(f"exports.{t}.{e}.ExportRequested", data=ev.ExportRequested(
        export_id=e, tenant_id=t, user_id="u", user_email="u@example.org", username="u").to_json()) for t, e in ids]
    for m in msgs:
        await asyncio.wait_for(worker.handle(m), 2)  # type: ignore[arg-type]
    for _ in range(50):
        if len(started) == 2:
            break
        await asyncio.sleep(0.01)
    assert started == ["exp_a1", "exp_b1"]
    assert msgs[1].calls == [("nak", 1.5)]  # offered again later; no attempt counted, nothing appended
    release.set()
    await asyncio.gather(*worker.running.values())
    assert msgs[0].calls == [("ack", None)] and msgs[2].calls == [("ack", None)]
    await asyncio.wait_for(worker.handle(msgs[1]), 2)  # type: ignore[arg-type]
    await asyncio.gather(*worker.running.values())
    assert started[-1] == "exp_a2" and msgs[1].calls[-1] == ("ack", None)
    assert [e.name() for _, e in log.messages] == ["ExportRequested"] * 3
