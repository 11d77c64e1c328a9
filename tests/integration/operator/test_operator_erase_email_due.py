"""``grove-export erase-tenant`` while the tenant's finished export still has its email to send: the
notify step is a step of the export too. Real nats-server, services, filesystem store, aiosmtpd."""

from __future__ import annotations

from pathlib import Path

from aiosmtpd.controller import Controller

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.bus.connect import connect
from shared.objectstore.factory import open_store
from tests.integration.mail.conftest import SmtpHandler
from tests.integration.operator.test_operator_erase_hostile import cli
from tests.support.env import build, settings_for
from tests.support.pipeline import small_text_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until


async def test_an_email_still_to_send_is_waited_for_not_sent_after_the_erasure(
        tmp_path: Path, nats_server: NatsServer) -> None:
    """Seen: with the mail server down, the export complete and its email still being retried,
    erase-tenant said "nothing left" and exit 0; when the mail server came back the notifier sent
    the ready email — the requester's address, name and export — after the erasure."""
    port = free_port()
    values = settings_for(tmp_path, nats_server.url, mail={"backend": "smtp", "smtp_host": "127.0.0.1",
                                                           "smtp_port": port, "attempts": 8,
                                                           "retry_base_delay": 1.0})
    settings = build(values)
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "test", ensure=True)
    stack = start_stack(tmp_path / "stack", values)
    smtp: Controller | None = None
    try:
        tenant, export_id = await small_text_export(settings, store, bus)
        state = await wait_status(bus, tenant, export_id, timeout=60)
        assert state.status == "complete" and state.email_due, logs_of(stack)
        assert cli(values, "replay").returncode == 0

        out = cli(values, "erase-tenant", tenant, "--wait", "1")
        assert out.returncode == 1, out.stdout + out.stderr  # its email is still being sent: not erased yet
        assert export_id in out.stderr and "email" in out.stderr and "nothing was erased" in out.stderr, out.stderr
        assert (await bus.log.load(tenant, export_id)).state.email_due

        handler = SmtpHandler()
        smtp = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="mx.test")
        smtp.start()  # the mail server is back: the email goes out while the export is still held

        async def sent() -> bool:
            return (await bus.log.load(tenant, export_id)).state.notification == "sent"

        await until(sent, 90, 0.2, "the email sent")
        assert len(handler.messages) == 1
        out = cli(values, "erase-tenant", tenant, "--wait", "30")
        assert out.returncode == 0 and "nothing left" in out.stdout, out.stdout + out.stderr
        assert not (await bus.log.load(tenant, export_id)).state.exists
    finally:
        if smtp is not None:
            smtp.stop()
        stack.stop()
        await bus.close()
        await store.close()

