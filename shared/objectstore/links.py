"""HMAC-signed download links for the filesystem store (S3 uses presigned URLs instead).

``/api/export/download/<key>?exp=<unix>&sig=<hex>``: the signature covers the key and expiry,
so a link cannot be moved to another tenant's key or made to live longer; checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

DOWNLOAD_PATH = "/api/export/download/"


def _sig(secret: bytes, key: str, exp: int) -> str:
    return hmac.new(secret, f"{key}\n{exp}".encode(), hashlib.sha256).hexdigest()


def sign(secret: bytes, base_url: str, key: str, expires_in: int, now: float | None = None) -> str:
    exp = int((now if now is not None else time.time()) + expires_in)
    query = urlencode({"exp": exp, "sig": _sig(secret, key, exp)})
    return f"{base_url.rstrip('/')}{DOWNLOAD_PATH}{quote(key)}?{query}"


def verify(secret: bytes, key: str, exp: str, sig: str, now: float | None = None) -> bool:
    try:
        expires = int(exp)
    except ValueError:
        return False
    if expires < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(_sig(secret, key, expires).encode(), sig.encode("utf-8", "replace"))
