"""Downloads from the filesystem store through HMAC-signed gateway links (S3 presigns its own).

The signature covers the key and the expiry, so no tenant check is needed: a link cannot be moved
to another key. A bad signature is a 404 (it names nothing); a valid but expired link, or an
export whose archive expired or is gone, is a 410. ``web.FileResponse`` serves Range requests.
"""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import quote

from aiohttp import web

from services.gateway import problems as p
from services.gateway.auth import link_secret
from services.gateway.keys import READ_MODEL, SETTINGS, STORE
from services.gateway.views import Signer, shown_status
from shared.archive import layout
from shared.objectstore import links
from shared.objectstore.fs import FilesystemStore, UrlSigner
from shared.objectstore.port import StoreError
from shared.runtime.settings import Settings

SIG, EXP = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9]{1,12}")


def url_signer(settings: Settings) -> UrlSigner:
    """The filesystem store's link maker: gateway URLs signed with the link secret."""
    secret = link_secret(settings)

    def sign(bucket: str, key: str, expires_in: int, filename: str | None) -> str:
        if bucket != settings.buckets.exports:
            raise StoreError(f"the gateway serves downloads from {settings.buckets.exports} only")
        return links.sign(secret, settings.public_url, key, expires_in)

    return sign


def sign_for(app: web.Application) -> Signer:
    store, bucket = app[STORE], app[SETTINGS].buckets.exports

    async def sign(key: str, expires_in: int) -> str:
        return await store.signed_url(bucket, key, expires_in, filename=layout.file_name(key))

    return sign


async def download(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings, store = app[SETTINGS], app[STORE]
    key = request.match_info["key"]
    exp, sig = request.query.get("exp", ""), request.query.get("sig", "")
    secret = link_secret(settings)
    # links.verify hands sig to hmac.compare_digest, which raises on non-ASCII str: check the shape first
    if not (SIG.fullmatch(sig) and EXP.fullmatch(exp)) or not links.verify(secret, key, exp, sig, now=0):
        raise p.NotFound("This download link is not valid.")
    if not links.verify(secret, key, exp, sig):
        raise p.Expired("This download link has expired; open the export page for a fresh one.")
    owner = layout.archive_owner(key)
    if owner is None:
        raise p.NotFound("This download link is not valid.")  # only an export's archive is ever served
    row = await app[READ_MODEL].get(*owner)
    if row is not None and shown_status(row, int(time.time() * 1000)) == "expired":
        raise p.Expired("This export has expired.")
    if not isinstance(store, FilesystemStore):
        raise p.NotFound("Downloads are served by the object store, not the gateway.")
    try:
        path = store.path(settings.buckets.exports, key)
    except StoreError:
        raise p.NotFound("This download link is not valid.") from None
    if not await asyncio.to_thread(path.is_file):
        raise p.Expired("This export is no longer available.")
    name = layout.file_name(key)
    return web.FileResponse(path, headers={
        "Content-Type": "application/zip" if name.endswith(".zip") else "application/octet-stream",
        "Content-Disposition": f"attachment; filename=\"{quote(name)}\"; filename*=UTF-8''{quote(name)}",
        "Cache-Control": "private, no-store",
    })
