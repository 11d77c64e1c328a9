"""Text members are read in windows of whole members (one ranged GET each), not one GET per member."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.assembler.bridge import TEXT_WINDOW, TextWindows
from shared.core.snapshot import SnapshotMember
from shared.objectstore.fs import FilesystemStore

T = datetime(2026, 2, 22, 10, 30, tzinfo=UTC)


class CountingGets:
    """A real filesystem store, read through the loop as S3 is; counts the GETs made through it."""

    def __init__(self, store: FilesystemStore) -> None:
        self.store, self.gets = store, 0

    def get(self, *args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        self.gets += 1
        return self.store.get(*args, **kwargs)


class CountingBlockingGets(CountingGets):
    """The filesystem store as the assembler has it: read in the encoder's thread, no loop."""

    def get(self, *args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        raise AssertionError("a store with get_blocking is read in the encoder's thread")

    def get_blocking(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        self.gets += 1
        return self.store.get_blocking(*args, **kwargs)


STORES = pytest.mark.parametrize("counting", [CountingGets, CountingBlockingGets], ids=["loop", "blocking"])


def texts(bodies: list[bytes], etag: str) -> list[SnapshotMember]:
    members, offset = [], 0
    for i, body in enumerate(bodies):
        members.append(SnapshotMember(index=i, path=f"posts/p{i}.md", kind="post", bucket="b", key="texts.bin",
                                      start=offset, size=len(body), etag=etag, content_type="text/markdown",
                                      source_id=f"p{i}", modified_at=T, level=6))
        offset += len(body)
    return members


@STORES
async def test_a_thousand_posts_over_4_mib_take_two_gets_and_read_back_exactly(tmp_path: Path,
                                                                             counting: type[CountingGets]) -> None:
    bodies = [(f"post {i} " * 700).encode()[: 5000 + i] for i in range(1000)]  # ~5 MB in all
    store = counting(FilesystemStore(tmp_path))
    etag = await store.store.put("b", "texts.bin", b"".join(bodies))
    members = texts(bodies, etag)
    windows = TextWindows(store, members, asyncio.get_running_loop())  # type: ignore[arg-type]
    got = await asyncio.to_thread(lambda: [windows.read(m) for m in members])
    assert got == bodies
    assert store.gets == -(-sum(map(len, bodies)) // TEXT_WINDOW)  # 2: as few as whole members allow


@STORES
async def test_a_changed_texts_object_is_left_to_per_member_reads(tmp_path: Path,
                                                                  counting: type[CountingGets]) -> None:
    bodies = [b"a" * 100, b"b" * 100]
    store = counting(FilesystemStore(tmp_path))
    await store.store.put("b", "texts.bin", b"".join(bodies))
    members = texts(bodies, etag="not-the-etag")
    windows = TextWindows(store, members, asyncio.get_running_loop())  # type: ignore[arg-type]
    got = await asyncio.to_thread(lambda: [windows.read(m) for m in members])
    assert got == [None, None] and store.gets == 1  # tried once, then each member on its own
