"""A snapshot is JSON Lines split at "\\n" only: a tenant's text in a member's metadata (an image's
alt text, its original name) or in an error's path may hold characters Python's str.splitlines()
also breaks at (U+0085, U+2028, U+2029), which JSON writes as they are."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from services.assembler.spill import load_snapshot
from shared.core.snapshot import Snapshot, SnapshotError, SnapshotHeader, SnapshotMember

T = datetime(2026, 2, 22, 10, 30, tzinfo=UTC)
LINE_BREAKS_TO_PYTHON = "next\u0085line\u2028separator\u2029paragraph"


def _snapshot() -> Snapshot:
    header = SnapshotHeader(export_id="exp_1", tenant_id="t1", mode="blog", username="autumn\u2028",
                            include_images=True, created_at=T, archive_key="k.zip", item_counts={"images": 1},
                            generator="test")
    member = SnapshotMember(index=0, path="media/a.jpg", kind="media", bucket="b", key="t1/a.jpg", size=3,
                            etag="e", content_type="image/jpeg", source_id="m\u2029", modified_at=T, level=0,
                            meta={"alt_text": LINE_BREAKS_TO_PYTHON, "original_name": "x\u0085.jpg"})
    error = SnapshotError(source_id="m2", path="media/b\u2028.jpg", reason="missing: the file is not in storage")
    return Snapshot(header=header, members=(member,), errors=(error,))


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_tenant_text_with_unicode_line_breaks_reads_back_from_a_snapshot() -> None:
    snap = _snapshot()
    data = snap.dumps()
    assert "\u2028".encode() in data  # written as is: the reader must not split there
    assert Snapshot.loads(data) == snap  # grove-export assemble (the reference) reads it this way
    spilled = asyncio.run(load_snapshot(_one_chunk(data), hashlib.sha256(data).hexdigest()))
    assert spilled is not None and list(spilled.members) == list(snap.members) and spilled.errors == snap.errors
