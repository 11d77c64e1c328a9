"""A publisher's ``Status`` header is a header like any other, never the server's status.

nats-py keeps the server's inline status (``NATS/1.0 503``) under the header name ``Status`` and then
adds the message's own header lines to the same dict, so a stored message whose publisher set
``Status: 503`` (or 404, or 204) read back as a status: a direct get of it raised or ended the read
there, and a pull consumer's fetch discarded it without an ack. One such ExportRequested — the
gateway's user may publish on any ``<prefix>.*.*.ExportRequested`` — stopped the gateway's read model
for every tenant ("projector restarting after DirectGetError(... 503 None)" every second), made every
read of that export's log raise, and sat in the catalog's pending acks for ever (a thousand of them:
the durable's ``max_ack_pending``, and the catalog would take no export of anyone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.gateway.projector import read_from
from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.pipeline import wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until


async def _publish(bus: Bus, tenant_id: str, export_id: str, status: str) -> int:
    event = ev.ExportRequested(export_id=export_id, tenant_id=tenant_id, user_id="u", user_email="a@example.org",
                               username="ann", include_images=False, delivery_method="download")
    ack = await bus.js.publish(f"{bus.log.prefix}.{tenant_id}.{export_id}.ExportRequested", event.to_json(),
                               headers={"Status": status, "Description": "not the server's"})
    return int(ack.seq)


@pytest.mark.parametrize("status", ["503", "404", "204", "100"])
async def test_a_stored_status_header_is_read_as_a_header(bus: Bus, status: str) -> None:
    seq = await _publish(bus, "tenant_s", f"exp_{status}", status)
    after = await _publish(bus, "tenant_t", f"exp_after_{status}", "408")
    state = (await bus.log.load("tenant_s", f"exp_{status}")).state
    assert state.request is not None and state.status == "pending"
    messages, _ = await read_from(bus, seq)  # what the gateway's projector reads: every tenant's events
    assert [m.seq for m in messages][:2] == [seq, after]


async def test_the_catalog_takes_a_request_with_a_status_header(values: dict[str, Any], bus: Bus,
                                                                store: ObjectStore, content: ContentSource,
                                                                settings: Settings, tmp_path: Path) -> None:
    tenant = (await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                amber_bucket=settings.buckets.amber, posts=1, pages=0, images=0, files=0)).tenant_id
    stack = start_stack(tmp_path / "stack", values, services=("catalog", "assembler", "finalizer"))
    try:
        await _publish(bus, tenant, "exp_status", "404")

        async def taken() -> bool:  # delivered to the catalog and acked, not discarded as a status
            info = await bus.js.consumer_info(settings.stream_name, "catalog")
            return info.delivered.stream_seq > 0 and info.num_ack_pending == 0 and info.num_pending == 0

        await until(taken, 30, 0.2, "the catalog to take and ack the request")
        state = await wait_status(bus, tenant, "exp_status", timeout=30)
        assert state.status == "complete", logs_of(stack)
    finally:
        stack.stop()
