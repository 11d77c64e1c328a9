"""Large deflated members compressed ahead on another thread (services/assembler/ahead.py): the
archive is byte for byte the one the encoder writes alone, the encoder really takes the work
done ahead, a source that differs from what was compressed is a changed member, and the thread
stays within its memory bound and stops when told."""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from services.assembler import ahead as ahead_module
from services.assembler.ahead import DeflateAhead, last_texts, worth_it
from services.assembler.encoder import ArchiveStream, Rewind
from services.assembler.plan import MemberRecord, resume_point
from shared.archive.zipmember import MemberEncoder, SourceSizeMismatch, deflate
from shared.core.snapshot import SnapshotMember
from tests.unit.pipeline.test_archive_stream import T, opener, snapshot


def text(rng: random.Random, size: int) -> bytes:
    words = [b"grove", b"export", b"autumn", b"fern", b"{\"title\": ", b"\n", b"  ", b"2026-11-30"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def encoded(name: str, data: bytes, level: int, deflated=None, chunk: int = 65_536) -> tuple[bytes, object]:
    enc = MemberEncoder(name, T, len(data), level, iter([data[i:i + chunk] for i in range(0, len(data), chunk)]),
                        deflated)
    return b"".join(enc), enc.result


@pytest.mark.parametrize("size", [0, 1, 300_000, (1 << 20) + 7, 3 << 20])
@pytest.mark.parametrize("level", [1, 6, 9])
def test_a_member_deflated_ahead_is_byte_for_byte_the_member_the_encoder_writes(size: int, level: int) -> None:
    data = text(random.Random(size + level), size)
    alone, alone_result = encoded("index.json", data, level)
    framed, framed_result = encoded("index.json", data, level, deflate(data, level))
    assert framed == alone
    assert framed_result == alone_result


def test_a_source_that_differs_from_what_was_deflated_is_a_changed_member() -> None:
    data = text(random.Random(1), 400_000)
    other = data[:-1] + b"!"  # same size, other bytes: only the CRC-32 tells
    with pytest.raises(SourceSizeMismatch, match="deflated ahead"):
        encoded("feed.json", other, 6, deflate(data, 6))
    with pytest.raises(SourceSizeMismatch):
        encoded("feed.json", data[:-1], 6, deflate(data, 6))


def big_sources() -> dict[str, bytes]:
    rng = random.Random(5)
    return {
        "README.md": b"# hello\n" * 50,
        "posts/a.md": text(rng, 5_000),
        "index.json": text(rng, 400_000),
        "feed.json": text(rng, 900_000),
        "media/photo.jpg": os.urandom(300_000),
        "notes.txt": text(rng, 10_000),  # deflated but small: not worth a thread
    }


def BIG(m: SnapshotMember) -> bool:
    return worth_it(m, 4 << 20)


def start(members, read, stop: threading.Event | None = None) -> DeflateAhead:
    return DeflateAhead([m for m in members if BIG(m)], read, stop or threading.Event())


def archive(stream: ArchiveStream) -> bytes:
    return b"".join(i for i in stream if not isinstance(i, MemberRecord))


def reader(src: dict[str, bytes], calls: list[str] | None = None):
    def read(m: SnapshotMember) -> bytes | None:
        if calls is not None:
            calls.append(m.key)
        return src[m.key]
    return read


def test_the_archive_is_the_same_and_the_encoder_takes_what_was_deflated_ahead() -> None:
    src = big_sources()
    snap = snapshot(src)
    reference = archive(ArchiveStream(snap, opener(src), resume_point([])))
    assert [m.path for m in snap.members if BIG(m)] == ["index.json", "feed.json"]
    stop = threading.Event()
    ahead = start(snap.members, reader(src), stop)
    try:
        got = archive(ArchiveStream(snap, opener(src), resume_point([]), stop=stop, ahead=ahead))
    finally:
        ahead.close()
    assert got == reference
    assert ahead.taken == 2


def test_a_member_changed_between_the_two_reads_rewinds_the_stream() -> None:
    src = big_sources()
    snap = snapshot(src)
    stale = dict(src, **{"feed.json": src["feed.json"][:-1] + b"?"})  # what the ahead thread read
    ahead = start(snap.members, reader(stale))
    try:
        with pytest.raises(Rewind) as e:
            archive(ArchiveStream(snap, opener(src), resume_point([]), ahead=ahead))
    finally:
        ahead.close()
    assert e.value.index == 3 and e.value.reason.startswith("changed")


def test_a_read_that_fails_leaves_the_member_to_the_encoder() -> None:
    src = big_sources()
    snap = snapshot(src)
    reference = archive(ArchiveStream(snap, opener(src), resume_point([])))

    def read(m: SnapshotMember) -> bytes | None:
        if m.key == "feed.json":
            raise OSError("injected")
        return src[m.key]

    stop = threading.Event()
    ahead = start(snap.members, read, stop)
    try:
        got = archive(ArchiveStream(snap, opener(src), resume_point([]), stop=stop, ahead=ahead))
    finally:
        ahead.close()
    assert got == reference
    assert ahead.taken == 1  # index.json from the thread, feed.json by the encoder


def test_a_member_the_encoder_reaches_before_the_thread_starts_it_is_the_encoders() -> None:
    src = {name: text(random.Random(i), 300_000) for i, name in enumerate(["a.json", "b.json"])}
    snap = snapshot(src)
    a, b = snap.members
    release = threading.Event()
    calls: list[str] = []

    def read(m: SnapshotMember) -> bytes | None:
        calls.append(m.key)
        release.wait(5)  # the thread is held at a.json
        return src[m.key]

    ahead = start([a, b], read)
    try:
        assert ahead.take(b) is None  # b not started yet: the encoder deflates it itself
        release.set()
        got = ahead.take(a)  # a is in the thread's hands: wait for it
        assert got is not None and got == deflate(src["a.json"], a.level)
    finally:
        ahead.close()
    assert calls == ["a.json"]  # b, claimed by the encoder, was never read here
    assert ahead.taken == 1


def texts_then_media(src: dict[str, bytes]) -> list[SnapshotMember]:
    """big_sources' members with the layout's kinds: texts first, then media."""
    kinds = {"README.md": "readme", "posts/a.md": "post", "index.json": "index", "feed.json": "index"}
    return [m.model_copy(update={"kind": kinds.get(m.path, "media")}) for m in snapshot(src).members]


def is_text(m: SnapshotMember) -> bool:
    return m.kind != "media"


def test_the_last_text_members_are_found_by_bisection_and_only_large_deflated_ones_kept() -> None:
    members = texts_then_media(big_sources())
    assert [m.path for m in last_texts(members, 0, is_text, set(), 4 << 20)] == ["index.json", "feed.json"]
    assert [m.path for m in last_texts(members, 3, is_text, set(), 4 << 20)] == ["feed.json"]  # resumed there
    assert last_texts(members, 4, is_text, set(), 4 << 20) == []  # resumed in the media
    assert [m.path for m in last_texts(members, 0, is_text, {3}, 4 << 20)] == ["index.json"]  # feed.json skipped
    assert [m.path for m in last_texts(members, 0, is_text, set(), 500_000)] == ["index.json"]  # feed.json too big

    reads: list[int] = []

    class Counting(list):  # a spilled snapshot parses the member on every access: count them
        def __getitem__(self, i):
            reads.append(i)
            return super().__getitem__(i)

    post, photo = members[1], members[4]
    many = Counting([post.model_copy(update={"index": i}) for i in range(10_000)]
                    + [photo.model_copy(update={"index": 10_000 + i}) for i in range(10_000)])
    assert last_texts(many, 0, is_text, set(), 4 << 20) == []  # small posts only
    assert len(reads) < 40  # a bisection, not a walk over 20,000 members


def test_a_member_the_thread_is_given_and_the_encoder_reaches_first_is_not_read() -> None:
    src = big_sources()
    snap = snapshot(src)
    index, feed = [m for m in snap.members if BIG(m)]
    calls: list[str] = []
    release = threading.Event()
    finished = threading.Event()

    def read(m: SnapshotMember) -> bytes | None:
        calls.append(m.key)
        release.wait(5)
        return src[m.key]

    ahead = DeflateAhead([index, feed], read, threading.Event(), finished.set)
    try:
        assert ahead.take(feed) is None  # the encoder is past feed.json: the thread must skip it
        release.set()
        assert finished.wait(5)
        assert calls == ["index.json"]
    finally:
        ahead.close()


def test_the_thread_holds_at_most_its_bound_of_finished_output(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(9)
    src = {f"big-{i}.json": os.urandom(300_000) + text(rng, 10) for i in range(4)}  # barely compressible
    snap = snapshot(src)
    monkeypatch.setattr(ahead_module, "HELD", 400_000)
    calls: list[str] = []
    ahead = start(list(snap.members), reader(src, calls))
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # give a thread that ignored its bound the time to read more
        assert calls == ["big-0.json", "big-1.json"]  # the second pushed it past the bound: it waits
        assert ahead.take(snap.members[0]) is not None
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls == ["big-0.json", "big-1.json", "big-2.json"]
    finally:
        ahead.close()


def test_close_stops_the_thread_and_take_then_gives_nothing() -> None:
    src = {f"big-{i}.json": text(random.Random(i), 300_000) for i in range(3)}
    snap = snapshot(src)
    release = threading.Event()

    def read(m: SnapshotMember) -> bytes | None:
        release.wait(5)
        return src[m.key]

    ahead = start(list(snap.members), read)
    closing = threading.Thread(target=ahead.close)
    closing.start()
    release.set()
    closing.join(5)
    assert not closing.is_alive()
    assert all(ahead.take(m) is None for m in snap.members)
