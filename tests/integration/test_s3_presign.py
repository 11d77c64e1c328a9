"""S3-only behaviour: presigned download links, a store that does not answer, bucket creation.

moto serves presigned URLs but checks neither their signature nor their expiry (moto 5.2.5 only
authenticates requests with an Authorization header, and only when IAM auth is switched on). So
links are checked by ``signing_front``: a small HTTP front that verifies AWS Signature V4 query
authentication as S3 does (written from the AWS spec, not with botocore's signer that made the
link) and then fetches the object from moto. It doubles as the ``public_endpoint_url``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from shared.objectstore.factory import open_store
from shared.objectstore.port import StoreRefused, StoreUnavailable
from shared.objectstore.s3 import S3Store
from shared.runtime.settings import Buckets, S3Settings, Settings

pytest_plugins = ["tests.fixtures.moto"]
pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """Run ``handler`` for every request on 127.0.0.1:<free port>; yields the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _uri_encode(s: str) -> str:
    return quote(s, safe="-_.~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_query_problem(request: web.Request, access_key: str, secret_key: str) -> str | None:
    """Why S3 would refuse this presigned GET (SigV4 query authentication), or None."""
    params = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)
    q = dict(params)
    if q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or "X-Amz-Signature" not in q:
        return "not a SigV4 presigned request"
    key_id, scope = q["X-Amz-Credential"].split("/", 1)
    if key_id != access_key:
        return "InvalidAccessKeyId"
    signed_at = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if datetime.now(UTC) > signed_at + timedelta(seconds=int(q["X-Amz-Expires"])):
        return "Request has expired"
    canonical_query = "&".join(
        f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(params) if k != "X-Amz-Signature"
    )
    signed_headers = q["X-Amz-SignedHeaders"].split(";")
    canonical_headers = "".join(f"{h}:{request.headers[h].strip()}\n" for h in signed_headers)
    canonical_request = "\n".join(
        [
            request.method,
            quote(request.rel_url.path, safe="/~"),
            canonical_query,
            canonical_headers,
            ";".join(signed_headers),
            "UNSIGNED-PAYLOAD",
        ]
    )
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", q["X-Amz-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in scope.split("/"):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, q["X-Amz-Signature"]) else "SignatureDoesNotMatch"


@pytest_asyncio.fixture
async def signing_front(moto_s3: S3Settings) -> AsyncIterator[str]:
    """An HTTP front that verifies presigned-URL signatures and expiry, then fetches from moto."""
    assert moto_s3.access_key_id and moto_s3.secret_access_key and moto_s3.endpoint_url
    access_key, secret_key = moto_s3.access_key_id, moto_s3.secret_access_key.get_secret_value()
    async with aiohttp.ClientSession() as http:

        async def handler(request: web.Request) -> web.StreamResponse:
            problem = sigv4_query_problem(request, access_key, secret_key)
            if problem is not None:
                return web.Response(
                    status=403, text=f"<Error><Code>AccessDenied</Code><Message>{problem}</Message></Error>"
                )
            async with http.get(f"{moto_s3.endpoint_url}{request.rel_url}") as upstream:
                body = await upstream.read()
                keep = ("Content-Type", "Content-Disposition", "ETag")
                headers = {h: upstream.headers[h] for h in keep if h in upstream.headers}
                return web.Response(status=upstream.status, body=body, headers=headers)

        async with serve(handler) as url:
            yield url


@pytest_asyncio.fixture
async def public_store(s3_settings: Settings, signing_front: str) -> AsyncIterator[S3Store]:
    """An S3Store on moto whose download links point at ``signing_front``."""
    settings = s3_settings.s3.model_copy(update={"public_endpoint_url": signing_front})
    async with S3Store(settings) as store:
        yield store


async def fetch(url: str) -> tuple[int, bytes, str | None]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.read(), r.headers.get("Content-Disposition")


def with_param(url: str, name: str, change: Callable[[str], str]) -> str:
    parts = urlsplit(url)
    query = [(k, change(v) if k == name else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


# -- presigned links -------------------------------------------------------------------------
async def test_presigned_url_downloads_the_object_with_a_plain_get(s3_settings: Settings) -> None:
    bucket = s3_settings.buckets.exports
    async with S3Store(s3_settings.s3) as store:
        await store.put(bucket, "jobs/1/export.zip", b"PK\x03\x04 zip bytes")
        url = await store.signed_url(bucket, "jobs/1/export.zip", 600, filename="Grove export é.zip")
    assert url.startswith(f"{s3_settings.s3.endpoint_url}/{bucket}/jobs/1/export.zip?")
    status, body, disposition = await fetch(url)
    assert (status, body) == (200, b"PK\x03\x04 zip bytes")
    assert (
        disposition
        == "attachment; filename=\"Grove export _.zip\"; filename*=UTF-8''Grove%20export%20%C3%A9.zip"
    )


async def test_presigned_url_is_signed_for_the_public_endpoint(
    public_store: S3Store, s3_settings: Settings, signing_front: str
) -> None:
    bucket = s3_settings.buckets.exports
    await public_store.put(bucket, "a b/ü.zip", b"bytes")
    url = await public_store.signed_url(bucket, "a b/ü.zip", 600, filename="ü.zip")
    assert url.startswith(f"{signing_front}/{bucket}/")
    assert await fetch(url) == (200, b"bytes", "attachment; filename=\"_.zip\"; filename*=UTF-8''%C3%BC.zip")


async def test_presigned_url_with_an_altered_signature_is_refused(
    public_store: S3Store, s3_settings: Settings
) -> None:
    bucket = s3_settings.buckets.exports
    await public_store.put(bucket, "k", b"secret")
    url = await public_store.signed_url(bucket, "k", 600)
    flip = lambda sig: ("1" if sig[0] == "0" else "0") + sig[1:]  # noqa: E731
    status, body, _ = await fetch(with_param(url, "X-Amz-Signature", flip))
    assert status == 403 and b"secret" not in body


async def test_presigned_url_with_an_altered_filename_is_refused(
    public_store: S3Store, s3_settings: Settings
) -> None:
    bucket = s3_settings.buckets.exports
    await public_store.put(bucket, "k", b"secret")
    url = await public_store.signed_url(bucket, "k", 600, filename="a.zip")
    altered = with_param(url, "response-content-disposition", lambda v: v.replace("a.zip", "b.exe"))
    assert altered != url
    assert (await fetch(altered))[0] == 403


async def test_presigned_url_is_refused_once_expired(public_store: S3Store, s3_settings: Settings) -> None:
    bucket = s3_settings.buckets.exports
    await public_store.put(bucket, "k", b"secret")
    url = await public_store.signed_url(bucket, "k", 2)
    # X-Amz-Date has whole seconds, so a 2 s link is still good for at least 1 s after signing.
    assert (await fetch(url))[0] == 200
    statuses = []
    for _ in range(30):  # poll for up to ~6 s
        statuses.append((await fetch(url))[0])
        if statuses[-1] == 403:
            break
        await asyncio.sleep(0.2)
    assert statuses[-1] == 403 and set(statuses) <= {200, 403}


# -- a store that does not answer ------------------------------------------------------------
def _unreachable(endpoint: str) -> S3Settings:
    return S3Settings(endpoint_url=endpoint, access_key_id="k", secret_access_key="s", max_attempts=2)


async def test_a_closed_port_gives_store_unavailable_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # bound, never listening: connections are refused
        started = time.monotonic()
        async with S3Store(_unreachable(f"http://127.0.0.1:{closed_port}"), connect_timeout=1) as store:
            with pytest.raises(StoreUnavailable):
                await store.put("bucket", "k", b"x")
            with pytest.raises(StoreUnavailable):
                await store.read("bucket", "k")
    assert time.monotonic() - started < 10


async def test_slow_down_after_the_retries_gives_store_unavailable() -> None:
    calls = 0

    async def slow_down(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        xml = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        return web.Response(status=503, text=xml, content_type="application/xml")

    async with serve(slow_down) as url:
        async with S3Store(_unreachable(url)) as store:
            with pytest.raises(StoreUnavailable, match="SlowDown"):
                await store.put("bucket", "k", b"x")
            assert calls == 2  # max_attempts
            with pytest.raises(StoreUnavailable):  # a HEAD error has no body: only the 503
                await store.head("bucket", "k")


async def test_a_transient_5xx_is_retried_and_the_call_succeeds() -> None:
    calls = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=500, text="<Error><Code>InternalError</Code></Error>")
        await request.read()
        return web.Response(status=200, headers={"ETag": '"0cc175b9c0f1b6a831c399e269772661"'})

    async with serve(flaky) as url:
        async with S3Store(_unreachable(url)) as store:
            assert await store.put("bucket", "k", b"a") == "0cc175b9c0f1b6a831c399e269772661"
    assert calls == 2


# -- factory ---------------------------------------------------------------------------------
async def test_open_store_creates_the_s3_buckets_only_when_asked(moto_s3: S3Settings) -> None:
    tag = uuid.uuid4().hex[:12]
    settings = Settings(
        store="s3", s3=moto_s3, buckets=Buckets(exports=f"e-{tag}", images=f"i-{tag}", amber=f"a-{tag}")
    )
    store = await open_store(settings)
    try:
        with pytest.raises(StoreRefused, match="bucket does not exist"):  # NoSuchBucket: permanent
            await store.put(settings.buckets.exports, "k", b"x")
    finally:
        await store.close()
    store = await open_store(settings, create_buckets=True)
    try:
        for bucket in (settings.buckets.exports, settings.buckets.images, settings.buckets.amber):
            assert await store.put(bucket, "k", b"x") == "9dd4e461268c8034f5c8564e155c67a6"
    finally:
        await store.close()


async def test_setup_applies_the_abort_incomplete_multipart_upload_rule(s3_settings) -> None:  # noqa: ANN001
    from shared.objectstore.s3 import S3Store, apply_lifecycle

    async with S3Store(s3_settings.s3) as store:
        rules = await apply_lifecycle(store, s3_settings.buckets.exports, days=2)
    rule = rules["Rules"][0]
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 2
    assert rule["Status"] == "Enabled"
    import json
    from pathlib import Path

    from shared.objectstore.s3 import lifecycle_rules

    documented = json.loads((Path(__file__).resolve().parents[2] / "deploy" / "s3-lifecycle.json").read_text())
    assert documented == lifecycle_rules(2)
