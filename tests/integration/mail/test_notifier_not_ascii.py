"""A requester whose address is not ASCII (RFC 6531) gets the email, through the running notifier, a
real aiosmtpd and a real nats-server: with SMTPUTF8 when the local part needs it and the server offers
it; with the domain as its A-labels, which any server takes, when only the domain is not ASCII; and
when the server does not offer SMTPUTF8 to an address that needs it, one NotificationFailed that says
so, no email and no retry — the export stays complete."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import Bus, connect
from shared.core import events as ev
from shared.core import keys
from tests.integration.mail.conftest import SmtpServer, StartSmtp
from tests.support.env import build, settings_for
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

pytestmark = [pytest.mark.timeout(120)]


async def _complete(bus: Bus, tenant_id: str, address: str) -> str:
    """A complete export of ``address``'s, as the pipeline logs one: its ready email is due."""
    export_id = ev.new_export_id()
    e = {"export_id": export_id, "tenant_id": tenant_id}
    seq = await bus.log.append(ev.ExportRequested(**e, user_id="u1", user_email=address, username="José"), 0)
    key = keys.archive_key(tenant_id, export_id, "jose", "2026-01-01")
    seq = await bus.log.append(ev.ArchiveAssembled(**e, archive_key=key, upload_id="u", size_bytes=30, part_count=1,
                                                   member_count=1, error_count=0), seq)
    seq = await bus.log.append(ev.FinalizeStarted(**e), seq)
    await bus.log.append(ev.ExportCompleted(**e, archive_key=key, size_bytes=30, sha256="ab" * 32,
                                            item_counts={"posts": 1}, error_count=0,
                                            expires_at=datetime.now(UTC) + timedelta(days=7)), seq)
    return export_id


async def _notify(tmp: Path, nats: NatsServer, smtp: SmtpServer, address: str) -> tuple[list[str], str]:
    """The notifier's run for a complete export of ``address``'s: the export's event names once the
    notifier's trigger is acked (nothing more will come), and the notifier's log."""
    values = settings_for(tmp, nats.url, mail={"backend": "smtp", "smtp_host": smtp.host, "smtp_port": smtp.port,
                                               "attempts": 3, "retry_base_delay": 0.05})
    settings = build(values)
    bus = await connect(settings, "test", ensure=True)
    stack = start_stack(tmp / "stack", values, services=("notifier",))
    try:
        tenant_id = "t_intl"
        export_id = await _complete(bus, tenant_id, address)

        async def outcome() -> str | None:
            return (await bus.log.load(tenant_id, export_id)).state.notification

        await until(outcome, 60, 0.1, f"the notifier's outcome\n{logs_of(stack)}")
        completed = max([s async for s, x in bus.log.history(tenant_id, export_id) if x.name() == "ExportCompleted"])

        async def trigger_acked() -> bool:
            c = await bus.js.consumer_info(settings.stream_name, "notifier")
            return c.ack_floor.stream_seq >= completed and not c.num_ack_pending and not c.num_pending

        await until(trigger_acked, 60, 0.1, "the notifier's trigger to be acked")
        state = (await bus.log.load(tenant_id, export_id)).state
        assert state.status == "complete", state
        names = [x.name() async for _, x in bus.log.history(tenant_id, export_id)]
        return names, Path(stack.child("notifier").log_path).read_text()
    finally:
        stack.stop()
        await bus.close()


async def test_an_address_not_ascii_before_its_at_gets_the_email_over_smtputf8(
        tmp_path: Path, nats_server: NatsServer, start_smtp: StartSmtp) -> None:
    smtp = start_smtp(mode="plain", utf8=True)
    names, _ = await _notify(tmp_path, nats_server, smtp, "josé@bücher.de")
    assert names.count("NotificationSent") == 1 and "NotificationFailed" not in names, names
    [got] = smtp.handler.messages
    assert got.smtputf8 and got.rcpt_tos == ["josé@bücher.de"]
    msg = email.message_from_bytes(got.data, policy=policy.default)
    assert msg["To"] == "josé@bücher.de" and "ready" in msg["Subject"]
    assert not msg.defects and "Hi José," in msg.get_body(("plain",)).get_content()
    assert all(line.isascii() for line in got.data.split(b"\r\n\r\n", 1)[1].splitlines())  # bodies: 7-bit


async def test_without_smtputf8_an_address_that_needs_it_is_one_notification_failed_and_no_email(
        tmp_path: Path, nats_server: NatsServer, start_smtp: StartSmtp) -> None:
    smtp = start_smtp(mode="plain")
    names, log = await _notify(tmp_path, nats_server, smtp, "用户@例子.广告")
    assert names.count("NotificationFailed") == 1 and "NotificationSent" not in names, names
    assert smtp.handler.messages == []
    assert "does not offer SMTPUTF8, which the recipient's address needs" in log, log
    assert "用户" not in log and "attempts" not in log  # permanent: one try, and the address not in the log


async def test_an_ascii_local_part_at_a_domain_not_ascii_is_sent_to_its_a_labels_without_smtputf8(
        tmp_path: Path, nats_server: NatsServer, start_smtp: StartSmtp) -> None:
    smtp = start_smtp(mode="plain")
    names, _ = await _notify(tmp_path, nats_server, smtp, "anna@bücher.de")
    assert names.count("NotificationSent") == 1, names
    [got] = smtp.handler.messages
    assert not got.smtputf8 and got.rcpt_tos == ["anna@xn--bcher-kva.de"]
    assert got.data.isascii()
    assert email.message_from_bytes(got.data, policy=policy.default)["To"] == "anna@xn--bcher-kva.de"
