"""Rotating a signing key: while GROVE_JWT_SECRET_PREVIOUS / GROVE_LINK_SECRET_PREVIOUS is set, what the
old key signed still passes; once it is removed, it does not; the current key alone signs. Replica 0
(the ``gateway`` fixture) runs with no previous key, replica 1 with the old ones: one bus, one store."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

from services.gateway import make_token
from shared.objectstore import links
from shared.runtime.settings import Settings
from tests.support.env import TEST_SECRETS

OLD = {"jwt": secrets.token_urlsafe(48), "link": secrets.token_urlsafe(48)}  # what the keys were before
UNRELATED = secrets.token_urlsafe(48)  # a key this gateway never had


def bearer(jwt_secret: str) -> dict[str, str]:
    token = make_token(Settings(jwt_secret=jwt_secret), "tenant_a", "u1", "u1@example.org", "u1-name", ttl_s=600)
    return {"Authorization": f"Bearer {token}"}


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_a_token_signed_with_the_previous_key_passes_only_while_it_is_set(
        gateway, start_gateway, problem):
    rotating = await start_gateway(1, jwt_secret_previous=OLD["jwt"])
    for client in (rotating, gateway):  # the current key, with the previous one set or not
        assert (await client.get("/api/export/history", headers=bearer(TEST_SECRETS["jwt"]))).status == 200
    resp = await rotating.get("/api/export/history", headers=bearer(OLD["jwt"]))
    assert resp.status == 200, await resp.text()
    body = await problem(await gateway.get("/api/export/history", headers=bearer(OLD["jwt"])), 401, "GROVE-EXPORT-001")
    assert body["detail"] == "The token is not valid."
    for client in (rotating, gateway):
        body = await problem(await client.get("/api/export/history", headers=bearer(UNRELATED)), 401, "GROVE-EXPORT-001")
        assert body["detail"] == "The token is not valid."


async def test_a_link_signed_with_the_previous_key_downloads_only_while_it_is_set_and_never_once_expired(
        gateway, start_gateway, pipeline, problem, headers_for):
    rotating = await start_gateway(1, link_secret_previous=OLD["link"])
    resp = await gateway.post("/api/export", json={}, headers=headers_for())
    assert resp.status == 201, await resp.text()
    export_id = (await resp.json())["exportId"]
    await pipeline.complete("tenant_a", export_id)
    await pipeline.settle(gateway, rotating)
    key = pipeline.archive_key("tenant_a", export_id)

    old = local(links.sign(OLD["link"].encode(), "http://x", key, 600))
    full = await rotating.get(old)
    assert full.status == 200, await full.text()
    assert await full.read() == pipeline.archive
    await problem(await gateway.get(old), 404, "GROVE-EXPORT-005")  # the previous key removed

    for secret in (TEST_SECRETS["link"], OLD["link"]):  # expired: refused whichever key signed it
        stale = local(links.sign(secret.encode(), "http://x", key, -10))
        await problem(await rotating.get(stale), 410, "GROVE-EXPORT-009")
    unrelated = local(links.sign(UNRELATED.encode(), "http://x", key, 600))
    for client in (rotating, gateway):
        await problem(await client.get(unrelated), 404, "GROVE-EXPORT-005")

    # the link a status offers is signed with the current key, never the previous one
    status = await rotating.get(f"/api/export/status/{export_id}", headers=headers_for())
    query = parse_qs(urlsplit((await status.json())["downloadUrl"]).query)
    assert links.verify(TEST_SECRETS["link"].encode(), key, query["exp"][0], query["sig"][0])
    assert not links.verify(OLD["link"].encode(), key, query["exp"][0], query["sig"][0])
