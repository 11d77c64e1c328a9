"""The notifier service in the running pipeline: SMTP to a real aiosmtpd, the mail server down for
good, and the failure email for a failed export."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.bus.connect import connect
from shared.content.factory import content_source, sqlite_path
from shared.content.seed import seed_tenant
from shared.objectstore.factory import open_store
from tests.integration.mail.conftest import StartSmtp
from tests.support.env import build, settings_for
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import start_stack
from tests.support.wait import until


async def _run(tmp: Path, values: dict, *, fail_catalog: bool = False, tenant: str = "") -> tuple:
    settings = build(values)
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "test", ensure=True)
    stack = start_stack(tmp / "stack", values)
    try:
        content = content_source(settings)
        if fail_catalog:  # an unreadable content database fails the catalog step every time
            tenant_id = tenant
            path = sqlite_path(settings.content_dsn.get_secret_value())
            assert path is not None
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"this is not a sqlite database")
        else:
            tenant_id = (await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                           amber_bucket=settings.buckets.amber, images=2)).tenant_id
        export_id = await request_export(bus, tenant_id)
        state = await wait_status(bus, tenant_id, export_id, timeout=60)

        async def notified():
            s = (await bus.log.load(tenant_id, export_id)).state
            return s if s.notification else None

        return state, await until(notified, 60, what="the notifier's outcome"), export_id
    finally:
        stack.stop()
        await bus.close()
        await store.close()


async def test_the_ready_email_arrives_over_smtp_with_both_parts(tmp_path: Path, nats_server: NatsServer,
                                                                 start_smtp: StartSmtp) -> None:
    smtp = start_smtp(mode="plain")
    values = settings_for(tmp_path, nats_server.url, mail={"backend": "smtp", "smtp_host": smtp.host,
                                                           "smtp_port": smtp.port})
    state, notified, _ = await _run(tmp_path, values)
    assert state.status == "complete" and notified.notification == "sent"
    assert len(smtp.handler.messages) == 1
    msg = email.message_from_bytes(smtp.handler.messages[0].data, policy=policy.default)
    assert msg["To"] == "autumn@example.org" and "ready" in msg["Subject"]
    kinds = {part.get_content_type() for part in msg.walk()}
    assert {"text/plain", "text/html"} <= kinds
    assert notified.completed and notified.completed.sha256 in msg.get_body(("plain",)).get_content()


async def test_with_the_mail_server_down_for_good_the_export_stays_complete(tmp_path: Path,
                                                                            nats_server: NatsServer) -> None:
    values = settings_for(tmp_path, nats_server.url, mail={"backend": "smtp", "smtp_host": "127.0.0.1",
                                                           "smtp_port": free_port(), "attempts": 3})
    state, notified, _ = await _run(tmp_path, values)
    assert state.status == "complete"
    assert notified.status == "complete" and notified.notification == "failed"
    assert notified.notification_reason and "3 attempts" in notified.notification_reason


async def test_a_failed_export_gets_a_short_failure_email(tmp_path: Path, nats_server: NatsServer) -> None:
    values = settings_for(tmp_path, nats_server.url)
    state, notified, export_id = await _run(tmp_path, values, fail_catalog=True, tenant="t_broken")
    assert state.status == "failed" and notified.notification == "sent"
    files = list(Path(values["mail"]["outbox_dir"]).glob(f"{export_id}*.eml"))
    assert len(files) == 1 and "failed" in files[0].name
    body = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert "could not be completed" in body["Subject"]
    assert "reading your content" in body.get_body(("plain",)).get_content()
