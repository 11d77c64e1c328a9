"""Real answers, at every stage of an export, match the schemas served in /api/openapi.json."""

from __future__ import annotations

from datetime import timedelta

from shared.core import events as ev


async def status_of(gateway, export_id, headers) -> dict:
    resp = await gateway.get(f"/api/export/status/{export_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_every_real_answer_matches_the_openapi_schemas(gateway, headers_for, pipeline, conforms):
    h = headers_for()
    created = await gateway.post("/api/export", json={}, headers=h)
    conforms("ExportCreated", await created.json())
    done = (await created.json())["exportId"]
    conforms("ExportStatus", await status_of(gateway, done, h))
    await pipeline.assemble("tenant_a", done)
    await pipeline.settle(gateway)
    conforms("ExportStatus", await status_of(gateway, done, h))
    busy = await gateway.post("/api/export", json={}, headers=h)
    conforms("ProblemBody", await busy.json(content_type=None))
    await pipeline.append(ev.FinalizeStarted(tenant_id="tenant_a", export_id=done))
    await pipeline.append(ev.ExportCompleted(
        tenant_id="tenant_a", export_id=done, archive_key=pipeline.archive_key("tenant_a", done), size_bytes=10,
        sha256="0" * 64, item_counts={"posts": 1}, error_count=0, expires_at=ev.utcnow() + timedelta(days=1)))
    await pipeline.append(ev.NotificationFailed(tenant_id="tenant_a", export_id=done, channel="smtp", reason="x"))
    await pipeline.settle(gateway)
    conforms("ExportStatus", await status_of(gateway, done, h))
    limited = await gateway.post("/api/export", json={}, headers=h)
    conforms("ProblemBody", await limited.json(content_type=None))
    failed = (await (await gateway.post("/api/export", json={}, headers=headers_for("tenant_b"))).json())["exportId"]
    await pipeline.fail("tenant_b", failed)
    await pipeline.settle(gateway)
    conforms("ExportStatus", await status_of(gateway, failed, headers_for("tenant_b")))
    conforms("History", await (await gateway.get("/api/export/history", headers=h)).json())
    c = headers_for("tenant_c")
    running = (await (await gateway.post("/api/export", json={}, headers=c)).json())["exportId"]
    cancelled = await gateway.post(f"/api/export/cancel/{running}", headers=c)
    assert cancelled.status == 200, await cancelled.text()
    conforms("Cancelled", await cancelled.json(content_type=None))  # the answer itself, not a body made here
