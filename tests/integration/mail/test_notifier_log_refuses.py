"""The email is sent, then the log refuses its ``NotificationSent`` (its storage full, no leader: the
server answers 503 to every append for a while). The notifier's run ends as the bus's trouble ("the
event log did not answer": not an attempt, the trigger is redelivered) — and the redelivered run must
record the email it already sent, not send it once more per redelivery for as long as the log refuses.
Real processes: the stack's notifier, a real aiosmtpd, a real nats-server whose stream is made to
refuse appends (``max_bytes`` reached, ``discard: new``: nats-server answers 503, as it does out of
disk) while the mail server holds its answer to the message, and let go again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nats.js.api import DiscardPolicy

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import connect
from shared.core import events as ev
from shared.core import keys
from tests.integration.mail.conftest import HeldHandler, StartSmtp
from tests.support.env import build, settings_for
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until


async def test_an_email_whose_record_the_log_refuses_is_sent_once_and_recorded_when_it_takes_it(
        tmp_path: Path, nats_server: NatsServer, start_smtp: StartSmtp) -> None:
    handler = HeldHandler()
    smtp = start_smtp(mode="plain", handler=handler)
    values = settings_for(tmp_path, nats_server.url, mail={"backend": "smtp", "smtp_host": smtp.host,
                                                           "smtp_port": smtp.port, "smtp_timeout": 30})
    settings = build(values)
    bus = await connect(settings, "test", ensure=True)
    stack = start_stack(tmp_path / "stack", values, services=("notifier",))
    full = False
    try:
        tenant_id, export_id = "t_refused", ev.new_export_id()
        e = {"export_id": export_id, "tenant_id": tenant_id}
        seq = await bus.log.append(ev.ExportRequested(**e, user_id="u1", user_email="autumn@example.org",
                                                      username="autumn"), 0)
        key = keys.archive_key(tenant_id, export_id, "autumn", "2026-01-01")
        seq = await bus.log.append(ev.ArchiveAssembled(**e, archive_key=key, upload_id="u", size_bytes=30,
                                                       part_count=1, member_count=1, error_count=0), seq)
        seq = await bus.log.append(ev.FinalizeStarted(**e), seq)
        await bus.log.append(ev.ExportCompleted(
            **e, archive_key=key, size_bytes=30,
            sha256="ab" * 32, item_counts={"posts": 1}, error_count=0,
            expires_at=datetime.now(UTC) + timedelta(days=7)), seq)
        assert await asyncio.to_thread(handler.got.wait, 30), f"the notifier never sent DATA\n{logs_of(stack)}"

        info = await bus.js.stream_info(settings.stream_name)
        config = info.config
        config.max_bytes, config.discard = info.state.bytes, DiscardPolicy.NEW  # every append now: 503
        await bus.js.update_stream(config)
        full = True
        handler.release.set()  # the server takes the email only now: the log refuses its record
        log_path = Path(stack.child("notifier").log_path)
        started = f"notify {export_id}: started"

        async def ran_again() -> bool:  # a whole run after the one whose record the log refused
            text = log_path.read_text()
            return text.count(started) >= 2 and text.count("the event log did not answer") >= 2

        await until(ran_again, 60, 0.1, "the notifier to run the refused export again")
        assert len(handler.messages) == 1, f"{len(handler.messages)} emails sent while the log refused"

        config.max_bytes, config.discard = -1, DiscardPolicy.OLD
        await bus.js.update_stream(config)
        full = False

        async def recorded() -> list[str] | None:
            names = [x.name() async for _, x in bus.log.history(tenant_id, export_id)]
            return names if "NotificationSent" in names else None

        names = await until(recorded, 60, 0.1, "NotificationSent")
        completed_seq = max([s async for s, x in bus.log.history(tenant_id, export_id)
                             if x.name() == "ExportCompleted"])

        async def trigger_acked() -> bool:
            c = await bus.js.consumer_info(settings.stream_name, "notifier")
            return c.ack_floor.stream_seq >= completed_seq and not c.num_ack_pending and not c.num_pending

        await until(trigger_acked, 60, 0.1, "the notifier's trigger to be acked")
        assert names.count("NotificationSent") == 1, names
        assert len(handler.messages) == 1, f"{len(handler.messages)} emails sent; {names}"
    finally:
        handler.release.set()
        if full:
            info = await bus.js.stream_info(settings.stream_name)
            info.config.max_bytes, info.config.discard = -1, DiscardPolicy.OLD
            await bus.js.update_stream(info.config)
        stack.stop()
        await bus.close()
