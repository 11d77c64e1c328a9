"""Identity comes only from a verified token."""

from __future__ import annotations

import time

import jwt
import pytest

from services.gateway.auth import Identity, link_secret, make_token, verify_token
from services.gateway.problems import Unauthorized
from shared.settings import Settings

S = Settings(jwt_secret="a-test-secret-that-is-long-enough-for-hs256!")


def test_a_token_made_by_make_token_verifies_to_its_identity():
    token = make_token(S, "tenant_a", "u1", "u1@example.org", "autumn")
    assert verify_token(S, token) == Identity("tenant_a", "u1", "u1@example.org", "autumn")


def test_an_expired_token_is_rejected():
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(S, make_token(S, "tenant_a", "u1", "e@x.org", "n", ttl_s=-5))


def test_a_tampered_token_is_rejected():
    token = make_token(S, "tenant_a", "u1", "e@x.org", "n")
    head, _payload, sig = token.split(".")
    forged = jwt.encode({**jwt.decode(token, options={"verify_signature": False}), "tenant": "tenant_b"},
                        "guess-guess-guess-guess-guess-guess!", algorithm="HS256")
    for bad in (f"{head}.{forged.split('.')[1]}.{sig}", forged, token[:-2] + "xx", "not-a-jwt"):
        with pytest.raises(Unauthorized):
            verify_token(S, bad)


def test_another_issuer_or_a_missing_claim_is_rejected():
    base = {"sub": "u1", "tenant": "tenant_a", "email": "e@x.org", "username": "n", "iss": S.jwt_issuer,
            "exp": int(time.time()) + 60}
    secret = S.jwt_secret.get_secret_value()
    with pytest.raises(Unauthorized):
        verify_token(S, jwt.encode({**base, "iss": "someone-else"}, secret, algorithm="HS256"))
    for claim in ("sub", "tenant", "email", "username", "exp"):
        claims = {k: v for k, v in base.items() if k != claim}
        with pytest.raises(Unauthorized):
            verify_token(S, jwt.encode(claims, secret, algorithm="HS256"))
    with pytest.raises(Unauthorized):
        verify_token(S, jwt.encode({**base, "tenant": "a.b"}, secret, algorithm="HS256"))


def test_make_token_refuses_a_tenant_id_that_cannot_be_a_subject_token():
    with pytest.raises(ValueError):
        make_token(S, "tenant.a", "u1", "e@x.org", "n")


def test_the_link_secret_is_derived_and_differs_from_the_jwt_secret():
    assert link_secret(S) != S.jwt_secret.get_secret_value().encode() and len(link_secret(S)) == 32


def test_ids_with_a_trailing_newline_are_not_ids():
    from services.gateway.auth import valid_id

    assert valid_id("exp_1") and not valid_id("exp_1\n") and not valid_id("a.b")
