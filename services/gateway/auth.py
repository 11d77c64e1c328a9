"""Identity from a verified bearer token (HS256 JWT), never from the request body.

Claims: ``sub`` (user id), ``tenant``, ``email``, ``username``, ``exp``, ``iss`` = settings.jwt_issuer.
The CLI's ``grove-export token`` calls :func:`make_token`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import jwt
from aiohttp import web

from services.gateway.problems import Unauthorized
from shared.events import is_valid_id
from shared.settings import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "tenant", "email", "username", "exp", "iss")


@dataclass(frozen=True)
class Identity:
    """Who is calling, as the token says."""

    tenant_id: str
    user_id: str
    email: str
    username: str


def valid_id(value: str) -> bool:
    """Exactly one subject-safe token (``is_valid_id`` alone lets a trailing newline through)."""
    return is_valid_id(value) and "\n" not in value


def _secret(settings: Settings) -> str:
    return settings.jwt_secret.get_secret_value()


def make_token(settings: Settings, tenant: str, user: str, email: str, username: str,
               ttl_s: float = 3600.0) -> str:
    """A signed token for ``user`` of ``tenant``, valid for ``ttl_s`` seconds."""
    if not valid_id(tenant):
        raise ValueError(f"tenant id {tenant!r} must match [A-Za-z0-9_-]{{1,64}}")
    now = int(time.time())
    claims = {"sub": user, "tenant": tenant, "email": email, "username": username,
              "iss": settings.jwt_issuer, "iat": now, "exp": now + int(ttl_s)}
    return jwt.encode(claims, _secret(settings), algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str) -> Identity:
    """The identity in ``token``; raises :class:`Unauthorized` when it is not trustworthy."""
    try:
        claims = jwt.decode(token, _secret(settings), algorithms=[ALGORITHM], issuer=settings.jwt_issuer,
                            options={"require": list(REQUIRED_CLAIMS)})
    except jwt.ExpiredSignatureError:
        raise _unauthorized("The token has expired.") from None
    except jwt.PyJWTError:
        raise _unauthorized("The token is not valid.") from None
    values = [claims.get(k) for k in ("tenant", "sub", "email", "username")]
    strings = [v for v in values if isinstance(v, str) and v]
    if len(strings) != len(values) or not valid_id(strings[0]):
        raise _unauthorized("The token's claims are incomplete.")
    return Identity(*strings)


def _unauthorized(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers={"WWW-Authenticate": 'Bearer realm="grove-export"'})


def authenticate(request: web.Request, settings: Settings) -> Identity:
    """The caller's identity from ``Authorization: Bearer <token>``."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Send 'Authorization: Bearer <token>'.")
    return verify_token(settings, token.strip())


def link_secret(settings: Settings) -> bytes:
    """Key of the HMAC download links, derived from the JWT secret (a separate key per purpose)."""
    return hashlib.sha256(b"grove-export download links\x00" + _secret(settings).encode()).digest()
