"""The notify step records an outcome whatever the mailer raises: an error that is not a
MailError (a bug in an adapter, a template) is a NotificationFailed with its reason, never an
exception out of the step (which the worker drops for an ended export: no email and nothing
recorded). On the in-memory event log; no server."""

from __future__ import annotations

from datetime import UTC, datetime

from services.notifier.mail import Email
from services.notifier.service import Notifier
from shared.core import events as ev
from shared.core import keys
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext

E = {"export_id": "exp_1", "tenant_id": "t1"}
ZIP = keys.archive_key("t1", "exp_1", "autumn", "2026-01-01")


async def completed_export() -> InMemoryEventLog:
    """The log of a complete export whose ready email is due."""
    log = InMemoryEventLog()
    seq = 0
    for event in (ev.ExportRequested(**E, user_id="u", user_email="a@example.org", username="autumn"),
                  ev.ArchiveAssembled(**E, archive_key=ZIP, upload_id="u", size_bytes=30, part_count=1,
                                      member_count=1, error_count=0),
                  ev.FinalizeStarted(**E),
                  ev.ExportCompleted(**E, archive_key=ZIP, size_bytes=30, sha256="abc", item_counts={"posts": 1},
                                     error_count=0, expires_at=datetime(2030, 1, 1, tzinfo=UTC))):
        seq = await log.append(event, seq)
    return log


class BrokenMailer:
    def __init__(self) -> None:
        self.tried: list[Email] = []

    async def send(self, email: Email) -> str:
        self.tried.append(email)
        raise RuntimeError("adapter bug")

    async def close(self) -> None:
        return None


async def test_an_unexpected_mailer_error_is_recorded_as_notification_failed() -> None:
    log = await completed_export()
    settings = Settings(mail={"attempts": 2, "retry_base_delay": 0.0})
    ctx = StepContext(log=log, loaded=await log.load("t1", "exp_1"), settings=settings)  # type: ignore[arg-type]
    assert ctx.state.email_due
    mailer = BrokenMailer()

    await Notifier(settings, mailer)(ctx)  # must not raise

    state = (await log.load("t1", "exp_1")).state
    assert len(mailer.tried) == 1  # not a transient error: no retry
    assert state.status == "complete" and state.notification == "failed"
    assert state.notification_reason and "RuntimeError" in state.notification_reason
    assert not state.email_due


class GarbledMailer(BrokenMailer):
    async def send(self, email: Email) -> str:
        self.tried.append(email)
        raise RuntimeError("adapter bug \udcff\nsecond line")  # a byte that is not UTF-8, a line break


async def test_an_unexpected_error_is_recorded_as_one_line_the_event_can_carry() -> None:
    """The reason of a MailError is one printable line (errors.one_line); an error that is not one
    took its text as it was, and a lone surrogate in it made NotificationFailed unencodable."""
    log = await completed_export()
    settings = Settings(mail={"attempts": 1, "retry_base_delay": 0.0})
    ctx = StepContext(log=log, loaded=await log.load("t1", "exp_1"), settings=settings)  # type: ignore[arg-type]

    await Notifier(settings, GarbledMailer())(ctx)

    failed = [e for _, e in log.messages if isinstance(e, ev.NotificationFailed)]
    assert len(failed) == 1
    assert failed[0].reason == "RuntimeError: adapter bug \\udcff second line"
    failed[0].to_json()  # the event the JetStream log would write
