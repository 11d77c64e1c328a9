"""A fault-injecting HTTP proxy in front of an S3 endpoint: a share of 503 SlowDown answers and
dropped connections, or the store down for good; or a store that bends the rules: one that answers
aborts (``DELETE ?uploadId=``) or GETs with a fixed status, or ignores ``If-Match`` on GET, or answers
another byte range than the one asked for; or one that lies about a multipart upload: answers its
completion with a fixed status and body (S3's "200 OK with an <Error> in the body"), after passing
it on or without, HEADs of an object with another size or ETag, or its parts' listing rewritten; or a GET of a whole
object answered short, with a Content-Length to match."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class FlakyProxy:
    upstream: str
    error_rate: float = 0.0
    drop_rate: float = 0.0
    down: bool = False
    abort_status: int | None = None      # answer every AbortMultipartUpload with this status
    get_status: int | None = None        # answer every GET of an object with this status
    strip_if_match: bool = False         # forward GETs without If-Match (a server that ignores it)
    shift_range: int = 0                 # forward a GET's "Range: bytes=a-b" as a+k to b+k (a cache that mixes ranges up)
    refuse_delete_of: str | None = None  # answer a DeleteObject of a key holding this with 403 (object lock)
    slow_delete_of: str | None = None    # answer a DeleteObject of a key holding this with 503 SlowDown, always
    refuse_delete_many: bool = False     # answer every DeleteObjects (POST ?delete) with 403
    complete_answer: tuple[int, bytes] | None = None  # answer CompleteMultipartUpload with (status, body)
    complete_forward: bool = False       # ... after passing it on (the store did complete the upload)
    head_size_delta: int = 0             # a HEAD of an object reports its length plus this
    head_etag: str | None = None         # a HEAD of an object reports this ETag
    list_parts_body: Callable[[bytes], bytes] | None = None  # rewrite a ListParts answer's XML
    get_short: int = 0                   # a whole-object GET answers this many bytes fewer (a cut copy)
    seed: int = 5
    port: int = 0                        # the port to listen on (0: any free one); a stopped proxy's, to come back
    requests: int = 0
    faults: int = 0
    rng: random.Random = field(init=False)
    runner: web.AppRunner | None = None
    url: str = ""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    async def start(self) -> FlakyProxy:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def stop(self) -> None:
        await self.session.close()
        if self.runner:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await request.read()
        roll = self.rng.random()
        if self.down or roll < self.error_rate or (request.method == "DELETE" and self.slow_delete_of
                                                    and "uploadId" not in request.query
                                                    and self.slow_delete_of in request.path):
            self.faults += 1
            return web.Response(status=503, body=SLOW_DOWN, content_type="application/xml")
        if request.method == "DELETE" and "uploadId" in request.query and self.abort_status:
            self.faults += 1
            return _error(self.abort_status)
        if (request.method == "DELETE" and "uploadId" not in request.query and self.refuse_delete_of
                and self.refuse_delete_of in request.path):
            self.faults += 1
            return _error(403)
        if request.method == "POST" and "delete" in request.query and self.refuse_delete_many:
            self.faults += 1
            return _error(403)
        if request.method == "GET" and self.get_status and request.path.count("/") >= 2:
            self.faults += 1
            return _error(self.get_status)
        if roll < self.error_rate + self.drop_rate:
            self.faults += 1
            assert request.transport is not None
            request.transport.close()  # a reset connection, mid-request
            return web.Response(status=500)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        completing = request.method == "POST" and "uploadId" in request.query
        if completing and self.complete_answer is not None:
            self.faults += 1
            if self.complete_forward:
                async with self.session.request("POST", self.upstream + request.raw_path, data=body,
                                                headers=headers) as up:
                    await up.read()
            status, answer = self.complete_answer
            return web.Response(status=status, body=answer, content_type="application/xml")
        if self.strip_if_match and request.method == "GET":
            headers = {k: v for k, v in headers.items() if k.lower() != "if-match"}
        if self.shift_range and request.method == "GET" and "Range" in headers:
            first, last = headers["Range"].removeprefix("bytes=").split("-")
            headers["Range"] = f"bytes={int(first) + self.shift_range}-{int(last) + self.shift_range}"
        target = self.upstream + request.raw_path
        async with self.session.request(request.method, target, data=body, headers=headers) as up:
            data = await up.read()
            out = {k: v for k, v in up.headers.items() if k.lower() not in HOP_HEADERS}
            if request.method == "HEAD":  # keep the object's length; a HEAD answer has no body
                out["Content-Length"] = up.headers.get("Content-Length", "0")
                if up.status == 200 and (self.head_size_delta or self.head_etag):
                    self.faults += 1
                    out["Content-Length"] = str(int(out["Content-Length"]) + self.head_size_delta)
                    if self.head_etag:
                        out = {k: v for k, v in out.items() if k.lower() != "etag"} | {"ETag": f'"{self.head_etag}"'}
                resp = web.StreamResponse(status=up.status, headers=out)
                await resp.prepare(request)
                return resp
            if request.method == "GET" and self.get_short and up.status == 200 and not request.query:
                self.faults += 1
                data = data[:-self.get_short]
            if (request.method == "GET" and "uploadId" in request.query and up.status == 200
                    and self.list_parts_body is not None):
                self.faults += 1
                data = self.list_parts_body(data)
            return web.Response(status=up.status, body=data, headers=out)


_CODES = {403: "AccessDenied", 405: "MethodNotAllowed", 501: "NotImplemented", 503: "ServiceUnavailable"}


def _error(status: int) -> web.Response:
    code = _CODES.get(status, "InternalError")
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{code} from the test proxy</Message></Error>").encode()
    return web.Response(status=status, body=body, content_type="application/xml")
