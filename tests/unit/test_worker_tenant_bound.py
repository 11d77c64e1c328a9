"""One tenant holds at most ``tenant_concurrency`` of a replica's slots: its next export waits
while another tenant's export starts at once. The waiting export's message is acked at once (a
held message counts against the durable's window), and the tenant's running task runs it after
its own, answering its own message only then. On the in-memory event log; no server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepError, StepWorker


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

    settings = Settings(concurrency=4, tenant_concurrency=1, progress_interval_s=60, ack_wait_s=120)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]
    worker = StepWorker("catalog", bus, settings, work, lambda loaded: True)
    msgs = [_msg(t, e) for t, e in ids]
    for m in msgs:
        await asyncio.wait_for(worker.handle(m), 2)  # type: ignore[arg-type]
    for _ in range(50):
        if len(started) == 2:
            break
        await asyncio.sleep(0.01)
    assert started == ["exp_a1", "exp_b1"]
    assert msgs[1].calls == [("ack", None)]  # off the durable at once; no attempt counted, nothing appended
    assert list(worker.waiting["t_big"]) == ["exp_a2"]
    assert msgs[0].calls == []  # held while its tenant has an export waiting here
    release.set()
    await asyncio.gather(*worker.running.values())
    assert started == ["exp_a1", "exp_b1", "exp_a2"]  # run by exp_a1's task, after exp_a1
    assert msgs[0].calls == [("ack", None)] and msgs[2].calls == [("ack", None)]
    assert msgs[1].calls == [("ack", None)] and worker.waiting == {} and worker.running == {}
    assert [e.name() for _, e in log.messages] == ["ExportRequested"] * 3


def _msg(tenant: str, export: str) -> FakeMsg:
    return FakeMsg(f"exports.{tenant}.{export}.ExportRequested", data=ev.ExportRequested(
        export_id=export, tenant_id=tenant, user_id="u", user_email="u@example.org", username="u").to_json())


async def test_a_waiting_export_that_fails_keeps_its_tenants_message_until_its_retry() -> None:
    """A waiting export's run fails (a retry due in 30 s): its own message was acked, so the message
    of the task that ran it is nak'd until then — not acked — and the export stays on the list."""
    log = InMemoryEventLog()
    for export in ("exp_a1", "exp_a2"):
        await log.append(ev.ExportRequested(export_id=export, tenant_id="t_big", user_id="u", user_email="u@x.org",
                                            username="u"), 0)
    release = asyncio.Event()

    async def work(ctx: StepContext) -> None:
        await release.wait()
        if ctx.state.export_id == "exp_a2":
            raise StepError("the source did not answer")

    settings = Settings(concurrency=4, tenant_concurrency=1, progress_interval_s=60, ack_wait_s=120,
                        retry_base_delay_s=30)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]
    worker = StepWorker("catalog", bus, settings, work, lambda loaded: not loaded.state.attempts_of("catalog"))
    first, second = _msg("t_big", "exp_a1"), _msg("t_big", "exp_a2")
    await asyncio.wait_for(worker.handle(first), 2)  # type: ignore[arg-type]
    await asyncio.wait_for(worker.handle(second), 2)  # type: ignore[arg-type]
    assert second.calls == [("ack", None)]
    release.set()
    await asyncio.gather(*worker.running.values())
    assert [e.name() for _, e in log.messages][-1] == "CatalogAttemptFailed"
    assert len(first.calls) == 1 and first.calls[0][0] == "nak" and 29 < first.calls[0][1] <= 30, first.calls
    assert list(worker.waiting["t_big"]) == ["exp_a2"]
