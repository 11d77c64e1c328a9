"""The object-store port: what the services need from S3 (or the filesystem default).

Errors::

    StoreError
    ├── ObjectNotFound       the key (or bucket) does not exist
    ├── PreconditionFailed   If-Match did not match: the object changed since it was seen
    ├── NoSuchUpload         the multipart upload id is unknown (completed or aborted)
    ├── InvalidKey           no object can have this key in this store (the filesystem store: an
    │                        empty, ``.`` or ``..`` segment, a leading or trailing ``/``, a backslash,
    │                        a NUL, a segment over 255 bytes, over 1,024 bytes in all)
    ├── StoreRefused         permanent: retrying will not help (403, a missing bucket, 405, 501);
    │   │                    ``reason`` says what in words, without hosts or keys
    │   └── PartsTooSmall    a part but the last is under the store's minimum (S3's EntityTooSmall)
    └── StoreUnavailable     transient: the store did not answer (after the adapter's retries)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


class StoreError(Exception):
    """Base of every object-store error."""


class StoreNotThere(StoreError):
    """The filesystem store is not where the settings point (``GROVE_STORE_ROOT``, relative to the
    folder a command runs in): said before anything is changed, never taken as an empty store."""


class ObjectNotFound(StoreError):
    pass


class PreconditionFailed(StoreError):
    pass


class NoSuchUpload(StoreError):
    pass


class InvalidKey(StoreError):
    """The key cannot name an object in this store, now or ever: a problem of the key (of the row
    that holds it), not of the store."""


class StoreUnavailable(StoreError):
    pass


class StoreRefused(StoreError):
    """The store refuses this call and will again: permissions, a missing bucket, an operation it
    does not implement. Steps fail at once with :attr:`reason` instead of retrying."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason} {detail}".strip())
        self.reason = reason


class PartsTooSmall(StoreRefused):
    """The store takes no part but the last this small (S3: 5 MiB, ``EntityTooSmall`` at completion):
    the same parts are refused for good, so the upload can never be completed."""

    REASON = ("the archive's parts are smaller than the storage service accepts "
              "(GROVE_MIN_PART_SIZE, GROVE_S3__SMALLEST_PART)")

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.REASON, detail)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class UploadedPart:
    part_number: int
    etag: str
    size: int


@dataclass(frozen=True)
class CompletedPart:
    part_number: int
    etag: str


@dataclass(frozen=True)
class MultipartUpload:
    key: str
    upload_id: str
    initiated: datetime | None


@runtime_checkable
class ObjectStore(Protocol):
    """Buckets are names from settings; keys are '/'-separated paths."""

    async def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> str:
        """Store ``data`` at ``key``; returns its ETag."""
        ...

    async def head(self, bucket: str, key: str) -> ObjectInfo: ...

    async def check_bucket(self, bucket: str) -> None:
        """Returns when ``bucket`` is there for this service to write in — when a put to it would not be
        refused for the bucket's sake; else raises :class:`StoreRefused` saying why in words (no bucket;
        the filesystem store: a file in its folder's place, a folder this service may not write) or
        :class:`StoreUnavailable` (no answer). Writes nothing, and asks little (S3: one ``HeadBucket``;
        the filesystem: a few ``stat`` calls), so readiness may ask it every second. A HEAD of an object
        cannot say this: S3 answers a bucket that is not there with the same bodiless 404 as a key that
        is not, and the filesystem store a bucket folder that is a file with ObjectNotFound."""
        ...

    def get(
        self,
        bucket: str,
        key: str,
        *,
        start: int = 0,
        end: int | None = None,
        if_match: str | None = None,
        chunk_size: int = 1 << 20,
    ) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of the object. Raises PreconditionFailed when the
        object's ETag is not ``if_match``, ObjectNotFound when it is gone."""
        ...

    async def read(self, bucket: str, key: str, *, if_match: str | None = None) -> bytes:
        """The whole (small) object."""
        ...

    async def delete(self, bucket: str, key: str) -> None:
        """Delete; deleting a missing key is not an error."""
        ...

    def unfit_keys(self, keys: Sequence[str]) -> str | None:
        """Why this store cannot hold every one of ``keys`` side by side in one bucket (in words,
        naming a key), or None. Asked before writing a set of keys chosen elsewhere (an imported
        archive's), so that none is written when one would fail."""
        ...

    async def delete_many(self, bucket: str, keys: Sequence[str]) -> None:
        """Delete every key (a missing one is not an error) in as few calls as the store allows:
        S3 takes up to 1,000 keys per ``DeleteObjects``. Raises :class:`StoreError` naming the
        first key the store would not delete (the others may be gone)."""
        ...

    async def list_keys(self, bucket: str, prefix: str) -> list[ObjectInfo]: ...

    async def create_multipart(self, bucket: str, key: str, content_type: str | None = None,
                               part_size: int | None = None) -> str:
        """Start a multipart upload; returns the upload id. ``part_size``: a promise that every part
        but the last has exactly this many bytes and none has more (a store may lay parts out by
        it; S3 ignores it)."""
        ...

    async def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int, data: bytes | memoryview,
                          md5: str | None = None) -> str:
        """Upload (or overwrite) one part; returns its ETag. ``md5`` (hex) is the caller's MD5 of
        ``data`` when it has one, so the adapter need not hash the bytes again."""
        ...

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[UploadedPart]: ...

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: list[CompletedPart]
    ) -> str:
        """Assemble the parts into the object; returns its ETag."""
        ...

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort; aborting an unknown upload is not an error."""
        ...

    async def list_uploads(self, bucket: str, prefix: str) -> list[MultipartUpload]: ...

    async def remove_cut_puts(self, bucket: str, keys: Sequence[str]) -> int:
        """Delete what puts of ``keys`` cut short left (a process killed mid-write): the filesystem's
        temp file beside each key, which holds part of the object's bytes and which no listing shows
        and no later put replaces; S3 keeps nothing of a single PUT cut short. Only for a caller that
        knows no put of these keys is under way (an import holding its tenant's claim). How many."""
        ...

    async def leftovers(self, bucket: str, prefix: str) -> list[str]:
        """What the store holds under ``prefix`` (a folder, ending in ``/``) besides the objects
        :meth:`list_keys` shows: the filesystem's temp files of writes cut short, S3's older versions
        and delete markers (a versioned bucket). Keys, one per thing held (operator erase)."""
        ...

    async def remove_leftovers(self, bucket: str, prefix: str) -> None:
        """Delete every :meth:`leftovers` under ``prefix`` (the filesystem: and its emptied folders)."""
        ...

    async def signed_url(self, bucket: str, key: str, expires_in: int, filename: str | None = None) -> str:
        """A URL that downloads the object without other credentials until it expires."""
        ...

    async def close(self) -> None: ...


async def upload_open(store: ObjectStore, bucket: str, key: str, upload_id: str) -> bool:
    """Does the store still hold this multipart upload? False when listing its parts answers
    NoSuchUpload (aborted — by a lifecycle rule, a store's purge of stale uploads, anyone — or
    completed); any other error is raised (an outage says nothing about the upload)."""
    try:
        await store.list_parts(bucket, key, upload_id)
    except NoSuchUpload:
        return False
    return True
