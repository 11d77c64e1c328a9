"""A source read through the loop (S3) is read one block ahead: the loop fetches the next block
while the encoder's thread works on the one it has — and the blocks arrive whole and in order."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.assembler.bridge import HOP, SourceReader
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
