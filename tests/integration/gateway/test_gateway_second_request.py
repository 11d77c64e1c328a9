"""An export is requested once: its first ExportRequested is the request.

The event contract says ExportRequested is always the first event, and a publisher that follows it
sends ``Nats-Expected-Last-Subject-Sequence: 0`` — but the server cannot make anyone send that
header. Before, an ExportRequested appended later to a running export (a publisher's retry without
the header after the 1-hour duplicate window, or anyone holding the gateway's user) replaced the
request in the fold: the export went back to ``pending`` at 0 %, its mode and delivery changed, and
the notifier's email went to the second body's ``user_email``. Now a repeat changes nothing.
"""

from __future__ import annotations

from services.gateway.keys import READ_MODEL
from shared.core import events as ev


async def test_a_second_export_requested_changes_nothing_of_a_running_export(gateway, pipeline, headers_for):
    resp = await gateway.post("/api/export", json={"mode": "blog", "deliveryMethod": "email"},
                              headers=headers_for("tenant_a"))
    export_id = (await resp.json())["exportId"]
    await pipeline.assemble("tenant_a", export_id)
    before = (await pipeline.bus.log.load("tenant_a", export_id)).state

    await pipeline.append(ev.ExportRequested(
        tenant_id="tenant_a", export_id=export_id, user_id="mallory", user_email="mallory@evil.example",
        username="mallory", mode="storage", delivery_method="email"))
    await pipeline.settle(gateway)

    after = (await pipeline.bus.log.load("tenant_a", export_id)).state
    assert after.request == before.request  # the email still goes to the requester
    assert (after.status, after.progress, after.created_at) == (before.status, before.progress, before.created_at)
    row = await gateway.app[READ_MODEL].get("tenant_a", export_id)
    assert row is not None
    assert (row.user_email, row.mode, row.status) == ("u1@example.org", "blog", "uploading")
    view = await (await gateway.get(f"/api/export/status/{export_id}", headers=headers_for("tenant_a"))).json()
    assert (view["status"], view["mode"]) == ("uploading", "blog"), view
