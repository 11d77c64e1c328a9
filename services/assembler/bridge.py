"""Between the encoder thread and the event loop: sources read by the loop, bytes handed back.

The thread does the CPU work; the loop does all I/O (store reads, uploads, the log, heartbeats).
A source read crosses per 1 MiB, the archive per part (8 MiB or more), so the cost of a hop is small
against the work it carries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from services.assembler.encoder import ArchiveStream, Stopped
from services.assembler.hashing import Hasher
from services.assembler.plan import MemberRecord
from services.assembler.uploader import PartCrc, PartUploader
from shared.core.snapshot import SnapshotMember
from shared.objectstore import ObjectNotFound, ObjectStore, PreconditionFailed

HOP = 1 << 20
T = TypeVar("T")


def call(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], stop: threading.Event | None) -> T:
    """Run ``coro`` on the loop from this thread; give up promptly when ``stop`` is set."""
    return wait(asyncio.run_coroutine_threadsafe(coro, loop), stop)


def wait(fut: concurrent.futures.Future[T], stop: threading.Event | None) -> T:
    """The result of ``fut`` (running on the loop); give up promptly when ``stop`` is set."""
    while True:
        try:
            return fut.result(timeout=0.1)
        except concurrent.futures.TimeoutError:
            if stop is not None and stop.is_set():
                fut.cancel()
                raise Stopped() from None


class SourceReader:
    """A sync iterator over one member's bytes, read by the loop with If-Match on the snapshot ETag.
    One block ahead: while this thread encodes a block, the loop already reads the next (else the
    encoder waited for every network read, and the loop for every block's encoding)."""

    def __init__(self, store: ObjectStore, member: SnapshotMember, loop: asyncio.AbstractEventLoop,
                 stop: threading.Event | None = None) -> None:
        self.loop = loop
        self.stop = stop
        self.member = member
        self.gen: AsyncGenerator[bytes, None] = store.get(  # type: ignore[assignment]
            member.bucket, member.key, start=member.start, end=member.start + member.size,
            if_match=member.etag, chunk_size=HOP,
        )
        self.done = False
        self.ahead: concurrent.futures.Future[bytes | None] | None = None

    def start(self) -> None:
        """Request the first block now, before the encoder asks for it."""
        if self.ahead is None and not self.done:
            self.ahead = asyncio.run_coroutine_threadsafe(self._next(), self.loop)

    def close(self) -> None:
        """Give up a reader the encoder never read to its end: stop its request, release its body."""
        ahead, self.ahead = self.ahead, None
        if ahead is not None and not ahead.done():
            ahead.cancel()  # cancels the read inside the generator, which closes the response
        elif not self.done:
            asyncio.run_coroutine_threadsafe(self.gen.aclose(), self.loop)

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
        if self.ahead is None:
            if self.done:
                raise StopIteration
            self.start()
        assert self.ahead is not None
        block = wait(self.ahead, self.stop)
        # _next has finished (so self.done is current): start the next read before returning
        self.ahead = None if self.done or block is None else \
            asyncio.run_coroutine_threadsafe(self._next(), self.loop)
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

            blocking = getattr(self.store, "get_blocking", None)
            self.release()
            try:
                if blocking is not None:  # the filesystem store: read here, as its media are (no hops)
                    self.data = b"".join(blocking(m.bucket, m.key, start=m.start, end=end, if_match=m.etag))
                else:
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


AHEAD = 1  # members whose GET starts while the encoder reads the one before them


class ReadAhead:
    """Opens members' sources through the loop (S3), the following members' GETs already started:
    when the encoder opens a member, the GET of the next wanted one starts too (its first block
    read), so that request's round trip — a new connection for every request on some stores —
    overlaps the reading and encoding of the member in hand instead of stalling the encoder once per
    member. Started only once its member's last byte was read, the next GET left the encoder waiting
    for a source block in 80 % of its time on the S3 bench (py-spy), with neither the loop nor the
    store busy. At most ``depth`` members and one block of each ahead. Called in the encoder's
    thread; :meth:`close` may come from the loop while it still runs (a cancelled step)."""

    def __init__(self, store: ObjectStore, members: Sequence[SnapshotMember], loop: asyncio.AbstractEventLoop,
                 stop: threading.Event | None = None,
                 wanted: Callable[[SnapshotMember], bool] = lambda m: True, depth: int = AHEAD) -> None:
        self.store, self.members, self.loop, self.stop, self.wanted = store, members, loop, stop, wanted
        self.depth = depth
        self.ahead: deque[SourceReader] = deque()  # started, in member order
        self.cursor = 0  # the next member to consider reading ahead
        self.closed = False  # nothing more is read ahead
        self.lock = threading.Lock()

    def __call__(self, m: SnapshotMember) -> SourceReader:
        with self.lock:  # against a close from the loop in between a check and its act
            while self.ahead and self.ahead[0].member.index < m.index:
                self.ahead.popleft().close()  # passed over (skipped, say): its read is given up
            if self.ahead and self.ahead[0].member.index == m.index:
                reader = self.ahead.popleft()
            else:
                reader = SourceReader(self.store, m, self.loop, self.stop)
            reader.start()  # its GET first, then the following members'
            self.cursor = max(self.cursor, m.index + 1)
            while len(self.ahead) < self.depth and self.cursor < len(self.members) and not self.closed and \
                    not (self.stop is not None and self.stop.is_set()):
                nxt = self.members[self.cursor]
                self.cursor += 1
                if self.wanted(nxt):
                    following = SourceReader(self.store, nxt, self.loop, self.stop)
                    following.start()
                    self.ahead.append(following)
            return reader

    def close(self) -> None:
        with self.lock:  # held only while readers are handed their cancels: never across a wait
            self.closed = True
            while self.ahead:
                self.ahead.popleft().close()


def source_opener(store: ObjectStore, loop: asyncio.AbstractEventLoop, stop: threading.Event | None = None,
                  members: Sequence[SnapshotMember] = (), wanted: Callable[[SnapshotMember], bool] = lambda m: True,
                  ) -> Callable[[SnapshotMember], Iterator[bytes]]:
    """How the encoder opens a member: the filesystem store reads in the encoder's thread; another
    store through the loop, members ahead (``members``: the snapshot's, in archive order)."""
    blocking = getattr(store, "get_blocking", None)
    if blocking is not None:  # the filesystem store: read in this (the encoder's) thread, no hops
        return lambda m: blocking(m.bucket, m.key, start=m.start, end=m.start + m.size, if_match=m.etag,
                                  chunk_size=HOP)
    return ReadAhead(store, members, loop, stop, wanted)


Pace = Callable[[float, int], None]


def pump(stream: ArchiveStream, uploader: PartUploader, loop: asyncio.AbstractEventLoop, hash_all: bool,
         pace: Pace | None = None, archive_hasher: Hasher | None = None) -> str | None:
    """Run in a thread: drive the stream, copy its bytes into part buffers (the one copy of each
    byte, made here and not on the event loop) and hand each full part, with the records of the
    members that end in it, to ``uploader`` — one hop to the loop per part, not per chunk. A part
    is cut lazily: the newest byte always stays in the open part, so a member's record goes to the
    part holding its last byte. Returns the SHA-256 of everything emitted when ``hash_all`` (a
    run from byte 0): ``archive_hasher`` (default: the stream's) reads each part buffer once, on
    another core, a hop's worth at a time as it fills.
    ``pace(seconds, bytes_so_far)`` is called after each part with the time since the last one;
    it may sleep to give way to other exports (fairness)."""
    sha = hashlib.sha256() if hash_all else None
    hasher, pool, size = archive_hasher or stream.hasher, uploader.pool, uploader.size
    buf: bytearray | None = None
    fill = emitted = 0
    # The open part's member records, already as JSON: ~0.5 KB each instead of ~2.4 KB as models
    # (a part of small files holds thousands of them, and N + 1 parts may be held at once).
    records: list[bytes] = []
    mark = time.perf_counter()
    hashed_to = 0  # bytes of the open part already queued for the archive hash
    read: threading.Event | None = None  # set once the hash has read them (FIFO: all before too)
    part_crc: PartCrc | None = None  # the open part's CRC-32, fed by the archive hash's thread

    def hash_to(part: bytearray, end: int) -> None:
        """Queue the part's bytes up to ``end`` for the archive hash (and the part's CRC), in slices
        of about a hop as they are written (not one 8 MiB item that member chunks would wait behind)."""
        nonlocal hashed_to, read, part_crc
        if sha is not None and end > hashed_to:
            part_crc = part_crc or PartCrc(sha)
            read = hasher.update_buffer(part_crc, memoryview(part)[hashed_to:end])
            hashed_to = end

    def cut() -> None:
        nonlocal buf, fill, records, emitted, mark, hashed_to, read, part_crc
        if stream.stop.is_set():
            raise Stopped()
        part = buf if buf is not None else pool.take()
        records.extend(r.model_dump_json().encode() for r in stream.settle())  # every member ended so far
        hash_to(part, fill)
        hashed, read, crc = read, None, part_crc
        part_crc = None
        done = (stream.progress.members_done, stream.progress.source_bytes)
        buf = None  # handed over: the uploader gives it back to the pool
        call(loop, uploader.submit(part, fill, records, done, hashed, crc), stream.stop)
        emitted += fill
        fill, hashed_to, records = 0, 0, []
        if pace is not None:
            now = time.perf_counter()
            pace(now - mark, emitted)
            mark = time.perf_counter()

    try:
        for item in stream:
            if isinstance(item, MemberRecord):
                records.append(item.model_dump_json().encode())
                continue
            view = memoryview(item)
            while view:
                if buf is None:
                    buf, fill = pool.take(), 0
                elif fill == size:
                    cut()
                    continue
                n = min(len(view), size - fill)
                buf[fill:fill + n] = view[:n]
                fill += n
                view = view[n:]
                if fill - hashed_to >= HOP:
                    hash_to(buf, fill)
        if fill or records:
            cut()
    finally:
        if buf is not None:
            pool.give(buf, read)
    return hasher.hexdigest(sha) if sha is not None else None
