"""A source read through the loop (S3) is read one block ahead: the loop fetches the next block
while the encoder's thread works on the one it has — and the blocks arrive whole and in order.
Across members too: once a member is opened, the next member's GET has started."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.assembler.bridge import HOP, ReadAhead, SourceReader
from shared.core.snapshot import SnapshotMember
from shared.objectstore.fs import FilesystemStore

T = datetime(2026, 2, 22, 10, 30, tzinfo=UTC)


class ReadsSeen:
    """A real filesystem store's GET, noting how many bytes the loop has read so far."""

    def __init__(self, store: FilesystemStore) -> None:
        self.store, self.read = store, 0

    async def get(self, *args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        async for chunk in self.store.get(*args, **kwargs):
            self.read += len(chunk)
            yield chunk


def member(size: int, etag: str) -> SnapshotMember:
    return SnapshotMember(index=0, path="images/a.jpg", kind="media", bucket="b", key="a.jpg", start=0, size=size,
                          etag=etag, content_type="image/jpeg", source_id="m1", modified_at=T, level=0)


async def test_the_next_block_is_read_while_the_thread_holds_the_current_one(tmp_path: Path) -> None:
    data = os.urandom(3 * HOP + 123)
    store = ReadsSeen(FilesystemStore(tmp_path))
    etag = await store.store.put("b", "a.jpg", data)
    reader = SourceReader(store, member(len(data), etag), asyncio.get_running_loop())  # type: ignore[arg-type]

    def consume() -> tuple[list[bytes], list[int]]:
        blocks, seen = [], []
        for block in reader:
            deadline = time.monotonic() + 5
            # nobody asked for the next block yet: it is read anyway, up to the end of the source
            while store.read < min(len(data), sum(map(len, blocks)) + len(block) + HOP) and \
                    time.monotonic() < deadline:
                time.sleep(0.005)
            seen.append(store.read)
            blocks.append(block)
        return blocks, seen

    blocks, seen = await asyncio.to_thread(consume)
    assert b"".join(blocks) == data and [len(b) for b in blocks] == [HOP, HOP, HOP, 123]
    assert seen == [2 * HOP, 3 * HOP, len(data), len(data)]


class ReadsByKey:
    """A real filesystem store's GET, noting the bytes read per key and, as each read ends (read
    to its end or closed), how many bytes it had given."""

    def __init__(self, store: FilesystemStore) -> None:
        self.store = store
        self.read: dict[str, int] = {}
        self.ended: list[tuple[str, int]] = []  # (key, bytes this read had yielded) as reads end

    async def get(self, bucket: str, key: str, **kwargs: Any) -> AsyncIterator[bytes]:
        self.read.setdefault(key, 0)
        n = 0
        try:
            async for chunk in self.store.get(bucket, key, **kwargs):
                self.read[key] += len(chunk)
                n += len(chunk)
                yield chunk
        finally:
            self.ended.append((key, n))


def members(sizes: dict[str, int], etags: dict[str, str]) -> list[SnapshotMember]:
    return [member(size, etags[key]).model_copy(update={"index": i, "key": key, "path": f"images/{key}"})
            for i, (key, size) in enumerate(sizes.items())]


def until(check: Any, what: str) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


async def test_the_next_members_first_block_is_read_as_soon_as_a_member_is_opened(tmp_path: Path) -> None:
    sizes = {"a.jpg": 3 * HOP + 7, "b.jpg": 3 * HOP, "c.jpg": 100}
    data = {k: os.urandom(n) for k, n in sizes.items()}
    store = ReadsByKey(FilesystemStore(tmp_path))
    etags = {k: await store.store.put("b", k, v) for k, v in data.items()}
    ms = members(sizes, etags)
    opener = ReadAhead(store, ms, asyncio.get_running_loop())  # type: ignore[arg-type]

    def consume() -> list[bytes]:
        out = []
        a = opener(ms[0])
        # nothing of a.jpg handed over yet: b.jpg's GET is under way all the same (two requests in
        # flight), and c.jpg's waits until b.jpg is opened (one member ahead)
        until(lambda: store.read.get("b.jpg", 0) == HOP, "b.jpg read ahead while a.jpg is opened")
        assert store.read.get("a.jpg", 0) <= 2 * HOP and "c.jpg" not in store.read
        out.append(b"".join(a))
        for m in ms[1:]:
            reader = opener(m)
            if m.key == "b.jpg":
                until(lambda: store.read.get("c.jpg", 0) == 100, "c.jpg read ahead once b.jpg is opened")
            out.append(b"".join(reader))
        return out

    assert await asyncio.to_thread(consume) == list(data.values())
    assert not opener.ahead  # nothing follows the last member
    assert sorted(store.ended) == sorted((k, n) for k, n in sizes.items())  # each read once, whole


async def test_a_member_read_ahead_but_not_opened_next_is_given_up(tmp_path: Path) -> None:
    sizes = {"a.jpg": HOP + 1, "b.jpg": 3 * HOP, "c.jpg": 100}
    data = {k: os.urandom(n) for k, n in sizes.items()}
    store = ReadsByKey(FilesystemStore(tmp_path))
    etags = {k: await store.store.put("b", k, v) for k, v in data.items()}
    ms = members(sizes, etags)
    opener = ReadAhead(store, ms, asyncio.get_running_loop(), wanted=lambda m: m.key != "c.jpg")  # type: ignore[arg-type]

    def consume() -> tuple[bytes, bytes, bytes]:
        a = b"".join(opener(ms[0]))
        until(lambda: store.read.get("b.jpg") == HOP, "b.jpg read ahead")
        c = b"".join(opener(ms[2]))  # b.jpg skipped (say, a rewind): its read is dropped
        b = b"".join(opener(ms[1]))  # opened after all: read afresh, from its first byte
        # none was started after b.jpg, as c.jpg is not wanted
        assert not opener.ahead
        return a, c, b

    a, c, b = await asyncio.to_thread(consume)
    assert (a, c, b) == (data["a.jpg"], data["c.jpg"], data["b.jpg"])
    assert store.ended == [("a.jpg", HOP + 1), ("b.jpg", HOP), ("c.jpg", 100), ("b.jpg", 3 * HOP)]


async def test_a_member_opened_after_the_opener_was_closed_leaves_nothing_read_ahead(tmp_path: Path) -> None:
    """A cancelled step closes the opener from the loop while the encoder's thread may still open a
    member: nothing started after the close stays open."""
    sizes = {"a.jpg": 100, "b.jpg": 3 * HOP}
    data = {k: os.urandom(n) for k, n in sizes.items()}
    store = ReadsByKey(FilesystemStore(tmp_path))
    etags = {k: await store.store.put("b", k, v) for k, v in data.items()}
    ms = members(sizes, etags)
    opener = ReadAhead(store, ms, asyncio.get_running_loop())  # type: ignore[arg-type]
    opener.close()

    def consume() -> bytes:
        a = b"".join(opener(ms[0]))
        assert not opener.ahead
        return a

    assert await asyncio.to_thread(consume) == data["a.jpg"]
    # a.jpg was read on the loop after b.jpg's GET would have been asked for: none was
    assert "b.jpg" not in store.read and store.ended == [("a.jpg", 100)]
