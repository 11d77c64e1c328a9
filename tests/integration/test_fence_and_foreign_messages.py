"""A step whose fenced append lost only to messages that change nothing appends again at once.

Any service user can have a message stored on any export's subjects (garbage on a subject its
allow-list names, a PubAck it aims there as a reply subject): every reader drops it, but its
sequence moves the fence. A step's append that met one was a Conflict, and the step ran again
from the start: the notifier sent its email again for each such message (an email per message, for
as long as somebody kept sending them), the catalog rendered the whole tenant again. The fence is
for a log that moved; a message the fold drops, or an event it ignores, moved nothing. On the real
JetStream log (the in-memory twin stores no message a reader drops)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.notifier.mail import Email
from services.notifier.service import Notifier, dead_end, should_run
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.core import keys
from shared.eventlog.jetstream import Conflict
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepWorker
from tests.unit.test_worker_tenant_bound import FakeMsg


class _Mailer:
    """Sends (records) each email; while the first is being sent, someone stores ``garbage`` on the
    export's subject."""

    def __init__(self, bus: Bus, subject: str, garbage: bytes) -> None:
        self.bus, self.subject, self.garbage = bus, subject, garbage
        self.sent: list[Email] = []

    async def send(self, email: Email) -> str:
        if not self.sent:
            await self.bus.js.publish(self.subject, self.garbage)
        self.sent.append(email)
        return "outbox"

    async def close(self) -> None:
        return None


async def _completed(bus: Bus, tenant: str, export: str) -> ev.ExportCompleted:
    base = {"export_id": export, "tenant_id": tenant}
    done = ev.ExportCompleted(**base, archive_key=keys.archive_key(tenant, export, "autumn", "2026-01-01"),
                              size_bytes=30, sha256="ab" * 32, item_counts={"posts": 1}, error_count=0,
                              expires_at=datetime(2030, 1, 1, tzinfo=UTC))
    seq = await bus.log.append(ev.ExportRequested(**base, user_id="u", user_email="a@example.org",
                                                  username="autumn"), 0)
    seq = await bus.log.append(ev.ArchiveAssembled(**base, archive_key=done.archive_key, upload_id="u", size_bytes=30,
                                                   part_count=1, member_count=1, error_count=0), seq)
    seq = await bus.log.append(ev.FinalizeStarted(**base), seq)
    await bus.log.append(done, seq)
    return done


@pytest.mark.parametrize("foreign", ["puback", "cancel"])
async def test_a_message_stored_on_the_export_while_its_email_is_sent_sends_it_once(bus: Bus, settings: Settings,
                                                                                   foreign: str) -> None:
    """A PubAck someone aimed at the export's subject (every reader drops it), or a CancelRequested
    the gateway's user appended to the complete export (the fold ignores it: nothing moves a
    finished export but the email, the janitor and an operator)."""
    tenant, export = "t_fence", ev.new_export_id()
    done = await _completed(bus, tenant, export)
    prefix = bus.log.prefix
    if foreign == "puback":
        mailer = _Mailer(bus, f"{prefix}.{tenant}.{export}.NotificationSent", b'{"stream": "EXPORTS", "seq": 1}')
    else:
        cancel = ev.CancelRequested(export_id=export, tenant_id=tenant, requested_by="u")
        mailer = _Mailer(bus, f"{prefix}.{tenant}.{export}.CancelRequested", cancel.to_json())
    worker = StepWorker("notify", bus, settings.model_copy(update={"progress_interval_s": 60.0}),
                        Notifier(settings, mailer), should_run, dead_end=dead_end(settings))
    msg = FakeMsg(f"{prefix}.{tenant}.{export}.ExportCompleted", data=done.to_json())
    for _ in range(3):  # a nak is a redelivery: hand the message over again, as the server would
        await worker.handle(msg)  # type: ignore[arg-type]
        await asyncio.wait_for(asyncio.gather(*worker.running.values()), 10)
        if msg.calls[-1][0] == "ack":
            break
    assert msg.calls[-1] == ("ack", None), msg.calls
    assert len(mailer.sent) == 1  # before: sent again after the lost fence
    state = (await bus.log.load(tenant, export)).state
    assert state.notification == "sent"


async def test_an_event_the_fold_ignores_is_no_lost_fence_but_a_real_event_still_is(bus: Bus,
                                                                                     settings: Settings) -> None:
    """A second ExportRequested (the fold ignores it) lets the append through, at the new sequence;
    an event that moved the export (a cancel) is still a Conflict: the step re-decides."""
    tenant, export = "t_fence", ev.new_export_id()
    base = {"export_id": export, "tenant_id": tenant}
    request = ev.ExportRequested(**base, user_id="u", user_email="a@example.org", username="autumn")
    await bus.log.append(request, 0)
    ctx = StepContext(bus.log, await bus.log.load(tenant, export), settings)
    again = request.model_copy(update={"event_id": "f" * 32, "user_email": "b@example.org"})
    await bus.log.append(again, ctx.loaded.last_seq)

    seq = await ctx.append(ev.CatalogStarted(**base))
    assert seq == ctx.loaded.last_seq == await bus.log.last_seq(tenant, export)
    assert ctx.state.status == "cataloging" and ctx.state.request is not None
    assert ctx.state.request.user_email == "a@example.org"

    await bus.log.append(ev.CancelRequested(**base), ctx.loaded.last_seq)
    try:
        await ctx.append(ev.ExportCataloged(**base, snapshot_key=keys.snapshot_key(tenant, export),
                                            snapshot_sha256="0" * 64,
                                            archive_key=keys.archive_key(tenant, export, "autumn", "2026-01-01"),
                                            member_count=1, total_bytes=1, item_counts={"posts": 1}))
    except Conflict:
        pass
    else:
        raise AssertionError("an append past a cancel went through")
    assert [e.name() async for _, e in bus.log.history(tenant, export)] == [
        "ExportRequested", "ExportRequested", "CatalogStarted", "CancelRequested"]
