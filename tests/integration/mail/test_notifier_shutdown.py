"""A notifier stopped (SIGTERM: a deploy, a scale-down) while the mail server holds its message
lets that send end and logs it before it exits: the person gets one email, not one per restart.
Real processes (the stack's notifier, restarted by its supervisor), a real aiosmtpd whose answer to
DATA the test holds until the notifier has begun to shut down."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import connect
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.objectstore.factory import open_store
from tests.integration.mail.conftest import HeldHandler, StartSmtp
from tests.support.env import build, settings_for
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

SHUTTING_DOWN = "shutting down"  # FastStream's own line when its app stops, in every version we run



async def test_a_notifier_stopped_while_the_mail_server_holds_its_message_sends_one_email(
        tmp_path: Path, nats_server: NatsServer, start_smtp: StartSmtp) -> None:
    handler = HeldHandler()
    smtp = start_smtp(mode="plain", handler=handler)
    values = settings_for(tmp_path, nats_server.url, mail={"backend": "smtp", "smtp_host": smtp.host,
                                                           "smtp_port": smtp.port, "smtp_timeout": 30})
    settings = build(values)
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "test", ensure=True)
    stack = start_stack(tmp_path / "stack", values)
    try:
        tenant_id = (await seed_tenant(content_source(settings), store, images_bucket=settings.buckets.images,
                                       amber_bucket=settings.buckets.amber, images=1)).tenant_id
        export_id = await request_export(bus, tenant_id)
        await wait_status(bus, tenant_id, export_id, {"complete"}, timeout=60)
        assert await asyncio.to_thread(handler.got.wait, 30), "the notifier never sent DATA"
        notifier = stack.child("notifier")
        log_path = Path(notifier.log_path)
        seen = len(log_path.read_text()) if log_path.exists() else 0
        first_pid = notifier.proc.pid if notifier.proc else None
        stack.kill("notifier", signal.SIGTERM)  # while the server holds the message: the race, driven

        async def shutting_down() -> bool:
            return SHUTTING_DOWN in log_path.read_text()[seen:]

        await until(shutting_down, 15, 0.02, "the notifier's shutdown to begin")
        handler.release.set()  # the server answers 250 only now, inside the shutdown

        async def restarted() -> bool:
            return bool(notifier.proc and notifier.proc.pid != first_pid and notifier.proc.poll() is None)

        await until(restarted, 30, 0.1, "the supervisor to start the notifier again")
        completed_seq = max([seq async for seq, e in bus.log.history(tenant_id, export_id)
                             if e.name() == "ExportCompleted"])

        async def trigger_acked() -> bool:  # the ready trigger was acked: by the old process or the new
            info = await bus.js.consumer_info(settings.stream_name, "notifier")
            return info.ack_floor.stream_seq >= completed_seq and not info.num_ack_pending and not info.num_pending

        await until(trigger_acked, 60, 0.1, "the notifier's trigger to be acked")
        names = [e.name() async for _, e in bus.log.history(tenant_id, export_id)]
        assert names.count("NotificationSent") == 1, (names, logs_of(stack))
        assert len(handler.messages) == 1, f"{len(handler.messages)} emails sent; {names}"
    finally:
        handler.release.set()
        stack.stop()
        await bus.close()
        await store.close()
