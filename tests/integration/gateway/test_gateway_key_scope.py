"""The gateway signs only the export's own archive key, whatever an event in the log claims: a
forged ExportCompleted that points at another tenant's archive or at the export's snapshot is
dropped as forged (its body names another export's object), so the export is not complete and
has no download link. So is one naming a key no store can hold (a name over 255 bytes)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from shared.core import events as ev


@pytest.mark.parametrize("key", ["exports/tenant_b/exp_other/grove-export-b-2026-11-30.zip",
                                 "exports/tenant_a/{export}/work/snapshot.jsonl",
                                 "exports/tenant_a/{export}/../exp_other/x.zip", "images/tenant_a/x.jpg",
                                 # a name no store holds (over 255 bytes): the owner's every status was a 500
                                 "exports/tenant_a/{export}/" + "x" * 252 + ".zip",
                                 "exports/tenant_a/{export}/" + "é" * 126 + ".zip"])
async def test_a_completed_export_naming_a_key_outside_its_prefix_is_dropped(gateway, headers_for, pipeline, key):
    created = await (await gateway.post("/api/export", json={}, headers=headers_for())).json()
    export_id = created["exportId"]
    ids = dict(tenant_id="tenant_a", export_id=export_id)
    await pipeline.assemble("tenant_a", export_id)
    await pipeline.append(ev.FinalizeStarted(**ids))
    await pipeline.append(ev.ExportCompleted(
        **ids, archive_key=key.format(export=export_id), size_bytes=10, sha256=hashlib.sha256(b"x").hexdigest(),
        item_counts={"posts": 1}, error_count=0, expires_at=datetime.now(UTC) + timedelta(days=7)))
    await pipeline.settle(gateway)
    view = await (await gateway.get(f"/api/export/status/{export_id}", headers=headers_for())).json()
    assert view["status"] == "uploading" and "downloadUrl" not in view, view  # still finalizing


async def test_the_page_and_the_api_carry_the_security_headers(gateway, headers_for):
    for path, headers in (("/export", {}), ("/api/export/history", headers_for()), ("/healthz", {}),
                          ("/api/export/status/exp_missing", headers_for())):
        resp = await gateway.get(path, headers=headers)
        csp = resp.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp, path
        assert "style-src 'self'" in csp, path
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", path
        assert resp.headers.get("Referrer-Policy") == "no-referrer", path
        assert resp.headers.get("X-Frame-Options") == "DENY", path


async def test_every_api_answer_is_never_stored_by_a_cache(gateway, headers_for, pipeline):
    """Seen: a complete export's status (its signed downloadUrl, sha256, size), the history and a
    problem naming the tenant's active export were sent with no Cache-Control at all, so a browser's
    or an intermediary's cache could keep a working download link and the tenant's exports."""
    created = await (await gateway.post("/api/export", json={}, headers=headers_for())).json()
    export_id = created["exportId"]
    await pipeline.complete("tenant_a", export_id)
    await pipeline.settle(gateway)
    answers = [await gateway.get(f"/api/export/status/{export_id}", headers=headers_for()),
               await gateway.get("/api/export/history", headers=headers_for()),
               await gateway.post("/api/export", json={}, headers=headers_for("tenant_b")),
               await gateway.post("/api/export", json={}, headers=headers_for("tenant_b")),  # 409, activeExportId
               await gateway.post(f"/api/export/cancel/{export_id}", headers=headers_for()),  # 409
               await gateway.get("/api/export/status/exp_missing", headers=headers_for())]
    assert "downloadUrl" in await answers[0].json()
    assert [a.status for a in answers] == [200, 200, 201, 409, 409, 404]
    for resp in answers:
        assert "no-store" in resp.headers.get("Cache-Control", ""), (resp.url, resp.headers)
    page = await gateway.get("/export")  # the page and its files are public: stored, revalidated on each use
    assert page.status == 200 and page.headers.get("Cache-Control") == "no-cache"
