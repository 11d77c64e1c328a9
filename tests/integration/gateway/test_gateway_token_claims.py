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
