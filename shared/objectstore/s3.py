"""The S3 object store (AWS S3, Cloudflare R2, MinIO; moto in tests), through aiobotocore.

One long-lived client per store (its connection pool is the point); a second, offline-only client
signs download links for ``public_endpoint_url`` when the users reach the store by another address.
botocore's errors are translated at the edge into the port's hierarchy::

    404 / NoSuchKey                         -> ObjectNotFound
    412 / PreconditionFailed                -> PreconditionFailed
    NoSuchUpload                            -> NoSuchUpload
    EntityTooSmall                          -> PartsTooSmall (a StoreRefused)
    403, NoSuchBucket, 405, 501             -> StoreRefused (permanent: fail fast, say what)
    connection errors, timeouts, other 5xx,
    SlowDown (after botocore's retries)     -> StoreUnavailable
    any other ClientError                   -> StoreError("<Code>: <message>")

ETags leave this module without quotes, as the filesystem store writes them. A GET with ``if_match``
checks the answer too (its ETag, and its length for a range): a store that ignores ``If-Match``
must not slip changed bytes into an archive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self
from urllib.parse import quote, urlsplit

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.utils import parse_timestamp

from shared.core.keys import KEY_BYTES  # S3's longest key, in bytes of UTF-8
from shared.objectstore.port import (
    CompletedPart,
    MultipartUpload,
    NoSuchUpload,
    ObjectInfo,
    ObjectNotFound,
    PartsTooSmall,
    PreconditionFailed,
    StoreError,
    StoreRefused,
    StoreUnavailable,
    UploadedPart,
)
from shared.runtime.settings import S3Settings, is_loopback

_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_PRECONDITION = {"412", "PreconditionFailed"}
_TRANSIENT = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
DELETE_BATCH = 1000  # S3's limit of keys per DeleteObjects request
# A DeleteObjects refused as a whole by a store that does not take it as sent (an older MinIO or
# Ceph that wants Content-MD5, which botocore no longer sends; keys XML cannot carry): key by key.
_NO_BATCH_DELETE = {"MissingContentMD5", "InvalidRequest", "NotImplemented", "MalformedXML", "InvalidDigest"}
# Permanent refusals, in words a person can act on (no host, bucket or key in them).
_REFUSED_CODES = {
    "AccessDenied": "the storage service denied access (check the service's credentials and policy)",
    "InvalidAccessKeyId": "the storage service does not know the access key",
    "SignatureDoesNotMatch": "the storage service rejected the secret key",
    "AllAccessDisabled": "the storage service denied access (check the service's credentials and policy)",
    "NoSuchBucket": "the storage bucket does not exist",
    "MethodNotAllowed": "the storage service does not allow this operation",
    "NotImplemented": "the storage service does not implement this operation",
}
# HeadBucket's 403 (bodiless, as every HEAD's): AWS, MinIO and moto answer it for wrong keys as for a
# policy without s3:ListBucket on the bucket (what HeadBucket needs), or a bucket another account owns.
_HEAD_BUCKET_DENIED = ("the storage service denied HeadBucket: the service's keys are wrong, or its policy lacks "
                       "s3:ListBucket on the bucket, or the bucket is another account's")
_REFUSED_STATUS = {403: "AccessDenied", 405: "MethodNotAllowed", 501: "NotImplemented"}
_TRANSPORT_ERRORS = (
    BotoConnectionError,
    HTTPClientError,
    IncompleteReadError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
)


def _bare(etag: str) -> str:
    return etag.strip().strip('"')


def _quoted(etag: str) -> str:
    return f'"{_bare(etag)}"'


def _check_answer(resp: dict[str, Any], if_match: str, start: int, end: int | None, what: str) -> None:
    """The object answered is the one asked for: its ETag is the expected one and a range is whole
    (otherwise the object changed and a server ignored If-Match), and the bytes are the range asked
    (``Content-Range``: a cache or gateway that mixes ranges up answers other bytes of the same length)."""
    etag = resp.get("ETag")
    if etag is None or _bare(etag) != _bare(if_match):
        raise PreconditionFailed(f"{what} changed (the store answered another version)")
    length = resp.get("ContentLength")
    if end is not None and length is not None and int(length) != end - start:
        raise PreconditionFailed(f"{what} changed (its length differs)")
    if start > 0 or end is not None:  # a range was asked: these bytes, not others of the same length
        answered = str(resp.get("ContentRange") or "").removeprefix("bytes ").split("/")[0]
        first = answered.split("-")[0]
        if answered and (first != str(start) or (end is not None and answered != f"{start}-{end - 1}")):
            raise PreconditionFailed(f"{what}: the store answered bytes {answered}, not the range asked")
        if not answered and start > 0:  # a 200: the whole object, from byte 0
            raise PreconditionFailed(f"{what}: the store answered the whole object, not the range asked")


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn botocore/aiohttp errors raised inside the block into the port's errors."""
    try:
        yield
    except ClientError as e:
        err = e.response.get("Error", {})
        code = _code(e)
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = err.get("Message") or code
        if code == "NoSuchUpload":  # also a 404, so before the generic 404 below
            raise NoSuchUpload(what) from None
        if code == "EntityTooSmall":  # a 400: the same parts are refused for good
            raise PartsTooSmall(f"({code}: {message}; {what})") from e
        refused = code if code in _REFUSED_CODES else _REFUSED_STATUS.get(status)
        if refused:
            raise StoreRefused(_REFUSED_CODES[refused], f"({code or status}: {message}; {what})") from e
        if code in _NOT_FOUND or status == 404:
            raise ObjectNotFound(what) from None
        if code in _PRECONDITION or status == 412:
            raise PreconditionFailed(f"{what} changed") from None
        if code in _TRANSIENT or status >= 500:
            raise StoreUnavailable(f"{code or status}: {message} ({what})") from e
        raise StoreError(f"{code or status}: {message} ({what})") from e
    except _TRANSPORT_ERRORS as e:
        raise StoreUnavailable(f"{type(e).__name__}: {e} ({what})") from e
    except BotoCoreError as e:  # parameter validation, missing credentials, ...
        raise StoreError(f"{type(e).__name__}: {e} ({what})") from e


def _body(data: bytes | memoryview) -> bytes | bytearray:
    """botocore takes bytes, bytearray or a file, not a memoryview: a view of a whole bytearray (a
    full part buffer) is passed as that bytearray, without a copy; anything else is copied once."""
    if isinstance(data, memoryview):
        owner = data.obj
        if isinstance(owner, bytearray) and data.nbytes == len(owner) and data.contiguous:
            return owner
        return data.tobytes()
    return data


SEND_SLICE = 1 << 20


class _PartPayload(aiohttp.payload.BytesPayload):
    """A part buffer (a bytearray: see :func:`_body`) sent as memoryview slices of itself.

    aiohttp's own payload copies every part twice on the event loop before the socket sees a byte:
    ``value[:length]`` (slicing a bytearray copies it) and, on Python before 3.12.9, the join of
    the request's headers with the body. Measured to moto here, 40 parts of 8 MiB: the client's
    CPU per part 7.4 ms with aiohttp's payload, 4.8 ms with this one. Slices of ``SEND_SLICE``
    with aiohttp's drain between them: the transport buffers at most one slice (a copy), never the
    whole part. The bytes sent are the same."""

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        view = memoryview(self._value)
        if content_length is not None:
            view = view[:content_length]
        for at in range(0, len(view), SEND_SLICE):
            await writer.write(view[at:at + SEND_SLICE])

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)


# Only bytearrays take this path: this store sends part buffers as bytearrays and everything else as bytes.
aiohttp.payload.PAYLOAD_REGISTRY.register(_PartPayload, bytearray, order=aiohttp.payload.Order.try_first)


def _sign_payloads(endpoint_url: str | None) -> bool:
    """Whether botocore SHA-256-hashes every request body into the signature: a whole pass over
    each archive part on the event loop. Not over HTTPS (AWS's own endpoint when None), where TLS
    keeps the body intact; not on loopback, where no network lies between us and the store. Over
    plain HTTP to another host it does: there the signature is the body's only protection. (Left
    to itself botocore signs every body here, HTTPS or not: it skips only when a checksum header
    is present, and ``request_checksum_calculation="when_required"`` adds none to UploadPart.)"""
    if endpoint_url is None:
        return False
    url = urlsplit(endpoint_url)
    if url.scheme == "https":
        return False
    return not is_loopback(url.hostname or "")


# Sent as the User-Agent of every request: the store's access logs name the caller. Also what
# botocore does per request otherwise: it rebuilds its own User-Agent string from about twenty
# sanitised parts each time, measured here as a tenth of a GET's client CPU.
USER_AGENT = "grove-export"


def _timestamp(value: str) -> datetime:
    """A timestamp in a response (``Last-Modified`` and the like; ISO 8601 in XML bodies), as
    botocore's own parser reads it, without dateutil's general-purpose parser on every GET (a tenth
    of its client CPU, measured). Anything but an HTTP date or an ISO 8601 time with its zone goes
    to botocore's parser, so the result is always the moment botocore's parser gives."""
    if isinstance(value, str):
        try:
            moment = parsedate_to_datetime(value) if value.endswith("GMT") else datetime.fromisoformat(value)
        except (TypeError, ValueError, IndexError):
            moment = None
        if moment is not None and moment.utcoffset() is not None:
            return moment
    return parse_timestamp(value)  # type: ignore[no-any-return]


def _content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / 5987)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class S3Store:
    """:class:`~shared.objectstore.port.ObjectStore` on an S3-compatible service.

    Use ``store = await S3Store.open(settings)`` (or ``async with S3Store(settings) as store``);
    ``await store.close()`` releases the connection pool.
    """

    def __init__(
        self,
        settings: S3Settings,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        session: AioSession | None = None,
    ) -> None:
        self.settings = settings
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._session = session
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._signer: Any = None

    @classmethod
    async def open(cls, settings: S3Settings, **kwargs: Any) -> S3Store:
        store = cls(settings, **kwargs)
        await store.start()
        return store

    async def start(self) -> Self:
        if self._stack is not None:
            return self
        s = self.settings
        config = AioConfig(
            signature_version="s3v4",
            region_name=s.region,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            max_pool_connections=s.max_pool_connections,
            # total_max_attempts counts the first try (as AWS_MAX_ATTEMPTS does); the dict key
            # "max_attempts" would count retries only, one request more than the setting says.
            retries={"mode": "standard", "total_max_attempts": s.max_attempts},
            s3={"addressing_style": s.addressing_style, "payload_signing_enabled": _sign_payloads(s.endpoint_url)},
            # R2, MinIO and moto reject or mis-handle the CRC trailers botocore adds by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent=USER_AGENT,
        )
        session = self._session or AioSession()
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
        creds: dict[str, Any] = {}
        if s.access_key_id is not None:
            creds["aws_access_key_id"] = s.access_key_id
        if s.secret_access_key is not None:
            creds["aws_secret_access_key"] = s.secret_access_key.get_secret_value()
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                session.create_client(
                    "s3", region_name=s.region, endpoint_url=s.endpoint_url, config=config, **creds
                )
            )
            self._signer = self._client
            if s.public_endpoint_url and s.public_endpoint_url != s.endpoint_url:
                # Presigning is offline: this client never sends a request, it only signs for the
                # address the users can reach.
                self._signer = await stack.enter_async_context(
                    session.create_client(
                        "s3", region_name=s.region, endpoint_url=s.public_endpoint_url, config=config, **creds
                    )
                )
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        self._client = self._signer = None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StoreError("S3Store is not started (use S3Store.open or await store.start())")
        return self._client

    # -- objects -----------------------------------------------------------------------------
    async def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> str:
        extra = {"ContentType": content_type} if content_type else {}
        with _translated(f"{bucket}/{key}"):
            resp = await self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra)
        return _bare(resp["ETag"])

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        with _translated(f"{bucket}/{key}"):
            resp = await self.client.head_object(Bucket=bucket, Key=key)
        return ObjectInfo(
            key, resp["ContentLength"], _bare(resp["ETag"]), resp.get("LastModified"), resp.get("ContentType")
        )

    async def check_bucket(self, bucket: str) -> None:
        with _translated(bucket):
            try:
                await self.client.head_bucket(Bucket=bucket)
            except ClientError as e:
                # A HEAD's 404 has no body to say NoSuchBucket: its code is "404", which
                # :func:`_translated` reads as a missing key. Here it is the bucket that is missing.
                if _code(e) in _NOT_FOUND:
                    raise StoreRefused(_REFUSED_CODES["NoSuchBucket"], f"({_code(e)}; {bucket})") from None
                if _code(e) == "403":  # no body to say why either: the few reasons a HeadBucket has, in words
                    raise StoreRefused(_HEAD_BUCKET_DENIED, f"(403; {bucket})") from None
                raise

    async def get(
        self,
        bucket: str,
        key: str,
        *,
        start: int = 0,
        end: int | None = None,
        if_match: str | None = None,
        chunk_size: int = 1 << 20,
    ) -> AsyncIterator[bytes]:
        what = f"{bucket}/{key}"
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if if_match is not None:
            params["IfMatch"] = _quoted(if_match)
        if end is not None and end <= start:
            # An empty range: S3 would ignore "bytes=5-4" and send the whole object.
            with _translated(what):
                await self.client.head_object(**params)
            return
        if start > 0 or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        with _translated(what):
            try:
                resp = await self.client.get_object(**params)
            except ClientError as e:
                # Past the end: preconditions are evaluated before the range, so If-Match held.
                if _code(e) == "InvalidRange":
                    return
                raise
            if if_match is not None:
                _check_answer(resp, if_match, start, end, what)
            async with resp["Body"] as body:
                async for chunk in body.iter_chunks(chunk_size):
                    yield chunk

    async def read(self, bucket: str, key: str, *, if_match: str | None = None) -> bytes:
        return b"".join([c async for c in self.get(bucket, key, if_match=if_match)])

    def unfit_keys(self, keys: Sequence[str]) -> str | None:
        """A key S3 refuses (KeyTooLongError): empty, or over 1,024 bytes of UTF-8."""
        for key in keys:
            if not key or len(key.encode("utf-8", "surrogatepass")) > KEY_BYTES:
                return f"the key {key[:64]!r}… is longer than S3's {KEY_BYTES:,} bytes" if key else "an empty key"
        return None

    async def delete(self, bucket: str, key: str) -> None:
        try:
            with _translated(f"{bucket}/{key}"):
                await self.client.delete_object(Bucket=bucket, Key=key)
        except ObjectNotFound:
            pass

    async def delete_many(self, bucket: str, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), DELETE_BATCH):
            batch = keys[i:i + DELETE_BATCH]
            with _translated(f"{bucket}: {len(batch)} keys"):
                try:
                    resp = await self.client.delete_objects(
                        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
                except ClientError as e:
                    if _code(e) not in _NO_BATCH_DELETE:
                        raise
                    for key in batch:
                        await self.delete(bucket, key)
                    continue
            # Quiet: only failures are listed (S3 counts a missing key as deleted)
            errors = [e for e in resp.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                code, key = str(errors[0].get("Code", "")), errors[0].get("Key")
                detail = f"({code}: {errors[0].get('Message') or code}; {bucket}/{key}, {len(errors)} of {len(batch)} keys)"
                if code in _REFUSED_CODES:
                    raise StoreRefused(_REFUSED_CODES[code], detail)
                if code in _TRANSIENT:
                    raise StoreUnavailable(f"the storage service did not delete every key yet {detail}")
                raise StoreError(f"the storage service did not delete every key {detail}")

    async def list_keys(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        out = []
        with _translated(f"{bucket}/{prefix}*"):
            async for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                for o in page.get("Contents", []):
                    out.append(ObjectInfo(o["Key"], o["Size"], _bare(o["ETag"]), o.get("LastModified")))
        return out

    # -- multipart ---------------------------------------------------------------------------
    async def create_multipart(self, bucket: str, key: str, content_type: str | None = None,
                               part_size: int | None = None) -> str:
        if part_size is not None and part_size < self.settings.smallest_part:
            # S3 would take every part and refuse the completion (EntityTooSmall) after the last: refused
            # before a byte is sent (settings made without validation skip GROVE_MIN_PART_SIZE's check)
            raise PartsTooSmall(f"({part_size} < {self.settings.smallest_part}; {bucket}/{key})")
        extra = {"ContentType": content_type} if content_type else {}
        with _translated(f"{bucket}/{key}"):
            resp = await self.client.create_multipart_upload(Bucket=bucket, Key=key, **extra)
        return str(resp["UploadId"])

    async def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int, data: bytes | memoryview,
                          md5: str | None = None) -> str:
        with _translated(f"{bucket}/{key} upload {upload_id}"):
            resp = await self.client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=part_number, Body=_body(data)
            )
        return _bare(resp["ETag"])

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[UploadedPart]:
        out = []
        pages = self.client.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=upload_id)
        with _translated(f"{bucket}/{key} upload {upload_id}"):
            async for page in pages:
                for p in page.get("Parts", []):
                    out.append(UploadedPart(p["PartNumber"], _bare(p["ETag"]), p["Size"]))
        return out

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: list[CompletedPart]
    ) -> str:
        body = {"Parts": [{"PartNumber": p.part_number, "ETag": _quoted(p.etag)} for p in parts]}
        with _translated(f"{bucket}/{key} upload {upload_id}"):
            resp = await self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=body
            )
        # S3 may answer "200 OK" with an <Error> in the body: botocore reads that as a 500 (retried,
        # then StoreUnavailable). A 200 that names no object at all (an empty body: a proxy cut it) is
        # no completion either, and no refusal: the store may or may not have completed, so it is an
        # outage; the caller's retry finds the upload gone and the object there, or completes it.
        if not resp.get("ETag"):
            raise StoreUnavailable(f"the answer to the completion names no object ({bucket}/{key} upload {upload_id})")
        return _bare(resp["ETag"])

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        # An upload id names an upload of one key; AWS refuses another key's, but moto (and so
        # maybe other implementations) aborts by id alone: abort only an upload listed under this key.
        if not any(u.key == key and u.upload_id == upload_id for u in await self.list_uploads(bucket, key)):
            return
        try:
            with _translated(f"{bucket}/{key} upload {upload_id}"):
                await self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except NoSuchUpload:
            pass

    async def list_uploads(self, bucket: str, prefix: str) -> list[MultipartUpload]:
        out = []
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
        with _translated(f"{bucket}/{prefix}* uploads"):
            async for page in pages:
                for u in page.get("Uploads", []):
                    out.append(MultipartUpload(u["Key"], u["UploadId"], u.get("Initiated")))
        return out

    async def _versions(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        """(key, version id) of every version and delete marker under ``prefix`` that is not an
        object's current version. An unversioned bucket has none (its objects' version id is null)."""
        out = []
        pages = self.client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        with _translated(f"{bucket}/{prefix}* versions"):
            async for page in pages:
                for v in page.get("Versions", []):
                    if not v.get("IsLatest") and v.get("VersionId") not in (None, "null"):
                        out.append((v["Key"], v["VersionId"]))
                for m in page.get("DeleteMarkers", []):
                    out.append((m["Key"], m["VersionId"]))
        return out

    async def remove_cut_puts(self, bucket: str, keys: Sequence[str]) -> int:
        return 0  # a PUT cut short stores nothing (a multipart upload left open: abort_multipart)

    async def leftovers(self, bucket: str, prefix: str) -> list[str]:
        """Older versions and delete markers under ``prefix`` (a versioned bucket keeps every version:
        a delete only adds a marker, and the tenant's archive stayed readable by its version id)."""
        return [f"{key} (version {version})" for key, version in await self._versions(bucket, prefix)]

    async def remove_leftovers(self, bucket: str, prefix: str) -> None:
        versions = await self._versions(bucket, prefix)
        for i in range(0, len(versions), DELETE_BATCH):
            batch = versions[i:i + DELETE_BATCH]
            with _translated(f"{bucket}: {len(batch)} versions"):
                resp = await self.client.delete_objects(Bucket=bucket, Delete={
                    "Objects": [{"Key": k, "VersionId": v} for k, v in batch], "Quiet": True})
            errors = resp.get("Errors", [])
            if errors:
                code, key = str(errors[0].get("Code", "")), errors[0].get("Key")
                raise StoreError(f"the storage service did not delete every version ({code}; {bucket}/{key}, "
                                 f"{len(errors)} of {len(batch)})")

    # -- links and setup ---------------------------------------------------------------------
    async def signed_url(self, bucket: str, key: str, expires_in: int, filename: str | None = None) -> str:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = _content_disposition(filename)
        if self._signer is None:
            raise StoreError("S3Store is not started (use S3Store.open or await store.start())")
        with _translated(f"{bucket}/{key}"):
            url: str = await self._signer.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=int(expires_in)
            )
        return url

    async def ensure_buckets(self, names: Iterable[str]) -> None:
        """Create the buckets that do not exist yet (local stacks and tests; production buckets
        are provisioned with their lifecycle rules)."""
        for name in names:
            with _translated(name):
                try:
                    await self.client.head_bucket(Bucket=name)
                    continue
                except ClientError as e:
                    if _code(e) not in _NOT_FOUND:
                        raise
                extra: dict[str, Any] = {}
                if self.settings.region != "us-east-1":
                    extra["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
                try:
                    await self.client.create_bucket(Bucket=name, **extra)
                except ClientError as e:
                    if _code(e) != "BucketAlreadyOwnedByYou":  # else: lost a race to another creator
                        raise


LIFECYCLE_RULE_ID = "abort-incomplete-multipart-uploads-after-2-days"


def lifecycle_rules(days: int = 2, prefix: str = "exports/") -> dict[str, Any]:
    """The backstop to the janitor: S3 itself aborts multipart uploads older than ``days``
    (the same rule as deploy/s3-lifecycle.json)."""
    return {"Rules": [{"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": prefix},
                       "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days}}]}


def kept_abort_rule(config: dict[str, Any], days: int) -> dict[str, Any] | None:
    """The rule of :func:`lifecycle_rules` in a lifecycle configuration read back from the store,
    enabled and with its abort after ``days`` — or None: the store did not keep it as sent (MinIO
    accepts the rule and drops its AbortIncompleteMultipartUpload)."""
    for rule in config.get("Rules", []):
        abort = rule.get("AbortIncompleteMultipartUpload") or {}
        if rule.get("ID") == LIFECYCLE_RULE_ID and rule.get("Status") == "Enabled" and \
                abort.get("DaysAfterInitiation") == days:
            return dict(rule)
    return None


async def apply_lifecycle(store: S3Store, bucket: str, days: int = 2) -> dict[str, Any]:
    """Put the rule on ``bucket`` (replacing its lifecycle configuration) and read it back."""
    with _translated(bucket):
        await store.client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=lifecycle_rules(days))
        got = await store.client.get_bucket_lifecycle_configuration(Bucket=bucket)
    return {"Rules": got.get("Rules", [])}
