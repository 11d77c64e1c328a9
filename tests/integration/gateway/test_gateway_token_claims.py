"""What a signed token's identity claims may hold, as the running gateway answers it: 401 GROVE-EXPORT-001."""

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


@pytest.mark.parametrize(("claim", "value"), [("sub", "  "), ("username", "ann\u200b"), ("username", "\ufeffann"),
                                              ("sub", "u1\u2060")])
async def test_a_blank_sub_or_an_invisible_character_in_a_name_is_401_and_starts_nothing(
        gateway, settings, problem, claim, value):
    headers = {"Authorization": f"Bearer {_token(settings, **{claim: value})}"}
    body = await problem(await gateway.post("/api/export", json={}, headers=headers), 401, "GROVE-EXPORT-001")
    assert f"{claim} claim" in body["detail"], body
    good = {"Authorization": f"Bearer {_token(settings)}"}
    assert await (await gateway.get("/api/export/history", headers=good)).json() == {"exports": []}


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
