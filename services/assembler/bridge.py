"""Between the encoder thread and the event loop: sources read by the loop, bytes handed back.

The thread does the CPU work; the loop does all I/O (store reads, uploads, the log, heartbeats).
Each crossing moves about 1 MiB, so the cost of a hop is small against the work it carries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from services.assembler.encoder import ArchiveStream, Item, Stopped
from shared.objectstore import ObjectStore
from shared.snapshot import SnapshotMember

HOP = 1 << 20
T = TypeVar("T")


def call(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], stop: threading.Event | None) -> T:
    """Run ``coro`` on the loop from this thread; give up promptly when ``stop`` is set."""
    fut = asyncio.run_coroutine_threadsafe(coro, loop)
    while True:
        try:
            return fut.result(timeout=0.1)
        except concurrent.futures.TimeoutError:
            if stop is not None and stop.is_set():
                fut.cancel()
                raise Stopped() from None


class SourceReader:
    """A sync iterator over one member's bytes, read by the loop with If-Match on the snapshot ETag."""

    def __init__(self, store: ObjectStore, member: SnapshotMember, loop: asyncio.AbstractEventLoop,
                 stop: threading.Event | None = None) -> None:
        self.loop = loop
        self.stop = stop
        self.gen: AsyncIterator[bytes] = store.get(
            member.bucket, member.key, start=member.start, end=member.start + member.size,
            if_match=member.etag, chunk_size=HOP,
        )
        self.done = False

    async def _next(self) -> bytes | None:
        buf = bytearray()
        try:
            while len(buf) < HOP:
                buf += await self.gen.__anext__()
        except StopAsyncIteration:
            self.done = True
        return bytes(buf) if buf else None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.done:
            raise StopIteration
        block = call(self.loop, self._next(), self.stop)
        if block is None:
            raise StopIteration
        return block


def source_opener(store: ObjectStore, loop: asyncio.AbstractEventLoop,
                  stop: threading.Event | None = None) -> Callable[[SnapshotMember], Iterator[bytes]]:
    return lambda member: SourceReader(store, member, loop, stop)


Sink = Callable[[Item], Coroutine[Any, Any, None]]


Pace = Callable[[float, int], None]


def pump(stream: ArchiveStream, sink: Sink, loop: asyncio.AbstractEventLoop, hash_all: bool,
         pace: Pace | None = None) -> str | None:
    """Run in a thread: drive the stream, hand ~1 MiB batches and records to ``sink`` in order.
    Returns the SHA-256 of everything emitted when ``hash_all`` (a run from byte 0).
    ``pace(seconds, bytes_so_far)`` is called after each hop with the time that hop took; it may
    sleep to give way to other exports (fairness)."""
    sha = hashlib.sha256() if hash_all else None
    pending = bytearray()
    emitted, mark = 0, time.perf_counter()

    def hand(item: Item) -> None:
        nonlocal emitted, mark
        if stream.stop.is_set():
            raise Stopped()
        call(loop, sink(item), stream.stop)
        if pace is not None and isinstance(item, bytes):
            emitted += len(item)
            now = time.perf_counter()
            pace(now - mark, emitted)
            mark = time.perf_counter()

    for item in stream:
        if isinstance(item, bytes | bytearray | memoryview):
            if sha is not None:
                sha.update(item)
            pending += item
            if len(pending) >= HOP:
                hand(bytes(pending))
                pending.clear()
        else:
            if pending:
                hand(bytes(pending))
                pending.clear()
            hand(item)
    if pending:
        hand(bytes(pending))
    return sha.hexdigest() if sha else None
