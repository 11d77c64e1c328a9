"""Attacks on the front door of a live stack, made through the public HTTP API and judged by what a
user sees: forged tokens and links, far-future and audience-less tokens, a list in the email claim,
and create → cancel → create as a way around the hourly limit. A legitimate export started
alongside every attack completes."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import jwt

from shared.objectstore import links
from tests.integration.frontdoor.conftest import OLD_PUBLIC_DEFAULT, Live, api, old_link_key, wait_api_status
from tests.support.env import TEST_SECRETS


def _claims(tenant: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "u_attacker", "tenant": tenant, "email": "attacker@evil.example", "username": "mallory",
            "iss": "grove", "aud": "grove-export", "iat": now, "exp": now + 600} | over


async def _start(http: aiohttp.ClientSession, live: Live, tenant: str, body: dict | None = None) -> str:
    status, created = await api(http, "POST", f"{live.base}/api/export", json=body or {"deliveryMethod": "download"},
                                headers=live.headers(tenant))
    assert status == 201, created
    return str(created["exportId"])


async def test_forged_and_overreaching_tokens_are_refused_while_a_real_export_completes(
        live_fs: Live, http: aiohttp.ClientSession) -> None:
    victim = await live_fs.seed(images=4)
    legit = await _start(http, live_fs, victim.tenant_id)
    real = TEST_SECRETS["jwt"]
    attacks = {
        "signed with the old public default": jwt.encode(_claims(victim.tenant_id), OLD_PUBLIC_DEFAULT, "HS256"),
        "signed with the link secret": jwt.encode(_claims(victim.tenant_id), TEST_SECRETS["link"], "HS256"),
        "exp in the year 3000": jwt.encode(_claims(victim.tenant_id, exp=32503680000), real, "HS256"),
        "no audience": jwt.encode({k: v for k, v in _claims(victim.tenant_id).items() if k != "aud"}, real, "HS256"),
        "another audience": jwt.encode(_claims(victim.tenant_id, aud="billing"), real, "HS256"),
        "a list of addresses": jwt.encode(_claims(victim.tenant_id, email="victim@x.y, attacker@evil.z"), real,
                                          "HS256"),
        "a display name": jwt.encode(_claims(victim.tenant_id, email="Victim <attacker@evil.z>"), real, "HS256"),
        "a header break": jwt.encode(_claims(victim.tenant_id, email="v@x.y\r\nBcc: attacker@evil.z"), real,
                                     "HS256"),
        "alg none": jwt.encode(_claims(victim.tenant_id), None, algorithm="none"),
        "a line break in the username": jwt.encode(
            _claims(victim.tenant_id, username="evil\r\nBcc: attacker@evil.org"), real, "HS256"),
        "a control byte in the user id": jwt.encode(_claims(victim.tenant_id, sub="u\x1b[2Jx"), real, "HS256"),
        "a line separator in the username": jwt.encode(_claims(victim.tenant_id, username="a\u2028b"), real, "HS256"),
    }
    for what, token in attacks.items():
        headers = {"Authorization": f"Bearer {token}"}
        for method, path in (("POST", "/api/export"), ("GET", f"/api/export/status/{legit}"),
                             ("GET", "/api/export/history"), ("POST", f"/api/export/cancel/{legit}")):
            status, body = await api(http, method, f"{live_fs.base}{path}", headers=headers, json={})
            assert status == 401 and body["code"] == "GROVE-EXPORT-001", (what, method, path, status, body)
    view = await wait_api_status(http, live_fs, victim.tenant_id, legit, {"complete", "failed", "cancelled"})
    assert view["status"] == "complete" and view["downloadUrl"], view
    status, data = await api(http, "GET", view["downloadUrl"])
    assert status == 200 and data[:2] == b"PK"


async def test_forged_download_links_are_refused_and_only_an_archive_is_ever_served(
        live_fs: Live, http: aiohttp.ClientSession) -> None:
    victim = await live_fs.seed(images=2)
    export_id = await _start(http, live_fs, victim.tenant_id)
    view = await wait_api_status(http, live_fs, victim.tenant_id, export_id, {"complete", "failed"})
    assert view["status"] == "complete", view
    archive_key = view["downloadUrl"].split("/api/export/download/", 1)[1].split("?", 1)[0]
    snapshot = f"exports/{victim.tenant_id}/{export_id}/work/snapshot.jsonl"
    forged = {
        "archive, old derived key": links.sign(old_link_key(), live_fs.base, archive_key, 600),
        "archive, the JWT secret": links.sign(TEST_SECRETS["jwt"].encode(), live_fs.base, archive_key, 600),
        "snapshot, old derived key": links.sign(old_link_key(), live_fs.base, snapshot, 600),
        # even the real key signs nothing but an archive: the route refuses other keys outright
        "snapshot, the real link key": links.sign(TEST_SECRETS["link"].encode(), live_fs.base, snapshot, 600),
        "climbing out, the real link key": links.sign(
            TEST_SECRETS["link"].encode(), live_fs.base, f"exports/{victim.tenant_id}/{export_id}/../x.zip", 600),
    }
    for what, url in forged.items():
        status, body = await api(http, "GET", url)
        assert status == 404 and body["code"] == "GROVE-EXPORT-005", (what, status, body)
    status, data = await api(http, "GET", view["downloadUrl"])
    assert status == 200 and data[:2] == b"PK"


async def test_create_cancel_create_within_the_hour_is_429_and_never_409(
        live_fs: Live, http: aiohttp.ClientSession) -> None:
    attacker, bystander = await live_fs.seed(images=12), await live_fs.seed(images=3)
    legit = await _start(http, live_fs, bystander.tenant_id)
    first = await _start(http, live_fs, attacker.tenant_id)
    await wait_api_status(http, live_fs, attacker.tenant_id, first, {"assembling"})
    status, body = await api(http, "POST", f"{live_fs.base}/api/export/cancel/{first}",
                             headers=live_fs.headers(attacker.tenant_id))
    assert status == 200, body
    await wait_api_status(http, live_fs, attacker.tenant_id, first, {"cancelled"}, timeout=30)
    status, body = await api(http, "POST", f"{live_fs.base}/api/export", json={},
                             headers=live_fs.headers(attacker.tenant_id))
    assert status == 429 and body["code"] == "GROVE-EXPORT-003", body
    view = await wait_api_status(http, live_fs, bystander.tenant_id, legit, {"complete", "failed", "cancelled"})
    assert view["status"] == "complete", view
