"""A multipart upload made straight through a store, and the ArchiveAssembled that names it: what
the finalizer tests hand the finalizer (a part is what it reads from the log: number and ETag)."""

from __future__ import annotations

from typing import NamedTuple

from shared.core import events as ev
from shared.objectstore import ObjectStore


class Part(NamedTuple):
    number: int
    etag: str


async def upload(store: ObjectStore, bucket: str, key: str, *chunks: bytes) -> tuple[str, list[Part]]:
    upload_id = await store.create_multipart(bucket, key, "application/zip")
    parts = [Part(n, await store.upload_part(bucket, key, upload_id, n, data))
             for n, data in enumerate(chunks, start=1)]
    return upload_id, parts


def assembled(key: str, upload_id: str, size: int, count: int) -> ev.ArchiveAssembled:
    """``key`` is ``exports/<tenant>/<export>/…``: the event names that tenant and export."""
    _, tenant, export = key.split("/")[:3]
    return ev.ArchiveAssembled(export_id=export, tenant_id=tenant, archive_key=key, upload_id=upload_id,
                               size_bytes=size, part_count=count, member_count=1, error_count=0)
