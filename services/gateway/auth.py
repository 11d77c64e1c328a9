"""Identity from a verified bearer token (HS256 JWT), never from the request body.

Claims: ``sub`` (user id), ``tenant``, ``email`` (exactly one address), ``username``, ``exp`` (at most
``token_max_ttl_s`` ahead), ``iss`` = settings.jwt_issuer, ``aud`` = ``grove-export``. The key is
``GROVE_JWT_SECRET`` (no default, see shared/runtime/secrets.py); download links have their own key.
While a key is rotated, ``GROVE_JWT_SECRET_PREVIOUS`` verifies tokens too; only the current key signs.
The CLI's ``grove-export token`` calls :func:`make_token`. A token is read only in one spelling: three
base64url segments without padding, no JSON member named twice; ``sub`` is a name held exactly (not
blank, nothing invisible: :func:`shared.core.printable.name_problem`), ``username`` a name to show, taken
without its invisible format characters (:func:`shared.core.printable.username_problem`, ``shown_name``).
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from dataclasses import dataclass

import jwt
from aiohttp import web

from services.gateway.problems import Unauthorized
from shared.core.events import is_valid_id
from shared.core.mailaddr import is_single_address
from shared.core.printable import USERNAME_RULE, name_problem, name_refusal, shown_name, username_problem
from shared.runtime import secrets
from shared.runtime.settings import Settings

ALGORITHM = "HS256"
AUDIENCE = "grove-export"
REQUIRED_CLAIMS = ("sub", "tenant", "email", "username", "exp", "iss", "aud")
TIME_CLAIMS = ("exp", "iat", "nbf")  # NumericDates: a finite number, never a bool or a string
# A compact JWS (RFC 7515 7.1) as this gateway takes one: three base64url segments, no padding (RFC
# 7515 2: the '=' are left out) and no other character; a length of 4n+1 is no base64 at all.
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
LEEWAY_S = 60  # clock skew between the issuer and us, allowed on iat, nbf and the lifetime cap (never on expiry)


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


def _secret(settings: Settings) -> bytes:
    """The key that signs tokens: the current one only."""
    return secrets.require("jwt", settings.jwt_secret)


def _verifying_keys(settings: Settings) -> tuple[bytes, ...]:
    """The keys a token may be signed with: the current one, then the previous one while it is set."""
    return secrets.verifying("jwt", settings.jwt_secret, settings.jwt_secret_previous)


# The longest token a request can carry: the gateway (aiohttp) refuses a header line over 8,190 bytes
# with a 400 before any route, so a longer token minted here was a token nobody could use.
MAX_TOKEN_CHARS = 8000


def make_token(settings: Settings, tenant: str, user: str, email: str, username: str,
               ttl_s: float = 3600.0) -> str:
    """A signed token for ``user`` of ``tenant``, valid for ``ttl_s`` seconds (at most the cap). Its
    ``username`` claim is ``username`` as the gateway would take it: its invisible format characters
    left out (:func:`shared.core.printable.shown_name`)."""
    if not valid_id(tenant):
        raise ValueError(f"tenant id {tenant!r} must match [A-Za-z0-9_-]{{1,64}}")
    if not is_single_address(email):
        raise ValueError(f"email {email!r} must be exactly one address (no name, list, or line break)")
    # what verify_token refuses, refused here, in the words `seed --username` uses
    if (problem := name_problem(user)) is not None:
        raise ValueError(name_refusal("user", user, problem))
    if (problem := username_problem(username)) is not None:
        raise ValueError(name_refusal("username", username, problem, USERNAME_RULE))
    username = shown_name(username)  # what the gateway would use: the token says it
    if ttl_s > settings.token_max_ttl_s:
        raise ValueError(f"a token lives at most {settings.token_max_ttl_s:g} s (GROVE_TOKEN_MAX_TTL_S)")
    now = int(time.time())
    claims = {"sub": user, "tenant": tenant, "email": email, "username": username, "aud": AUDIENCE,
              "iss": settings.jwt_issuer, "iat": now, "exp": now + int(ttl_s)}
    token = jwt.encode(claims, _secret(settings), algorithm=ALGORITHM)
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"the token would be {len(token):,} characters, more than the gateway reads in an "
                         f"Authorization header ({MAX_TOKEN_CHARS:,}): shorten the user, username or email")
    return token


def verify_token(settings: Settings, token: str) -> Identity:
    """The identity in ``token``; raises :class:`Unauthorized` when it is not trustworthy."""
    # PyJWT takes a segment with '=' padding (the signature's), so one token had several spellings
    # another verifier may refuse or read otherwise. A raw non-UTF-8 byte (aiohttp reads a header with
    # surrogateescape) made it raise UnicodeEncodeError: a 500.
    if not COMPACT_JWS.fullmatch(token) or any(len(segment) % 4 == 1 for segment in token.split(".")):
        raise _unauthorized("The token is not valid.")
    claims = None
    for key in _verifying_keys(settings):  # PyJWT checks the signature before any claim
        try:
            # The issuer's clock may run ahead of ours: an iat or nbf up to LEEWAY_S in our future is
            # allowed (PyJWT's leeway 0 made every token an issuer a second ahead minted a 401 until our
            # clock caught up). Its leeway would stretch exp too, so exp is checked below, with none.
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=settings.jwt_issuer,
                                audience=AUDIENCE, leeway=LEEWAY_S,
                                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False})
            break
        except jwt.InvalidSignatureError:
            continue  # another key may have signed it
        except jwt.PyJWTError:
            raise _unauthorized("The token is not valid.") from None
    if claims is None or not one_of_each(token):
        raise _unauthorized("The token is not valid.")
    if any(k in claims and numeric_date(claims[k]) is None for k in TIME_CLAIMS):
        raise _unauthorized("The token is not valid.")
    expires = numeric_date(claims["exp"])
    if expires is None or expires <= time.time():  # never any leeway on expiry
        raise _unauthorized("The token has expired.")
    values = [claims.get(k) for k in ("tenant", "sub", "email", "username")]
    strings = [v for v in values if isinstance(v, str) and v]
    if len(strings) != len(values) or not valid_id(strings[0]):
        raise _unauthorized("The token's claims are incomplete.")
    # They reach emails, archive names, logs and operator output: no line break or bidi control, nor a
    # name that shows as none. The sub, the key owner checks compare exactly, holds nothing invisible
    # (u1 and u1\u200b would be two keys that show as one); the username, only shown, is used as it
    # shows: its invisible format characters left out (a stray U+200B or U+FEFF from an identity
    # provider locked its person out; anyone may choose to be shown as "ann" anyway).
    for name, problem in (("sub", name_problem(strings[1])), ("username", username_problem(strings[3]))):
        if problem is not None:
            raise _unauthorized(f"The token's {name} claim {problem}.")
    strings[3] = shown_name(strings[3])
    if not lifetime_ok(settings, claims):
        raise _unauthorized(f"The token lives longer than {settings.token_max_ttl_s:g} seconds; ask for a new one.")
    if not is_single_address(strings[2]):
        raise _unauthorized("The token's email claim must be exactly one address.")
    return Identity(*strings)



class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _Duplicate
    return members


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicates)  # built once: json.loads(…, hook) builds one a call


def one_of_each(token: str) -> bool:
    """Whether no JSON object in the token's header and payload names a member twice. PyJWT, like
    json.loads, keeps the last (``"sub":"ann","sub":"root"`` is root): other verifiers take the first
    or refuse, so the same signed token named two people. Checked once the signature holds (a forged
    token is never parsed twice); the segments are base64url already (:data:`COMPACT_JWS`)."""
    try:
        for segment in token.split(".", 2)[:2]:
            _STRICT_JSON.decode(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode())
    except ValueError:  # _Duplicate; anything else (not UTF-8, not JSON) PyJWT would have refused already
        return False
    return True


def numeric_date(value: object) -> float | None:
    """A JWT NumericDate as seconds, or None when ``value`` is none: a bool, a string, NaN, an
    infinity, or an integer no float can hold (``10**400``: ``exp - time.time()`` raised
    OverflowError, a 500 for a signed token). Fractions are allowed, as RFC 7519 allows them."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def lifetime_ok(settings: Settings, claims: dict[str, object]) -> bool:
    """``exp`` lies no further ahead than the cap (from now, and from ``iat`` when present)."""
    exp, iat = numeric_date(claims.get("exp")), numeric_date(claims.get("iat"))
    cap = settings.token_max_ttl_s + LEEWAY_S
    if exp is None or exp - time.time() > cap:
        return False
    return not (iat is not None and exp - iat > cap)


def _unauthorized(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers={"WWW-Authenticate": 'Bearer realm="grove-export"'})


def authenticate(request: web.Request, settings: Settings) -> Identity:
    """The caller's identity from ``Authorization: Bearer <token>``."""
    given = request.headers.getall("Authorization", [])
    if len(given) > 1:  # which one counts differs between readers (first here, last in many proxies)
        raise _unauthorized("Send one Authorization header: the request has more than one Authorization header.")
    scheme, _, token = (given[0] if given else "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Send 'Authorization: Bearer <token>'.")
    return verify_token(settings, token.strip())


def link_secret(settings: Settings) -> bytes:
    """Key of the HMAC download links: ``GROVE_LINK_SECRET``, its own key (not derived from the JWT's)."""
    return secrets.require("link", settings.link_secret)


def link_keys(settings: Settings) -> tuple[bytes, ...]:
    """The keys a download link may be signed with: :func:`link_secret`, then
    ``GROVE_LINK_SECRET_PREVIOUS`` while it is set."""
    return secrets.verifying("link", settings.link_secret, settings.link_secret_previous)
