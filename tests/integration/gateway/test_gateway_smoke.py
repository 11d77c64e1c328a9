"""First light: start an export, read it back."""

from __future__ import annotations


async def test_post_then_status_reads_its_own_write(gateway, headers_for):
    resp = await gateway.post("/api/export", json={}, headers=headers_for())
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["success"] is True and created["status"] == "pending"
    status = await gateway.get(f"/api/export/status/{created['exportId']}", headers=headers_for())
    assert status.status == 200, await status.text()
    body = await status.json()
    assert body["status"] == "pending" and body["progress"] == 0 and body["mode"] == "blog"
