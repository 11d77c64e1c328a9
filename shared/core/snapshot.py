"""The frozen snapshot: what an export contains, decided once by the catalog.

Stored as JSON Lines in the exports bucket (a header line, then one line per member, then one per
catalog-time error), so a snapshot of 100,000 members never needs one giant JSON document.
Text members (README, posts, pages) are rendered once into one ``texts`` object and referenced
by byte range; every member is thus (bucket, key, range, ETag) and read the same way. Where each
object lives (its key) and the members' paths and order are the layout's (shared/archive/layout.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.objectstore import ObjectStore, StoreError

log = logging.getLogger(__name__)

Kind = Literal["readme", "post", "page", "index", "media", "file"]


class SnapshotMember(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    path: str
    kind: Kind
    bucket: str
    key: str
    start: int = 0
    size: int
    etag: str
    content_type: str
    source_id: str
    modified_at: datetime
    level: int
    meta: dict[str, Any] | None = None  # the row's metadata (media, files), copied into manifest.json


class SnapshotError(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_id: str
    path: str
    reason: str


class SnapshotHeader(BaseModel):
    model_config = ConfigDict(frozen=True)

    export_id: str
    tenant_id: str
    mode: str
    username: str
    include_images: bool
    created_at: datetime
    archive_key: str
    item_counts: dict[str, int]
    generator: str


class NotASnapshot(ValueError):
    """Bytes that are not a snapshot (:meth:`Snapshot.loads`): one line saying where."""


class Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    header: SnapshotHeader
    members: tuple[SnapshotMember, ...]
    errors: tuple[SnapshotError, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(m.size for m in self.members)

    def dumps(self) -> bytes:
        """One JSON object a line, each model written by pydantic's own serializer (a burst's catalog
        spent 6 % of its time dumping to dicts and then through ``json``). The member lines start
        with the prefix the assembler's spill parses fast (services/assembler/spill.py)."""
        return b"".join(dump_lines(self.header, self.members, self.errors))

    @classmethod
    def loads(cls, data: bytes) -> Snapshot:
        """NotASnapshot when ``data`` is not one (any object of the bucket can be named: an archive, a
        part record), naming the first line that is not a snapshot's."""
        header, members, errors = None, [], []
        for n, line in enumerate(data.split(b"\n"), 1):  # not str.splitlines(): a tenant's text may hold U+2028
            if not line:
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise TypeError("not a JSON object")
                if "header" in obj:
                    header = SnapshotHeader.model_validate(obj["header"])
                elif "member" in obj:
                    members.append(SnapshotMember.model_validate(obj["member"]))
                elif "error" in obj:
                    errors.append(SnapshotError.model_validate(obj["error"]))
            except (ValueError, TypeError, RecursionError) as e:  # not UTF-8 or JSON, a field of the wrong type
                raise NotASnapshot(f"line {n} is not a snapshot's header, member or error ({type(e).__name__})"
                                   ) from None
        if header is None:
            raise NotASnapshot("it has no header line")
        return cls(header=header, members=tuple(members), errors=tuple(errors))


def dump_lines(header: SnapshotHeader, members: Iterable[SnapshotMember],
               errors: Iterable[SnapshotError]) -> Iterator[bytes]:
    """The lines of :meth:`Snapshot.dumps` (each with its line feed), one model at a time."""
    yield b'{"header": ' + header.model_dump_json().encode() + b"}\n"
    for m in members:
        yield b'{"member": ' + m.model_dump_json().encode() + b"}\n"
    for e in errors:
        yield b'{"error": ' + e.model_dump_json().encode() + b"}\n"


@dataclass(frozen=True)
class Dumped:
    """A snapshot's bytes and what ExportCataloged says of it."""

    data: bytes
    member_count: int
    total_bytes: int


def dump(header: SnapshotHeader, members: Iterable[SnapshotMember], errors: Iterable[SnapshotError]) -> Dumped:
    """``Snapshot(header, members, errors).dumps()``, written member by member as ``members`` yields
    them: 100,000 members held as models took 124 MiB, their text in the snapshot 32 MiB."""
    out, count, total = io.BytesIO(), 0, 0

    def counted() -> Iterator[SnapshotMember]:
        nonlocal count, total
        for m in members:
            count, total = count + 1, total + m.size
            yield m

    for line in dump_lines(header, counted(), errors):
        out.write(line)
    return Dumped(out.getvalue(), count, total)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def remove_work_objects(store: ObjectStore, bucket: str, tenant_id: str, export_id: str) -> int:
    """Delete the snapshot and part records of an export; how many (0 when the store failed:
    logged, and the janitor, which lists them again, is the backstop)."""
    from shared.core.keys import work_prefix

    try:
        keys = [obj.key for obj in await store.list_keys(bucket, work_prefix(tenant_id, export_id))]
        if keys:
            await store.delete_many(bucket, keys)  # one request per 1,000 on S3, not one per part record
    except StoreError as e:  # some may be gone: the next janitor run lists what is left
        log.warning("export %s: work objects left for the janitor (%s)", export_id, e,
                    extra={"tenant_id": tenant_id, "export_id": export_id})
        return 0
    return len(keys)
