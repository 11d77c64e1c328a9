"""An event type this version does not know, published raw on an export's subjects of a live stack
(real nats-server, real service processes, gateway included): every consumer skips it. The export
completes and its email is sent, the gateway serves it, admission still decides from the log, the
janitor and a read-model replay pass over it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from services.gateway import replay
from services.janitor.main import run_once
from shared.bus.connect import connect
from shared.core import events as ev
from shared.core.lifecycle import fold
from tests.integration.frontdoor.conftest import Live, api, wait_api_status
from tests.support.stack import logs_of
from tests.support.wait import until


def future(tenant: str, export_id: str) -> bytes:
    return json.dumps({"type": "FutureEvent", "schema_version": 7, "export_id": export_id, "tenant_id": tenant,
                       "occurred_at": datetime.now(UTC).isoformat(), "producer": "next-version",
                       "hologram": {"depth": 3}}).encode()


async def test_an_unknown_event_type_is_skipped_everywhere_and_the_export_completes_and_is_served(
        live_fs: Live, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    s = live_fs.settings
    tenant = (await live_fs.seed(images=10)).tenant_id
    status, created = await api(http, "POST", f"{live_fs.base}/api/export", json={},  # an email, so the notifier runs
                                headers=live_fs.headers(tenant))
    assert status == 201, created
    export_id = created["exportId"]
    subject = f"{s.subject_prefix}.{tenant}.{export_id}.FutureEvent"
    bus = await connect(s, "test", persistent=False)
    try:
        stored = [(await bus.js.publish(subject, future(tenant, export_id))).seq]  # before the catalog runs
        await wait_api_status(http, live_fs, tenant, export_id, {"assembling", "uploading", "complete"})
        stored.append((await bus.js.publish(subject, future(tenant, export_id))).seq)  # mid-export

        view = await wait_api_status(http, live_fs, tenant, export_id, {"complete", "failed", "cancelled"})
        assert view["status"] == "complete" and view["downloadUrl"], (view, logs_of(live_fs.stack))
        code, data = await api(http, "GET", view["downloadUrl"])
        assert code == 200 and data[:2] == b"PK"

        async def notified() -> str | None:  # the email follows completion: wait for its outcome
            return fold([e async for _, e in bus.log.history(tenant, export_id)]).notification

        assert await until(notified, 60, 0.1, "the email's outcome") == "sent", logs_of(live_fs.stack)
        history = [e async for _, e in bus.log.history(tenant, export_id)]
        for seq in stored:  # the unknown messages really are in the export's log
            assert (await bus.js.get_msg(s.stream_name, seq)).subject == subject

        # its last message is now one nobody knows: admission folds the log and sees "complete"
        stored.append((await bus.js.publish(subject, future(tenant, export_id))).seq)
        code, body = await api(http, "POST", f"{live_fs.base}/api/export", json={}, headers=live_fs.headers(tenant))
        assert code == 429, body  # the completed export counts toward the hour; not a 500, not a 409
        code, shown = await api(http, "GET", f"{live_fs.base}/api/export/status/{export_id}",
                                headers=live_fs.headers(tenant))
        assert code == 200 and shown["status"] == "complete"

        summary = await run_once(s)  # the janitor reads the same log
        assert summary.failed == 0 and summary.cancelled == 0

        assert await replay(tmp_path / "replayed.db", bus) >= 1
        from services.gateway.readmodel import ReadModel

        model = await ReadModel.open(tmp_path / "replayed.db")
        try:
            row = await model.get(tenant, export_id)
            assert row is not None and row.status == "complete" and row.notification == "sent"
            assert row.events == len(history)  # the unknown messages are not folded
        finally:
            await model.close()
        for durable in ("catalog", "assembler", "finalizer", "notifier", "canceller"):
            info = await bus.js.consumer_info(s.stream_name, durable)
            assert info.num_ack_pending == 0, (durable, info)  # nothing stuck in a retry
    finally:
        await bus.close()
    assert ev.EVENT_TYPES.get("FutureEvent") is None  # this version really does not know it
