"""Member state on disk: the assembler's memory stays flat in the number of members, and the bytes
are the ones the in-memory way writes (manifest.json above all)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from services.assembler import spill
from services.assembler.encoder import ArchiveStream, manifest_stream
from services.assembler.plan import MemberRecord, resume_point
from services.assembler.spill import RecordSpill, load_snapshot
from shared.archive import zipmember
from shared.archive.layout import manifest_json
from shared.core.snapshot import Snapshot, SnapshotError, SnapshotHeader, SnapshotMember

T = datetime(2026, 2, 22, 10, 30, tzinfo=UTC)


def many(n: int, *, meta: bool = True, errors: int = 0, username: str = "autumn") -> Snapshot:
    header = SnapshotHeader(export_id="exp_1", tenant_id="t1", mode="blog", username=username,
                            include_images=True, created_at=T, archive_key="k.zip",
                            item_counts={"images": n}, generator="test")
    members = tuple(
        SnapshotMember(index=i, path=f"media/many/f{i:05d}.jpg", kind="media", bucket="b", key=f"k{i}", size=64,
                       etag=f"e{i}", content_type="image/jpeg", source_id=f"med_{i}", modified_at=T, level=0,
                       meta={"alt_text": f"bild {i} — ü\n\"q\"", "size": 64, "ratio": i / 7,
                             "tags": ["a", {"b": None}], "empty": {}} if meta and i % 3 else None)
        for i in range(n))
    errs = tuple(SnapshotError(source_id=f"x{i}", path=f"media/x{i}.jpg", reason="missing") for i in range(errors))
    return Snapshot(header=header, members=members, errors=errs)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def spilled(snap: Snapshot, chunk: int = 1 << 20) -> Snapshot:
    data = snap.dumps()
    loaded = asyncio.run(load_snapshot(_chunks(data, chunk), hashlib.sha256(data).hexdigest()))
    assert loaded is not None
    return loaded


def opener(m: SnapshotMember) -> Iterator[bytes]:
    return iter([random.Random(m.index).randbytes(m.size)])


def archive(snap: Snapshot) -> bytes:
    return b"".join(i for i in ArchiveStream(snap, opener, resume_point([])) if not isinstance(i, MemberRecord))


def test_a_spilled_snapshot_reads_back_the_same_members_header_and_errors() -> None:
    snap = many(50, errors=2)
    loaded = spilled(snap, chunk=97)  # lines cut across chunks
    assert loaded.header == snap.header and loaded.errors == snap.errors
    assert len(loaded.members) == 50
    assert list(loaded.members) == list(snap.members)
    assert loaded.members[-1] == snap.members[-1] and loaded.members[7] == snap.members[7]
    assert list(loaded.members[10:13]) == list(snap.members[10:13]) and len(loaded.members[48:99]) == 2
    assert loaded.total_bytes == snap.total_bytes
    with pytest.raises(IndexError):
        loaded.members[50]


def test_a_snapshot_that_does_not_match_its_checksum_is_refused() -> None:
    data = many(3).dumps()
    assert asyncio.run(load_snapshot(_chunks(data, 1 << 20), "0" * 64)) is None


@pytest.mark.parametrize(("n", "skip"), [(0, set()), (1, set()), (40, {3, 17}), (5, {0, 1, 2, 3, 4})])
def test_the_streamed_manifest_is_byte_for_byte_the_in_memory_one(n: int, skip: set[int]) -> None:
    snap = many(n, username="ünïcødé \"x\"")
    records = [
        MemberRecord(index=i, path=m.path, source_id=m.source_id, status="skipped", reason="missing", size=m.size)
        if i in skip else
        MemberRecord(index=i, path=m.path, source_id=m.source_id, offset=i * 100, length=100, size=m.size,
                     crc32=i, sha256=f"{i:064x}", content_type=m.content_type, cd="UEsBAg==")
        for i, m in enumerate(snap.members)]
    spill = RecordSpill(snap)
    spill.extend(records)
    size, chunks = manifest_stream(snap, spill)
    streamed = b"".join(chunks)
    assert streamed == manifest_json(snap, records)
    assert size == len(streamed)
    assert list(spill) == records and spill.ok_count == n - len(skip) and len(spill.skipped) == len(skip)


def test_the_archive_from_a_spilled_snapshot_is_the_in_memory_archive() -> None:
    snap = many(300)
    assert archive(spilled(snap)) == archive(snap)


def _peak_kib(snap: Snapshot) -> float:
    """Peak Python memory of reading the snapshot as the assembler does and streaming its archive."""
    data = snap.dumps()
    sha = hashlib.sha256(data).hexdigest()
    tracemalloc.start()
    try:
        loaded = asyncio.run(load_snapshot(_chunks(data, 1 << 20), sha))
        assert loaded is not None
        for _ in ArchiveStream(loaded, opener, resume_point([])):
            pass
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_in_the_number_of_members(monkeypatch: pytest.MonkeyPatch) -> None:
    """Held in memory, a member costs ~3 KB parsed and its record ~2.4 KB (5,000 more members: ~25 MB
    more); spilled, what grows is the snapshot's 8-byte offsets. Buffers are bounded by a block
    (1 MiB, reached by both sizes here: the manifest alone is ~2 MB at 5,000 members; at 2,500 it
    stayed under one block, so the larger size's first full block counted as growth)."""
    monkeypatch.setattr(spill, "READ", 64 * 1024)  # spill reads: a block below both sizes' spill files
    # the manifest's block runs in this thread: on the pool, up to (cores + 1) runs are out at once — a
    # bound of their own (tests/unit/archive/test_blocks.py), which the larger manifest reaches first
    monkeypatch.setattr(zipmember, "shared_pool", lambda: None)
    small, large = _peak_kib(many(5000)), _peak_kib(many(10000))
    assert large - small < 1024, f"peak grew {large - small:.0f} KiB for 5,000 more members ({small:.0f} → {large:.0f})"
