"""An event that parses but that no reader can store or compare must not stop a reader for good.

The projector applies the stream strictly in order and retries an event whose row it cannot write:
before, a request whose ``occurred_at`` had no time zone (year 1: ``timestamp()`` raised), a count
over SQLite's 64 bits, or any event with such a time, held every gateway's read model at that event
for good — every tenant's status, history and read-your-writes stopped moving. Such bodies are now
malformed by the contract (dropped and counted by every reader, like a body that is not JSON).
"""

from __future__ import annotations

import json

import pytest

from services.gateway.keys import READ_MODEL
from shared.core import events as ev
from shared.core import keys

REQ = {"user_id": "u", "user_email": "a@example.org", "username": "x"}


def cataloged(tenant: str, export_id: str, **kw: object) -> dict[str, object]:
    return {"snapshot_key": keys.snapshot_key(tenant, export_id), "snapshot_sha256": "0" * 64,
            "archive_key": keys.archive_key(tenant, export_id, "x", "2026-01-01"), "member_count": 1,
            "total_bytes": 1, "item_counts": {"posts": 1}, **kw}


POISON = {
    "a request at a time with no zone, in year 1": ("ExportRequested", {**REQ, "occurred_at": "0001-01-01T00:00:00"}),
    "a request at a time that leaves the calendar in UTC": ("ExportRequested",
                                                            {**REQ, "occurred_at": "9999-12-31T23:59:59-05:00"}),
    "a later event at a time with no zone": ("CatalogStarted", {"occurred_at": "0001-01-01T00:00:00"}),
    "a count over 64 bits": ("ExportCataloged", "total_bytes"),
}


@pytest.mark.parametrize("case", POISON)
async def test_a_body_no_reader_can_store_is_dropped_and_the_read_model_moves_on(
        case, gateway, pipeline, headers_for, settings):
    tenant = "tenant_z"
    first = await gateway.post("/api/export", json={}, headers=headers_for("tenant_z"))
    assert first.status == 201
    victim = (await first.json())["exportId"]
    await pipeline.settle(gateway)
    type_name, spec = POISON[case]
    body: dict[str, object] = {"export_id": victim, "tenant_id": tenant}
    if type_name == "ExportCataloged":
        body |= cataloged(tenant, victim, total_bytes=2**70)
    else:
        assert isinstance(spec, dict)
        body |= spec
    subject = f"{settings.subject_prefix}.{tenant}.{victim}.{type_name}"
    await pipeline.bus.js.publish(subject, json.dumps(body).encode())

    # Another tenant's export after it is projected: the read model did not stop at the poison.
    resp = await gateway.post("/api/export", json={}, headers=headers_for("tenant_b"))
    assert resp.status == 201
    other = (await resp.json())["exportId"]
    await pipeline.settle(gateway)
    assert await gateway.app[READ_MODEL].get("tenant_b", other) is not None
    status = await gateway.get(f"/api/export/status/{victim}", headers=headers_for("tenant_z"))
    assert status.status == 200, await status.text()
    history = await gateway.get("/api/export/history", headers=headers_for("tenant_z"))
    assert history.status == 200, await history.text()
    with pytest.raises(ev.BadEvent):  # the contract refuses it: every reader drops it
        ev.decode(settings.subject_prefix, subject, json.dumps(body).encode())
