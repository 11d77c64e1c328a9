"""Tenant isolation: tenant B cannot see, cancel, list or download tenant A's export."""

from __future__ import annotations

from urllib.parse import urlsplit


async def test_another_tenants_export_is_invisible(gateway, headers_for, pipeline, problem):
    a, b = headers_for("tenant_a"), headers_for("tenant_b", user="intruder")
    export_id = (await (await gateway.post("/api/export", json={}, headers=a)).json())["exportId"]
    await pipeline.complete("tenant_a", export_id)
    await pipeline.settle(gateway)

    await problem(await gateway.get(f"/api/export/status/{export_id}", headers=b), 404, "GROVE-EXPORT-005")
    await problem(await gateway.post(f"/api/export/cancel/{export_id}", headers=b), 404, "GROVE-EXPORT-005")
    listed = await (await gateway.get("/api/export/history", headers=b)).json()
    assert listed == {"exports": []}

    url = (await (await gateway.get(f"/api/export/status/{export_id}", headers=a)).json())["downloadUrl"]
    parts = urlsplit(url)
    moved = parts.path.replace("/tenant_a/", "/tenant_b/")
    await problem(await gateway.get(f"{moved}?{parts.query}"), 404, "GROVE-EXPORT-005")
    longer = parts.query.replace("exp=", "exp=9")
    await problem(await gateway.get(f"{parts.path}?{longer}"), 404, "GROVE-EXPORT-005")
    traversal = parts.path.replace(f"/tenant_a/{export_id}/", "/tenant_a/../tenant_b/")
    resp = await gateway.get(f"{traversal}?{parts.query}")
    assert resp.status == 404 and resp.content_type == "application/problem+json"
    assert (await gateway.get(f"{parts.path}?{parts.query}")).status == 200  # the owner's link works


async def test_the_token_decides_the_tenant_not_the_body(gateway, headers_for, pipeline, problem):
    a, b = headers_for("tenant_a"), headers_for("tenant_b", user="intruder")
    resp = await gateway.post("/api/export", json={"tenant": "tenant_b"}, headers=a)
    await problem(resp, 400, "GROVE-EXPORT-004")  # a body cannot even name a tenant

    export_id = (await (await gateway.post("/api/export", json={}, headers=a)).json())["exportId"]
    log = pipeline.bus.log
    history = [e async for _, e in log.history("tenant_a", export_id)]
    assert [(e.name(), e.tenant_id) for e in history][:1] == [("ExportRequested", "tenant_a")]
    assert [e async for _, e in log.history("tenant_b", export_id)] == []
    await pipeline.complete("tenant_a", export_id)
    await pipeline.settle(gateway)
    assert (await gateway.get(f"/api/export/status/{export_id}", headers=a)).status == 200
    mine = await (await gateway.get("/api/export/history", headers=a)).json()
    assert [x["exportId"] for x in mine["exports"]] == [export_id]
    await problem(await gateway.get(f"/api/export/status/{export_id}", headers=b), 404, "GROVE-EXPORT-005")
    assert await (await gateway.get("/api/export/history", headers=b)).json() == {"exports": []}
