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
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from services.assembler.encoder import ArchiveStream, Stopped
from services.assembler.plan import MemberRecord
from shared.core.snapshot import SnapshotMember
from shared.objectstore import ObjectNotFound, ObjectStore, PreconditionFailed

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
        parts: list[bytes] = []
        have = 0
        try:
            while have < HOP:
                chunk = await self.gen.__anext__()
                parts.append(chunk)
                have += len(chunk)
        except StopAsyncIteration:
            self.done = True
        if len(parts) <= 1:  # the filesystem store's usual case: one read of HOP bytes, no copy
            return parts[0] if parts else None
        return b"".join(parts)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.done:
            raise StopIteration
        block = call(self.loop, self._next(), self.stop)
        if block is None:
            raise StopIteration
        return block


TEXT_WINDOW = 4 * 1024 * 1024  # counts against the memory bound: keep it below one part


class TextWindows:
    """Text members (README, posts, pages) are consecutive byte ranges of one object: read them in
    windows of whole members of up to ``TEXT_WINDOW`` bytes — one ranged GET with If-Match per window —
    instead of one GET per member (a thousand GETs cost seconds on S3; texts over 4 MiB used to get
    exactly that). Called in the encoder thread. A window that cannot be read (gone, changed) is not
    retried: its members are read one by one, where each one is reported on its own."""

    def __init__(self, store: ObjectStore, members: Sequence[SnapshotMember], loop: asyncio.AbstractEventLoop,
                 stop: threading.Event | None = None) -> None:
        self.store, self.members, self.loop, self.stop = store, members, loop, stop
        self.ident: tuple[str, str, str] | None = None
        self.start = 0
        self.data = b""
        self.failed: set[tuple[str, str, str]] = set()

    def release(self) -> None:
        self.ident, self.data = None, b""

    def read(self, m: SnapshotMember) -> bytes | None:
        """The member's bytes from the current (or a new) window; None: read it on its own."""
        ident = (m.bucket, m.key, m.etag)
        if ident != self.ident or not self.start <= m.start <= m.start + m.size <= self.start + len(self.data):
            if ident in self.failed or m.size > TEXT_WINDOW:
                return None
            end, i = m.start + m.size, m.index + 1
            while i < len(self.members):  # the following members of the same object, while they fit
                nxt = self.members[i]
                if (nxt.bucket, nxt.key, nxt.etag) != ident or nxt.start != end or \
                        nxt.start + nxt.size - m.start > TEXT_WINDOW:
                    break
                end, i = nxt.start + nxt.size, i + 1

            async def fetch() -> bytes:
                return b"".join([c async for c in self.store.get(m.bucket, m.key, start=m.start, end=end,
                                                                  if_match=m.etag)])

            self.release()
            try:
                self.data = call(self.loop, fetch(), self.stop)
            except (ObjectNotFound, PreconditionFailed):
                self.failed.add(ident)
                return None
            self.ident, self.start = ident, m.start
            if len(self.data) != end - m.start:  # a store that ignored the range: read one by one
                self.failed.add(ident)
                self.release()
                return None
        return self.data[m.start - self.start:m.start - self.start + m.size]


def source_opener(store: ObjectStore, loop: asyncio.AbstractEventLoop,
                  stop: threading.Event | None = None) -> Callable[[SnapshotMember], Iterator[bytes]]:
    blocking = getattr(store, "get_blocking", None)
    if blocking is not None:  # the filesystem store: read in this (the encoder's) thread, no hops
        return lambda m: blocking(m.bucket, m.key, start=m.start, end=m.start + m.size, if_match=m.etag,
                                  chunk_size=HOP)
    return lambda member: SourceReader(store, member, loop, stop)


Batch = list[bytes | MemberRecord]
Sink = Callable[[Batch], Coroutine[Any, Any, None]]
RECORDS_PER_HOP = 512
SMALL_CHUNK = 64 * 1024  # archive chunks below this are hashed in batches (one thread wake-up per hop)


Pace = Callable[[float, int], None]


def pump(stream: ArchiveStream, sink: Sink, loop: asyncio.AbstractEventLoop, hash_all: bool,
         pace: Pace | None = None) -> str | None:
    """Run in a thread: drive the stream, hand batches of ~1 MiB of chunks (not joined: the sink
    copies them once, into its part buffer) and member records, in stream order, to ``sink``; a
    hop per batch, not per member. Returns the SHA-256 of everything emitted when ``hash_all``
    (a run from byte 0), computed by the stream's hasher. ``pace(seconds, bytes_so_far)`` is
    called after each hop with the time that hop took; it may sleep to give way to other exports
    (fairness)."""
    sha = hashlib.sha256() if hash_all else None
    hasher = stream.hasher
    pending: Batch = []
    unhashed: list[bytes] = []  # small chunks not yet handed to the hasher
    have = records = 0
    emitted, mark = 0, time.perf_counter()

    def hand(batch: Batch) -> None:
        nonlocal emitted, mark, unhashed
        if stream.stop.is_set():
            raise Stopped()
        if sha is not None and unhashed:
            hasher.update_many(sha, unhashed)
            unhashed = []
        call(loop, sink(batch), stream.stop)
        if pace is not None:
            emitted += sum(len(chunk) for chunk in batch if not isinstance(chunk, MemberRecord))
            now = time.perf_counter()
            pace(now - mark, emitted)
            mark = time.perf_counter()

    for item in stream:
        if isinstance(item, MemberRecord):
            pending.append(item)
            records += 1
        else:
            if not isinstance(item, bytes):
                item = bytes(item)
            if sha is not None:
                if len(item) >= SMALL_CHUNK:  # a large chunk: to the hasher at once, as it comes
                    if unhashed:
                        hasher.update_many(sha, unhashed)
                        unhashed = []
                    hasher.update(sha, item)
                else:  # small chunks (small members): one hand-off per hop
                    unhashed.append(item)
            pending.append(item)
            have += len(item)
        if have >= HOP or records >= RECORDS_PER_HOP:
            hand(pending)
            pending, have, records = [], 0, 0
    if pending:
        hand(pending)
    return hasher.hexdigest(sha) if sha is not None else None
