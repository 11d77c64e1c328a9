"""Downloads from the filesystem store through HMAC-signed gateway links (S3 presigns its own).

The signature covers the key and the expiry, so no tenant check is needed: a link cannot be moved
to another key. ``GROVE_LINK_SECRET`` signs; a link signed with ``GROVE_LINK_SECRET_PREVIOUS``, while
it is set, is served too (a rotation), and expires just the same. A bad signature is a 404 (it names
nothing); a valid but expired link, or an export whose archive expired or is gone, is a 410. ``web.FileResponse`` serves Range requests; one
it cannot satisfy is a 416 problem, and an If-Match or If-Unmodified-Since that no longer holds a 412
problem (:func:`check_file_request`), not its empty 416 or 412 labelled as a ZIP. A tenant has at most
``GROVE_DOWNLOADS_PER_TENANT`` downloads under way at once (:mod:`services.gateway.download_slots`);
one more is a 429 problem, answered before any byte of the archive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

from services.gateway import problems as p
from services.gateway.auth import link_keys, link_secret
from services.gateway.keys import DOWNLOADS, READ_MODEL, SETTINGS, STORE
from services.gateway.views import Signer, shown_status
from shared.archive import layout
from shared.core import keys
from shared.objectstore import links
from shared.objectstore.fs import FilesystemStore, UrlSigner
from shared.objectstore.port import StoreError
from shared.runtime.httpserve import HeadDeadlineHandler
from shared.runtime.settings import Settings

log = logging.getLogger(__name__)
SIG, EXP = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9]{1,12}")
# A download refused for its tenant's GROVE_DOWNLOADS_PER_TENANT is told to come back after this: a slot
# frees only as one of its other downloads ends, which takes a while, and a download manager retries.
DOWNLOAD_RETRY_AFTER_S = 5


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
    # links.verify hands sig to hmac.compare_digest, which raises on non-ASCII str: check the shape first
    shaped = SIG.fullmatch(sig) and EXP.fullmatch(exp)
    secret = next((s for s in link_keys(settings) if links.verify(s, key, exp, sig, now=0)), None) if shaped else None
    if secret is None:
        raise p.NotFound("This download link is not valid.")
    if not links.verify(secret, key, exp, sig):
        raise p.Expired("This download link has expired; open the export page for a fresh one.")
    owner = keys.archive_owner(key)
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
    try:
        stat = await asyncio.to_thread(path.stat)
    except FileNotFoundError:
        raise p.Expired("This export is no longer available.") from None
    name = layout.file_name(key)
    slot = app[DOWNLOADS].take(owner[0])
    if slot is None:
        raise p.TooManyDownloads(
            f"This account already has {app[DOWNLOADS].limit} downloads under way; let one finish, then try again.",
            headers={"Retry-After": str(DOWNLOAD_RETRY_AFTER_S)}, maxConcurrentDownloads=app[DOWNLOADS].limit)
    try:  # from here the slot is the response's to give back, once its send ends (_File.prepare)
        response = file_response(request, path, stat, noun="archive", done=slot.release,
                                 gone=p.Expired("This export is no longer available."), headers={
            "Content-Type": "application/zip" if name.endswith(".zip") else "application/octet-stream",
            "Content-Disposition": f"attachment; filename=\"{quote(name)}\"; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "private, no-store",
        })
    except BaseException:  # a 412 or 416 problem: no send, no slot
        slot.release()
        raise
    if isinstance(request.protocol, HeadDeadlineHandler):
        request.protocol.patient = True  # a slow reader of an archive is no reason to close it at the cap
    return response


SUFFIX_ZERO = re.compile(r"\s*bytes\s*=\s*-\s*0+\s*", re.IGNORECASE)  # the unit is case-insensitive (RFC 9110 14.1)


def is_bytes_range(value: str) -> bool:
    """Whether a ``Range`` value is in bytes (its unit, before ``=``, case-insensitive); ``items=0-1``
    is not, and is answered with the whole file as if absent, not with a 416."""
    unit, eq, _ = value.partition("=")
    return not eq or unit.strip().lower() == "bytes"  # no '=' at all: malformed, check_range's 416
# A client that takes fewer bytes than this in GROVE_KEEPALIVE_TIMEOUT_S has stalled. The kernel
# reports a socket writable only once about half its send buffer is free (up to MiBs on a fast
# link), so the window must be long: a 1 s one cut a reader taking 640 KB/s through plain writes.
STALL_SLICE = 64 * 1024


def file_response(request: web.Request, path: Path, stat: os.stat_result,
                  headers: dict[str, str] | None = None, gone: p.Problem | None = None,
                  noun: str = "file", done: Callable[[], None] | None = None) -> web.FileResponse:
    """``web.FileResponse`` for ``path``, after :func:`check_file_request`; when ``If-Range`` names
    an entity tag that is not the file's current one, the whole file whatever ``Range`` says (RFC
    9110 13.1.5: a resumed download must not splice two versions), which aiohttp, reading
    ``If-Range`` only as a date, does not do. Sent so that a client which stops reading is closed
    (:class:`_File`). ``gone``: the problem when the file is gone by the time it is opened (default a 404);
    ``noun``: what a problem calls the file (a download's "archive", the export page's files "file");
    ``done``: called once the answer's send has ended, however it ended (a download's slot given back).
    """
    stall_s = request.app[SETTINGS].keepalive_timeout_s  # an idle connection's bound, as between requests
    if check_file_request(_readable(request), stat, noun=noun):
        return _WholeFile(path, stall_s, headers=headers, gone=gone, done=done)
    return _File(path, stall_s, headers=headers, gone=gone, done=done)


class _File(web.FileResponse):
    """A file sent (still zero-copy, by ``loop.sendfile``) in slices of :data:`STALL_SLICE`, each of
    which the client must take within ``stall_s``, or its connection is closed: aiohttp's own send
    has no bound, so a client that sent a download's request and then read nothing held the
    connection, the open file (and the disk space of an archive deleted meanwhile) for good."""

    def __init__(self, path: Path, stall_s: float, headers: dict[str, str] | None = None,
                 gone: p.Problem | None = None, done: Callable[[], None] | None = None) -> None:
        super().__init__(path, headers=headers)
        self._stall_s = stall_s
        self._done = done
        self._gone = gone or p.NotFound("No such resource.")
        self._problem: bytes | None = None
        self._method = ""

    def set_status(self, status: int, reason: str | None = None) -> None:
        """aiohttp answers a file it cannot open (deleted, or made unreadable or not a file, after the
        handler's checks: the janitor or an erase between the two) with an empty 404 or 403 under the
        headers given for the file — `Content-Type: application/zip` and `Content-Disposition:
        attachment`, an empty "archive" to save. That answer is the ``gone`` problem instead."""
        if status in (403, 404) and not self.prepared and self._problem is None:
            problem = self._gone
            self._problem = json.dumps(problem.body()).encode()
            for name in ("Content-Disposition", "Content-Type", "Content-Length", "Transfer-Encoding"):
                self.headers.popall(name, None)
            self.headers.update(problem.headers)
            self.headers["Content-Type"] = f"{p.PROBLEM_JSON}; charset=utf-8"
            self.content_length = len(self._problem)
            status, reason = problem.status, None
        super().set_status(status, reason)

    async def write_eof(self, data: bytes = b"") -> None:
        if self._problem and not data and self._method != "HEAD":  # a HEAD answer has the headers only
            data = self._problem
        self._problem = b""
        await super().write_eof(data)

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        request = _readable(request)  # aiohttp prepares the answer with the request as it came
        self._method = request.method
        since = request.if_modified_since
        if since is not None and since.timestamp() > time.time():
            # RFC 9110 13.1.3: a date later than the server's clock is not a valid one, and is
            # ignored (aiohttp answered 304 Not Modified, so a cache kept whatever it held)
            request = _without(request, "If-Modified-Since")
        try:  # the whole answer is sent in here, body and end (aiohttp's later write_eof does nothing)
            return await super().prepare(request)
        finally:  # sent, the client gone, the stall bound, an error, the handler cancelled: all end here
            if self._done is not None:
                self._done()

    async def _sendfile(self, request: web.BaseRequest, fobj: IO[Any], offset: int,
                        count: int) -> AbstractStreamWriter:
        writer = await web.StreamResponse.prepare(self, request)
        assert writer is not None
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("Connection lost")
        loop, end, native = asyncio.get_running_loop(), offset + count, True
        handler = request.protocol if isinstance(request.protocol, HeadDeadlineHandler) else None
        while offset < end:
            size = min(STALL_SLICE, end - offset)
            if transport.is_closing():
                # the client hung up (before this answer's body, or between two slices): asyncio's
                # sendfile raised RuntimeError, an "Unhandled exception" at ERROR for its doing
                raise ConnectionResetError("the client closed the connection")
            if handler is not None:
                handler.unread(True)  # until this slice is out: at the cap, a page file not taken for 1 s makes way
            try:
                async with asyncio.timeout(self._stall_s):
                    if native:
                        try:
                            await loop.sendfile(transport, fobj, offset, size)  # falls back to writes itself
                        except NotImplementedError:  # a loop without it (as aiohttp allows): plain writes
                            native = False
                    if not native:
                        await writer.write(await loop.run_in_executor(None, self._seek_and_read, fobj, offset, size))
                        await writer.drain()
            except TimeoutError:
                log.info("closed a download whose client took no %d bytes within %g s", size, self._stall_s)
                transport.abort()
                raise ConnectionResetError("the client stopped reading") from None
            except (RuntimeError, OSError):
                if transport.is_closing():  # it hung up while this slice was sent: as above
                    raise ConnectionResetError("the client closed the connection") from None
                raise
            finally:
                if handler is not None:
                    handler.unread(False)
            offset += size
        await web.StreamResponse.write_eof(self)
        return writer


class _WholeFile(_File):
    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        return await super().prepare(_without(request, "Range"))


# The conditional dates aiohttp reads (header, the request's property). Its date parser lets an
# OverflowError out (parsedate takes any number: 'Mon, 01 Jan 2024 99999999999999999999:00:00 GMT'),
# so reading such a header raised: a 500 from the handler, no answer at all from prepare.
_DATES = (("If-Modified-Since", "if_modified_since"), ("If-Unmodified-Since", "if_unmodified_since"),
          ("If-Range", "if_range"))
_NO_VALIDATOR = "unreadable"  # an If-Range that is neither an entity tag nor a date: it matches nothing


# List fields: several lines of one are one comma-separated list (RFC 9110 5.3), of which aiohttp
# read the first line alone — `If-Match: "old"` + `If-Match: "<current>"` was a 412, and the same
# pair of If-None-Match the whole file instead of a 304.
_LISTS = ("If-Match", "If-None-Match")


def _readable(request: web.BaseRequest) -> web.BaseRequest:
    """``request`` with the conditional dates aiohttp cannot read as what an invalid date is: an
    If-Modified-Since or If-Unmodified-Since left out (RFC 9110 13.1.3, 13.1.4: ignored), an If-Range
    a validator that matches nothing (13.1.5: the whole file) — a date field given on two lines too
    (one field: "date, date" is no date; aiohttp read the first) — and an If-Match or If-None-Match
    given on several lines as the one list they make (:data:`_LISTS`). The request itself when all read."""
    given = request.headers
    many = {name for name in (*_LISTS, *(n for n, _ in _DATES)) if len(given.getall(name, ())) > 1}
    bad = []
    for name, attribute in _DATES:
        if name in many:
            bad.append(name)
            continue
        try:
            getattr(request, attribute)
        except (OverflowError, ValueError):
            bad.append(name)
    joined = {name: ", ".join(v for v in given.getall(name) if p.is_utf8(v)) for name in _LISTS if name in many}
    if not bad and not joined:
        return request
    request = _without(request, *bad, *joined)
    if "If-Range" in bad or joined:
        headers = request.headers.copy()
        if "If-Range" in bad:
            headers["If-Range"] = _NO_VALIDATOR
        headers.update({name: value for name, value in joined.items() if value})
        request = request.clone(headers=headers)
    return request


def _without(request: web.BaseRequest, *names: str) -> web.BaseRequest:
    """``request`` without its ``names`` headers, for ``web.FileResponse`` to read. A header value
    holding a byte that is not UTF-8 (aiohttp reads it as a surrogate escape) is left out of the
    copy: ``request.clone`` encodes every header as UTF-8, and such a value — in any header, a
    Latin-1 Cookie or User-Agent — raised UnicodeEncodeError as the answer was prepared, past every
    middleware, so the connection closed with no answer. Every header ``web.FileResponse`` reads
    (validators, dates, ranges, Accept-Encoding) is ASCII when it means anything; one that is not
    could match nothing, and left out it is ignored as such."""
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if p.is_utf8(v))
    for name in names:
        headers.popall(name, None)
    return request.clone(headers=headers)


def check_file_request(request: web.BaseRequest, stat: os.stat_result, noun: str = "file") -> bool:
    """Raise the problem for a request that ``web.FileResponse`` would answer with an empty body:
    :class:`PreconditionFailed` when ``If-Match`` names no current version of the file (its ETag is
    ``web.FileResponse``'s own, from the file's mtime and size) or, without ``If-Match``, the file
    changed after ``If-Unmodified-Since``; then :func:`check_range`. The same rules, in the same
    order, as its own. True: an ``If-Range`` entity tag no longer holds, so ``Range`` is to be
    ignored (and is not checked): so is a ``Range`` in another unit than bytes."""
    etag = f"{stat.st_mtime_ns:x}-{stat.st_size:x}"
    if_match = request.if_match
    if if_match is not None and not (len(if_match) == 1 and if_match[0].value == "*") \
            and not any(tag.value == etag and not tag.is_weak for tag in if_match):
        raise p.PreconditionFailed("The file is not the version If-Match names; download it again from the start.",
                                   headers={"ETag": f'"{etag}"'})
    since = request.if_unmodified_since
    if if_match is None and since is not None and stat.st_mtime > since.timestamp():
        raise p.PreconditionFailed("The file changed after If-Unmodified-Since; download it again from the start.",
                                   headers={"ETag": f'"{etag}"'})
    if "Range" in request.headers and not is_bytes_range(request.headers["Range"]):
        return True  # RFC 9110 14.2: a range unit the server does not understand is ignored (the whole file)
    if_range = request.headers.get("If-Range", "").strip()
    if "Range" in request.headers and if_range.startswith(('"', 'W/"')):  # an entity tag, not a date
        if if_range != f'"{etag}"':  # a strong match only
            return True
    elif "Range" in request.headers and if_range:
        when = request.if_range  # None: neither an entity tag nor a date, a validator that cannot match
        if when is None or when.timestamp() != math.ceil(stat.st_mtime):  # aiohttp sends the mtime rounded up
            return True  # RFC 9110 13.1.5: a date holds only when it is exactly the Last-Modified sent
    check_range(request, stat.st_size, stat.st_mtime, noun)
    return False


def check_range(request: web.BaseRequest, size: int, mtime: float, noun: str = "file") -> None:
    """Raise :class:`RangeNotSatisfiable` (with ``Content-Range: bytes */SIZE``) for a ``Range``
    that ``web.FileResponse`` would answer with an empty 416 labelled as the file: malformed, more
    than one range (in one Range header or in two: aiohttp read the first and served it, while a
    cache or proxy that reads the last stored those bytes as another range), or starting at or past
    the end. The same rules as its own: a range is only
    read when ``If-Range`` is absent or still holds; ``bytes=-N`` is the last N bytes."""
    if "Range" not in request.headers:
        return
    if len(request.headers.getall("Range")) > 1:  # one field: two lines are "bytes=0-1, bytes=5-6", no range-set
        raise _unsatisfiable(size, f"The {noun} has {size} bytes; send one Range header naming one range of them.")
    if SUFFIX_ZERO.fullmatch(request.headers["Range"]):  # the last 0 bytes: none (aiohttp sends all of them)
        raise _unsatisfiable(size, f"The {noun} has {size} bytes; bytes=-0 asks for none of them.")
    if_range = request.if_range
    if if_range is not None and mtime > if_range.timestamp():
        return  # the file changed since: the whole file, as a 200
    try:
        rng = request.http_range
    except ValueError:
        raise _unsatisfiable(size, f"The {noun} has {size} bytes; ask for one range of them "
                                   "(bytes=START-END).") from None
    start = rng.start
    if start is None:
        return
    if start < 0 and rng.stop is None:  # bytes=-N: the last N bytes, or the whole file when shorter
        start = max(0, start + size)
    if start >= size:
        raise _unsatisfiable(size, f"The {noun} has {size} bytes; the range starts past its end.")


def _unsatisfiable(size: int, detail: str) -> p.RangeNotSatisfiable:
    return p.RangeNotSatisfiable(detail, headers={"Content-Range": f"bytes */{size}"}, sizeBytes=size)
