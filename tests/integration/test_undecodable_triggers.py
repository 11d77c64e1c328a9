"""A trigger the services' broker cannot decode is dropped like any bad event, never left unacked.

FastStream decodes every delivered body for the handler's ``body`` parameter before our worker sees
the message: as JSON when the publisher's ``content-type`` header says so (or says nothing), as text
for ``text/plain``. Its own errors there — a JSON body nested deeper than Python's parser goes
(RecursionError, which the no-content-type path does not suppress), ``content-type:
application/json`` on a body that is no JSON, ``text/plain`` on one that is no UTF-8 — escaped the
handler: no ack, no drop line of ours, and the message came back after every ack wait, for ever,
holding one of the durable's pending acks (a thousand stop the step for every tenant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

HOSTILE = [
    (b"[" * 100_000 + b"]" * 100_000, {}),
    (b"{not json", {"content-type": "application/json"}),
    (b"\xff\xfe not utf-8", {"content-type": "text/plain"}),
]


@pytest.mark.parametrize(("body", "headers"), HOSTILE, ids=["deep", "json-header", "text-header"])
async def test_an_undecodable_trigger_is_dropped_and_acked(values: dict[str, Any], bus: Bus, store: ObjectStore,
                                                          content: ContentSource, settings: Settings, tmp_path: Path,
                                                          body: bytes, headers: dict[str, str]) -> None:
    tenant = (await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                amber_bucket=settings.buckets.amber, posts=1, pages=0, images=0, files=0)).tenant_id
    stack = start_stack(tmp_path / "stack", values, services=("catalog",))
    try:
        await bus.js.publish(f"{bus.log.prefix}.tenant_x.exp_x.ExportRequested", body, headers=headers)

        async def dropped() -> bool:
            info = await bus.js.consumer_info(settings.stream_name, "catalog")
            return info.delivered.stream_seq >= 1 and info.num_ack_pending == 0 and info.num_pending == 0

        await until(dropped, 30, 0.2, "the catalog to ack the undecodable trigger")
        export_id = await request_export(bus, tenant, include_images=False)
        await wait_status(bus, tenant, export_id, {"assembling"}, timeout=30)
        log = (tmp_path / "stack" / "logs").glob("catalog*.log")
        text = "".join(p.read_text() for p in log)
        assert "Traceback" not in text, logs_of(stack)
        assert "catalog drops malformed event on" in text, logs_of(stack)
    finally:
        stack.stop()
