"""What a signed token's identity claims may hold, as the running gateway answers it: 401 GROVE-EXPORT-001,
or a username taken as it shows (its invisible format characters left out)."""

from __future__ import annotations

import time

import jwt
import pytest

pytestmark = [pytest.mark.timeout(60)]


def _token(settings, **over: object) -> str:
    now = int(time.time())
    claims = {"sub": "u1", "tenant": "tenant_a", "email": "u1@example.org", "username": "ann",
              "iss": settings.jwt_issuer, "aud": "grove-export", "iat": now, "exp": now + 600} | over
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


@pytest.mark.parametrize(("claim", "value"), [("sub", "  "), ("sub", "u1\u2060"), ("sub", "\ufeffu1"),
                                              ("username", "\u200b"), ("username", "\ufeff \u200d"),
                                              ("username", "ann\u202e"), ("username", "\u200bann\x1b")])
async def test_a_blank_or_invisible_sub_or_a_username_of_nothing_visible_or_a_bidi_control_is_401_and_starts_nothing(
        gateway, settings, problem, claim, value):
    headers = {"Authorization": f"Bearer {_token(settings, **{claim: value})}"}
    body = await problem(await gateway.post("/api/export", json={}, headers=headers), 401, "GROVE-EXPORT-001")
    assert f"{claim} claim" in body["detail"], body
    good = {"Authorization": f"Bearer {_token(settings)}"}
    assert await (await gateway.get("/api/export/history", headers=good)).json() == {"exports": []}


@pytest.mark.parametrize(("username", "shown"), [("ann\u200b", "ann"), ("\ufeffann", "ann"), ("an\u00adn", "ann"),
                                                 ("\u2060Zo\u00eb\u200b", "Zo\u00eb")])
async def test_a_username_holding_an_invisible_format_character_exports_under_the_name_it_shows(
        gateway, settings, username, shown):
    """Seen: a token whose username held a stray U+200B (copy-paste) or U+FEFF from the identity
    provider was a 401, so its person could never export; ExportRequested published past the gateway
    took such a name all along. The gateway now takes the name as it shows: the ExportRequested it
    publishes (read by the email, the manifest, the archive's README) carries it without them."""
    from services.gateway.keys import BUS

    headers = {"Authorization": f"Bearer {_token(settings, username=username)}"}
    answer = await gateway.post("/api/export", json={}, headers=headers)
    assert answer.status == 201, await answer.text()
    export_id = (await answer.json())["exportId"]
    requests = [e async for _, e in gateway.app[BUS].log.history("tenant_a", export_id)]
    assert [(type(e).__name__, e.user_id, e.username) for e in requests] == [("ExportRequested", "u1", shown)]


@pytest.mark.parametrize("email", ["josé@example.com", "anna@bücher.de", "用户@例子.广告"])
async def test_a_person_whose_email_is_not_ascii_can_export(gateway, settings, email):
    """RFC 6531: such a token was a 401 GROVE-EXPORT-001 on every route, so its person could not export
    at all. The ExportRequested it publishes carries the address as the token says it."""
    from services.gateway.keys import BUS

    headers = {"Authorization": f"Bearer {_token(settings, email=email)}"}
    answer = await gateway.post("/api/export", json={}, headers=headers)
    assert answer.status == 201, await answer.text()
    export_id = (await answer.json())["exportId"]
    requests = [e async for _, e in gateway.app[BUS].log.history("tenant_a", export_id)]
    assert [(type(e).__name__, e.user_email) for e in requests] == [("ExportRequested", email)]
    status = await gateway.get(f"/api/export/status/{export_id}", headers=headers)
    assert status.status == 200, await status.text()


@pytest.mark.parametrize("email", ["jo\u202esé@example.com", "josé\u200b@example.com", "josé@bü\u00a0cher.de",
                                   "José <josé@example.com>", "=?utf-8?b?am9zw6k=?=@example.com"])
async def test_an_email_claim_past_ascii_that_could_hide_or_add_a_recipient_is_401(gateway, settings, problem, email):
    headers = {"Authorization": f"Bearer {_token(settings, email=email)}"}
    body = await problem(await gateway.post("/api/export", json={}, headers=headers), 401, "GROVE-EXPORT-001")
    assert body["detail"] == "The token's email claim must be exactly one address.", body


async def test_a_sub_holding_an_invisible_format_character_is_not_its_look_alike_s_key(gateway, settings, problem):
    """The sub is the key owner checks compare exactly (an Idempotency-Key's owner; a cancel's requested_by):
    left out like a username's, U+200B would make "u1\u200b" u1 and give it u1's export. It stays a
    401, and u1's export is neither returned for u1's key nor cancelled."""
    from services.gateway.keys import BUS

    key = {"Idempotency-Key": "mine"}
    owner = {"Authorization": f"Bearer {_token(settings)}", **key}
    export_id = (await (await gateway.post("/api/export", json={}, headers=owner)).json())["exportId"]
    twin_token = _token(settings, sub="u1\u200b")
    twin = {"Authorization": f"Bearer {twin_token}", **key}
    for resp in (await gateway.post("/api/export", json={}, headers=twin),
                 await gateway.post(f"/api/export/cancel/{export_id}", headers=twin),
                 await gateway.get(f"/api/export/status/{export_id}", headers=twin)):
        body = await problem(resp, 401, "GROVE-EXPORT-001")
        assert body["detail"] == "The token's sub claim holds an invisible format character (U+200B).", body
    requests = [e async for _, e in gateway.app[BUS].log.history("tenant_a", export_id)]
    assert [(type(e).__name__, e.user_id) for e in requests] == [("ExportRequested", "u1")]  # no cancel


async def test_a_padded_token_or_one_naming_a_claim_twice_is_401(gateway, settings, problem):
    """PyJWT took both: a signature segment ending in '=', and a payload with "sub" twice (the last won)."""
    import base64
    import hashlib
    import hmac

    good = _token(settings)
    head, payload, _ = good.split(".")
    doubled = base64.urlsafe_b64decode(payload + "==").decode()[:-1] + ',"sub":"root"}'
    signing = head + "." + base64.urlsafe_b64encode(doubled.encode()).decode().rstrip("=")
    sig = hmac.new(settings.jwt_secret.get_secret_value().encode(), signing.encode(), hashlib.sha256).digest()
    for token in (good + "=", f"{signing}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"):
        resp = await gateway.get("/api/export/history", headers={"Authorization": f"Bearer {token}"})
        assert (await problem(resp, 401, "GROVE-EXPORT-001"))["detail"] == "The token is not valid."
    assert (await gateway.get("/api/export/history", headers={"Authorization": f"Bearer {good}"})).status == 200
