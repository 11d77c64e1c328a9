"""``grove_exports_finished_total{status}`` counts each export once, by the run that moved it to its final
status (the finalizer's completion, a step giving up, the canceller's cancel). The notifier's run on
an export that was already complete (or failed) counted it again, and so did every resend: the
exports "finished" were about twice those that did, and GroveExportsFailing's "at least 3 failed in
30 minutes" fired on 2 (each failure counted by the step that gave up and again by its failure email).
On the in-memory event log; no server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from services.notifier.mail import Email
from services.notifier.service import Notifier
from services.notifier.service import should_run as notify_due
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.core import keys
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepWorker
from tests.unit.test_worker_tenant_bound import Beats, FakeMsg

SETTINGS = Settings(mail={"attempts": 1, "retry_base_delay": 0.0}, progress_interval_s=60, ack_wait_s=120)


def finished(status: str) -> float:
    return REGISTRY.get_sample_value("grove_exports_finished_total", {"status": status}) or 0.0


def requested(n: int) -> ev.ExportRequested:
    return ev.ExportRequested(export_id=f"exp_{n}", tenant_id="t1", user_id="u", user_email="a@example.org",
                              username="autumn")


def completed(n: int) -> ev.ExportCompleted:
    return ev.ExportCompleted(export_id=f"exp_{n}", tenant_id="t1", size_bytes=30, sha256="a" * 64,
                              archive_key=keys.archive_key("t1", f"exp_{n}", "autumn", "2026-01-01"),
                              item_counts={"posts": 1}, error_count=0, expires_at=datetime(2030, 1, 1, tzinfo=UTC))


class Mailer:
    def __init__(self) -> None:
        self.sent: list[Email] = []

    async def send(self, email: Email) -> str:
        self.sent.append(email)
        return "<id@example.org>"

    async def close(self) -> None:
        return None


async def run(worker: StepWorker, event: ev.Event) -> FakeMsg:
    msg = FakeMsg(f"exports.{event.tenant_id}.{event.export_id}.{event.name()}", data=event.to_json())
    await asyncio.wait_for(worker.handle(msg), 5)  # type: ignore[arg-type]
    await asyncio.wait_for(asyncio.gather(*worker.running.values()), 5)
    return msg


async def test_an_export_is_counted_once_by_the_run_that_finished_it_not_by_its_email() -> None:
    log = InMemoryEventLog()
    seq = await log.append(requested(1), 0)
    await log.append(ev.ArchiveAssembled(export_id="exp_1", tenant_id="t1", archive_key=completed(1).archive_key,
                                         upload_id="u", size_bytes=30, part_count=1, member_count=1, error_count=0),
                     seq)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]

    async def finalize(ctx: StepContext) -> None:  # as the finalizer: FinalizeStarted, then the completion
        await ctx.append(ev.FinalizeStarted(export_id="exp_1", tenant_id="t1"))
        await ctx.append(completed(1))

    before = finished("complete")
    finalizer = StepWorker("finalize", bus, SETTINGS, finalize, lambda loaded: not loaded.state.terminal)
    assert (await run(finalizer, requested(1))).calls == [("ack", None)]
    assert finished("complete") == before + 1  # the run that completed it

    mailer = Mailer()
    notifier = StepWorker("notify", bus, SETTINGS, Notifier(SETTINGS, mailer), notify_due)
    assert (await run(notifier, completed(1))).calls == [("ack", None)]
    await log.append(ev.ResendRequested(export_id="exp_1", tenant_id="t1", operator="ada", reason="lost"),
                     (await log.load("t1", "exp_1")).last_seq)
    assert (await run(notifier, completed(1))).calls == [("ack", None)]
    assert len(mailer.sent) == 2 and (await log.load("t1", "exp_1")).state.status == "complete"
    assert finished("complete") == before + 1, "the ready email and its resend finished nothing"


async def test_a_failed_export_is_counted_once_though_its_failure_email_runs_on_it() -> None:
    log = InMemoryEventLog()
    await log.append(requested(2), 0)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]
    settings = Settings(step_attempts=1, mail={"attempts": 1, "retry_base_delay": 0.0}, progress_interval_s=60,
                        ack_wait_s=120)

    async def broken(ctx: StepContext) -> None:
        raise RuntimeError("the content database could not be read")

    before = finished("failed")
    catalog = StepWorker("catalog", bus, settings, broken, lambda loaded: not loaded.state.terminal)
    await run(catalog, requested(2))
    state = (await log.load("t1", "exp_2")).state
    assert state.status == "failed" and state.email_due
    assert finished("failed") == before + 1

    mailer = Mailer()
    notifier = StepWorker("notify", bus, settings, Notifier(settings, mailer), notify_due)
    failure = next(e for _, e in log.messages if e.name().startswith("ExportFailed"))
    assert (await run(notifier, failure)).calls == [("ack", None)]
    assert len(mailer.sent) == 1 and not (await log.load("t1", "exp_2")).state.email_due
    assert finished("failed") == before + 1, "the failure email finished nothing"
