"""The archive stream without infrastructure: deterministic, resumable at any part, byte-identical."""

from __future__ import annotations

import io
import json
import os
import random
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.assembler.encoder import ArchiveStream, Rewind
from services.assembler.plan import MemberRecord, resume_point
from shared.core.snapshot import Snapshot, SnapshotHeader, SnapshotMember
from shared.objectstore import ObjectNotFound, PreconditionFailed

T = datetime(2026, 2, 22, 10, 30, tzinfo=UTC)


def snapshot(sources: dict[str, bytes]) -> Snapshot:
    header = SnapshotHeader(export_id="exp_1", tenant_id="t1", mode="blog", username="autumn",
                            include_images=True, created_at=T, archive_key="k.zip",
                            item_counts={"posts": sum(n.startswith("posts/") and n.endswith(".md") for n in sources)},
                            generator="test")  # what the archive holds, as verify checks
    members = tuple(
        SnapshotMember(index=i, path=name, kind="media", bucket="b", key=name, size=len(data), etag=f"e{i}",
                       content_type="image/jpeg" if name.endswith(".jpg") else "text/markdown",
                       source_id=f"id{i}", modified_at=T, level=0 if name.endswith(".jpg") else 6)
        for i, (name, data) in enumerate(sources.items()))
    return Snapshot(header=header, members=members)


def opener(sources: dict[str, bytes], chunk: int = 7919, fail: dict[str, Exception] | None = None):
    def open_source(m: SnapshotMember) -> Iterator[bytes]:
        if fail and m.key in fail:
            raise fail[m.key]
        data = sources[m.key]
        return iter([data[i:i + chunk] for i in range(0, len(data), chunk)])
    return open_source


def sources(seed: int = 1) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {
        "README.md": b"# hello\n" * 50,
        "posts/a.md": ("---\ntitle: a\n---\n" + "word " * 3000).encode(),
        "media/big.jpg": rng.randbytes(700_000),
        "media/small.jpg": rng.randbytes(1234),
        "posts/b.md": b"",
        "media/c.jpg": os.urandom(0) + rng.randbytes(300_000),
    }


def cut(items: list, part: int) -> list[tuple[int, int, list[MemberRecord], bytes]]:
    """What the uploader does: lazy cuts of ``part`` bytes; records go to the open part."""
    parts, buf, recs, offset = [], bytearray(), [], 0
    for item in items:
        if isinstance(item, MemberRecord):
            recs.append(item)
            continue
        buf += item
        while len(buf) > part:
            offset += part
            parts.append((len(parts) + 1, offset, recs, bytes(buf[:part])))
            del buf[:part]
            recs = []
    offset += len(buf)
    parts.append((len(parts) + 1, offset, recs, bytes(buf)))
    return parts


def full(snap: Snapshot, src: dict[str, bytes], **kw: object) -> bytes:
    return b"".join(i for i in ArchiveStream(snap, opener(src, **kw), resume_point([])) if not isinstance(i, MemberRecord))


def test_the_archive_opens_and_holds_every_member_then_manifest_and_errors() -> None:
    src = sources()
    data = full(snapshot(src), src)
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    assert zf.namelist() == [*src, "manifest.json", "errors.json"]
    for name, body in src.items():
        assert zf.read(name) == body
    manifest = json.loads(zf.read("manifest.json"))
    assert [m["path"] for m in manifest["members"]] == list(src)
    assert json.loads(zf.read("errors.json")) == []


def test_same_snapshot_with_different_source_chunkings_gives_identical_bytes() -> None:
    src = sources()
    snap = snapshot(src)
    assert full(snap, src, chunk=1) == full(snap, src, chunk=65536) == full(snap, src, chunk=3_000_000)


@pytest.mark.parametrize("part", [64 * 1024, 100_003, 256 * 1024])
def test_resuming_after_any_logged_part_continues_into_the_same_bytes(part: int) -> None:
    src = sources()
    snap = snapshot(src)
    items = list(ArchiveStream(snap, opener(src), resume_point([])))
    reference = b"".join(i for i in items if not isinstance(i, MemberRecord))
    parts = cut(items, part)
    for k in range(len(parts)):
        rp = resume_point([(n, end, recs) for n, end, recs, _ in parts[:k]])
        rest = b"".join(i for i in ArchiveStream(snap, opener(src, chunk=4096), rp) if not isinstance(i, MemberRecord))
        done = b"".join(p[3] for p in parts[:k])
        assert done + rest == reference, f"resume after part {k}"


def test_a_missing_or_changed_source_is_reported_and_the_archive_stays_valid() -> None:
    src = sources()
    fail = {"media/small.jpg": ObjectNotFound("gone"), "media/c.jpg": PreconditionFailed("changed")}
    data = full(snapshot(src), src, fail=fail)
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    assert "media/small.jpg" not in zf.namelist() and "media/c.jpg" not in zf.namelist()
    errors = json.loads(zf.read("errors.json"))
    assert [(e["path"], e["reason"].split(":")[0]) for e in errors] == [
        ("media/small.jpg", "missing"), ("media/c.jpg", "changed")]


def test_a_source_shorter_than_its_snapshot_size_rewinds_instead_of_half_including_it() -> None:
    src = sources()
    snap = snapshot(src)
    short = dict(src, **{"media/big.jpg": src["media/big.jpg"][:-10]})
    with pytest.raises(Rewind) as info:
        list(ArchiveStream(snap, opener(short), resume_point([])))
    assert info.value.index == 2
    items = list(ArchiveStream(snap, opener(short), resume_point([]), skips={2: "changed: size"}))
    zf = zipfile.ZipFile(io.BytesIO(b"".join(i for i in items if not isinstance(i, MemberRecord))))
    assert zf.testzip() is None and "media/big.jpg" not in zf.namelist()


def test_a_straddling_member_that_changed_before_its_reread_forces_a_rewind() -> None:
    src = sources()
    snap = snapshot(src)
    items = list(ArchiveStream(snap, opener(src), resume_point([])))
    parts = cut(items, 256 * 1024)
    rp = resume_point([(n, end, recs) for n, end, recs, _ in parts[:1]])  # big.jpg straddles part 1's end
    assert rp.member_index == 2
    with pytest.raises(Rewind) as info:
        list(ArchiveStream(snap, opener(src, fail={"media/big.jpg": PreconditionFailed("x")}), rp))
    assert info.value.member_offset == rp.member_offset



def test_a_straddler_with_only_its_first_byte_uploaded_still_forces_a_rewind() -> None:
    """The boundary of "part of it is already uploaded": one byte of the changed member (its local
    header's first) is in a logged part, so skipping it from here on would leave that byte in the
    archive — a rewind; a member that starts exactly at the resume offset is simply skipped."""
    import dataclasses

    src = sources()
    snap = snapshot(src)
    items = list(ArchiveStream(snap, opener(src), resume_point([])))
    parts = cut(items, 256 * 1024)
    rp = resume_point([(n, end, recs) for n, end, recs, _ in parts[:1]])
    records = list(rp.records)
    gone = opener(src, fail={"media/big.jpg": PreconditionFailed("x")})
    one_byte_in = dataclasses.replace(rp, offset=rp.member_offset + 1, records=records)
    with pytest.raises(Rewind) as info:
        list(ArchiveStream(snap, gone, one_byte_in))
    assert info.value.member_offset == rp.member_offset
    none_in = dataclasses.replace(rp, offset=rp.member_offset, records=records)
    tail = list(ArchiveStream(snap, gone, none_in))
    assert any(isinstance(i, MemberRecord) and i.index == 2 and i.status == "skipped" for i in tail)

def test_the_stream_goes_on_while_a_large_members_hash_is_behind_and_settles_records_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import threading

    from services.assembler import encoder as encmod
    from services.assembler.hashing import ThreadHasher

    gate = threading.Event()
    real = hashlib.sha256

    class Held:  # a SHA-256 whose updates wait for the gate (as a hashing thread that lags behind)
        def __init__(self) -> None:
            self.h = real()

        def update(self, data: bytes) -> None:
            gate.wait(timeout=2)
            self.h.update(data)

        def hexdigest(self) -> str:
            return self.h.hexdigest()

    monkeypatch.setattr(encmod.hashlib, "sha256", Held)
    rng = random.Random(7)
    src = {"media/a.jpg": rng.randbytes(1_200_000), "media/b.jpg": rng.randbytes(1_200_000)}
    hasher = ThreadHasher()
    items: list[bytes | MemberRecord] = []
    it = iter(ArchiveStream(snapshot(src), opener(src, chunk=1 << 20), resume_point([]), hasher=hasher))
    while sum(len(i) for i in items if not isinstance(i, MemberRecord)) < 2_000_000:  # well into b.jpg
        items.append(next(it))
    assert not gate.is_set()
    assert not any(isinstance(i, MemberRecord) for i in items)  # a.jpg's record waits; the bytes did not
    gate.set()
    items += list(it)
    hasher.close()
    records = [i for i in items if isinstance(i, MemberRecord)]
    assert [r.path for r in records[:2]] == ["media/a.jpg", "media/b.jpg"]
    assert [r.sha256 for r in records[:2]] == [real(src[k]).hexdigest() for k in ("media/a.jpg", "media/b.jpg")]
