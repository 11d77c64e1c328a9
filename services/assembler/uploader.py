"""Upload the archive's parts (cut and filled by the encoder's thread, ``bridge.pump``) up to N at
once, log them strictly in order.

Memory: one part being filled plus at most ``in_flight`` parts uploading — part size × (N + 1),
whatever the archive's size. A part's member records are stored as an object before its
``PartUploaded`` event, and the event is appended only after every earlier part's event.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import mmap
import threading
import time
from collections.abc import Callable

from services.assembler.encoder import Stopped
from services.assembler.plan import MemberRecord, check_part_budget
from shared.archive.crc import crc32
from shared.core import events as ev
from shared.core.keys import records_key
from shared.eventlog.jetstream import Conflict, Loaded
from shared.objectstore import ObjectStore
from shared.runtime import faults, tracing
from shared.runtime.worker import StandDown, StepContext


class PartCrc:
    """Fed to the archive hash's thread in place of the archive's SHA-256: updates it and the
    part's CRC-32 from the same read of the part buffer. ``failed``: an update raised, so ``value``
    is not the part's CRC (the uploader then computes it from the part itself)."""

    __slots__ = ("archive", "failed", "value")

    def __init__(self, archive: hashlib._Hash) -> None:
        self.archive = archive
        self.value = 0
        self.failed = False

    def update(self, data: bytes | memoryview) -> None:
        try:
            self.archive.update(data)
            self.value = crc32(data, self.value)
        except BaseException:
            self.failed = True  # the hashing thread reports the error; the step fails on the digest
            raise

    def hexdigest(self) -> str:
        return self.archive.hexdigest()


class PartUploader:
    def __init__(self, ctx: StepContext, store: ObjectStore, bucket: str, upload: ev.UploadStarted,
                 first_part: int, offset: int, in_flight: int,
                 on_part: Callable[[int, float], None] | None = None) -> None:
        self.ctx, self.store, self.bucket, self.upload = ctx, store, bucket, upload
        self.size = upload.part_size
        self.part = first_part
        self.offset = offset
        # Part buffers are allocated once and reused (one filling + ``in_flight`` uploading): no
        # part-sized allocation per part, which the allocator would keep as freed-but-resident memory.
        self.pool = BufferPool(self.size, max(1, in_flight) + 1, getattr(store, "aligned_part_buffers", False))
        self.slots = asyncio.Semaphore(max(1, in_flight))
        self.chain: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[object]] = set()
        self.on_part = on_part
        self.failure: BaseException | None = None
        self.lost: BaseException | None = None  # the fence loss (StandDown, or Stopped) that ended this attempt

    async def submit(self, buf: bytearray, n: int, records: list[bytes], done: tuple[int, int],
                     hashed: threading.Event | None = None, part_crc: PartCrc | None = None) -> None:
        """Upload a filled part (``n`` bytes of ``buf``, the records of the members ending in it),
        then log it after every earlier part. Waits for a free upload slot: the caller takes its
        next buffer only after this returns. ``hashed``: set once the archive hash has read
        ``buf``; the buffer is reused only then. ``part_crc``: the part's CRC-32, complete once
        ``hashed`` is set (None: the CRC is computed here)."""
        if self.failure is not None:  # stop streaming at once when a part could not be logged
            raise self.failure
        check_part_budget(self.part)
        await self.slots.acquire()
        if self.failure is not None:  # the part whose slot this is failed: store nothing more of the export
            self.slots.release()
            raise self.failure
        number, start = self.part, self.offset
        self.part += 1
        self.offset += n
        upload = self._spawn(self._upload(number, buf, n, hashed, part_crc))
        stored = self._spawn(self._store_records(number, records))  # beside the upload, not in the chain
        self.chain = self._spawn(self._log(self.chain, upload, stored, number, start, start + n, len(records),
                                           done))

    async def finish(self) -> tuple[int, int]:
        """Wait until every part is logged. Returns (archive size, last part)."""
        if self.chain is not None:
            await self.chain
        return self.offset, self.part - 1

    async def drain(self) -> None:
        """Wait for the parts already cut to be uploaded and logged (errors are the caller's)."""
        if self.chain is not None:
            await asyncio.gather(self.chain, return_exceptions=True)

    async def cancel(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _spawn(self, coro):
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _upload(self, number: int, buf: bytearray, n: int, hashed: threading.Event | None,
                      part_crc: PartCrc | None) -> tuple[str, int]:
        try:
            started = time.perf_counter()
            data = memoryview(buf)[:n]
            faults.point("assemble.before_upload")
            await faults.slow("assemble.upload")
            faults.count("uploaded", n)
            with tracing.span(f"upload part {number}", self.upload.export_id, **{"grove.part": number,
                                                                                  "grove.part_bytes": n}):
                etag = await self.store.upload_part(self.bucket, self.upload.archive_key, self.upload.upload_id,
                                                    number, data)
            # CRC-32 is the part's own digest; the store's ETag is its integrity check (S3 computes
            # it server-side; the filesystem store in its writing thread). A run from byte 0 gets
            # the CRC from the archive hash's thread, which reads the part anyway: no hop of its own.
            read = hashed is None or hashed.is_set() or await asyncio.to_thread(hashed.wait, HASH_WAIT_S)
            if part_crc is not None and read and not part_crc.failed:
                crc = part_crc.value
            else:  # a resumed run, or the hash failed or stalled on this part: never log a half-done CRC
                crc = await asyncio.to_thread(crc32, data)
            if self.on_part is not None:
                self.on_part(n, time.perf_counter() - started)
            return etag, crc
        except BaseException as e:
            # Known before the slot is free: the part waiting for it must not start (its member
            # records would be stored after a cancel's or an erasure's sweep — after an erasure for good).
            self.failure = self.failure or e
            raise
        finally:
            self.pool.give(buf, hashed)
            self.slots.release()

    async def _store_records(self, number: int, records: list[bytes]) -> str:
        """The part's member records as an object (a JSON list, as load_records reads it), stored
        while the part uploads: the log chain then only appends events (a PUT in the chain held
        every later part's event behind it, and on S3 each PUT is a request of its own)."""
        s = self.ctx.state
        rkey = records_key(s.tenant_id, s.export_id, number, self.upload.upload_id)
        await self.store.put(self.bucket, rkey, b"[" + b", ".join(records) + b"]", "application/json")
        return rkey

    async def _log(self, previous: asyncio.Task[None] | None, upload: asyncio.Task[tuple[str, int]],
                   stored: asyncio.Task[str], number: int, start: int, end: int, count: int,
                   done: tuple[int, int]) -> None:
        try:
            await self._log_part(previous, upload, stored, number, start, end, count, done)
        except BaseException as e:
            self.failure = self.failure or e
            raise

    async def _log_part(self, previous: asyncio.Task[None] | None, upload: asyncio.Task[tuple[str, int]],
                        stored: asyncio.Task[str], number: int, start: int, end: int, count: int,
                        done: tuple[int, int]) -> None:
        try:
            (etag, crc), rkey = await asyncio.gather(upload, stored)  # the records before the event
        except BaseException:
            # the records' write settled too (stored or failed): a part whose upload failed — an
            # upload an erasure aborted — must not have its records land after the attempt's end,
            # and after the run's clean-up of them
            await asyncio.gather(stored, return_exceptions=True)
            if previous is not None:  # earlier parts finish logging before this failure is seen
                await asyncio.gather(previous, return_exceptions=True)
            raise
        faults.point("assemble.uploaded_not_logged")
        await faults.slow("assemble.log_part")  # tests: hold an uploaded part's event back
        if previous is not None:
            await previous
        s = self.ctx.state
        event = ev.PartUploaded(
            export_id=s.export_id, tenant_id=s.tenant_id, part_number=number, etag=etag, crc32=crc,
            byte_start=start, byte_end=end, records_key=rkey, records_count=count,
            members_done=done[0], source_bytes_done=done[1],
        )
        digest = base64.b32encode(hashlib.sha256(f"{etag}:{crc}:{end - start}".encode()).digest()[:10]).decode()
        try:
            await self.ctx.append(event, msg_id=f"{s.export_id}:part:{number}:{digest}")
            faults.point("assemble.part_logged")
        except Conflict:
            loaded = await self.ctx.peek()  # a look: this attempt appends nothing more
            replicated = self.ctx.settings.stream_replicas > 1
            self.lost = Stopped() if loaded.state.stopping else StandDown(
                why_lost(self.ctx.loaded, loaded, number, replicated=replicated))
            raise self.lost from None

    @property
    def fenced_off(self) -> BaseException | None:
        """The fence loss (StandDown, or Stopped for an export that ended) that ended this attempt,
        if one did: it outranks any part's error (a part a zombie uploads into the upload the
        export's new owner completed meets NoSuchUpload — no reason to open another)."""
        return self.lost


def why_lost(decided: Loaded, now: Loaded, number: int, *, replicated: bool = False) -> str:
    """What the log says about an append of part ``number`` that lost the fence, for the "standing down"
    line: it said "another worker logged part N" whatever happened, and after ``grove-export restore
    --replace`` (the stream deleted and a backup put back) the log may not hold the export at all, or
    holds less of it than this attempt decided from: nobody logged anything.

    ``replicated``: the stream has several replicas, and each answers a read (a direct get) from its own
    copy — a follower's may not hold the newest messages yet, this attempt's own last part among them
    (acked by the leader and a quorum). Then a log that reads as older than the decision is not told
    from a replaced one, and the line says both."""
    if not now.state.exists:
        return (f"the export's log no longer holds it (it was at sequence {decided.last_seq}: the stream was "
                f"replaced, as `restore --replace` does, or the export erased)")
    if now.last_seq < decided.last_seq and replicated:
        return (f"the export's log as read goes back to sequence {now.last_seq}, before the {decided.last_seq} this "
                f"attempt decided from (the stream was replaced, as `restore --replace` does, or the read was "
                f"answered by a replica still behind)")
    if now.last_seq < decided.last_seq:
        return (f"the export's log goes back to sequence {now.last_seq}, before the {decided.last_seq} this attempt "
                f"decided from (the stream was replaced, as `restore --replace` does)")
    # Part N another worker logged is one the attempt did not decide from: a rewind redoes parts the log
    # already held (its own, or an earlier attempt's), and that part N in the log is no one else's.
    logged = next((p for p in now.state.parts if p.number == number), None)
    if logged is not None and logged != next((p for p in decided.state.parts if p.number == number), None):
        return f"another worker logged part {number}"
    return f"the export's log moved past sequence {decided.last_seq}: another worker appended to it"


def load_records(data: bytes) -> list[MemberRecord]:
    return [MemberRecord.model_validate(r) for r in json.loads(data)]


class BufferPool:
    """Part buffers of one size, shared by the exports of this process and reused: allocating (and
    zeroing) 8 MiB per part, or per small export, costs time and leaves the allocator holding freed
    memory. Each uploader takes at most ``in_flight + 1`` (its slots bound it); at most ``keep``
    free buffers stay around. A buffer may come back before the archive hash has read it: ``take``
    (in the encoder's thread) waits for that, oldest first, instead of allocating another."""

    _free: dict[tuple[int, bool], list[tuple[bytearray, threading.Event | None]]] = {}
    # Several exports' encoder threads take and the event loop gives back: the check and the pop
    # must be one step, whatever the interpreter's GIL happens to make atomic.
    _lock = threading.Lock()

    def __init__(self, size: int, keep: int, aligned: bool = False) -> None:
        self.size = size
        self.keep = keep
        # aligned: page-aligned memory (an anonymous mapping) for a store that writes with O_DIRECT
        self.aligned = aligned

    def _new(self) -> bytearray:
        if self.aligned:  # an mmap takes slice assignment and memoryviews as a bytearray does
            return mmap.mmap(-1, self.size)  # type: ignore[return-value]
        return bytearray(self.size)

    def take(self) -> bytearray:
        with self._lock:
            free = self._free.get((self.size, self.aligned))
            item = free.pop(0) if free else None
        if item is None:
            return self._new()
        buf, hashed = item
        if hashed is not None and not hashed.wait(HASH_WAIT_S):  # a stuck hasher: do not reuse it
            return self._new()
        return buf

    def give(self, buf: bytearray, hashed: threading.Event | None = None) -> None:
        with self._lock:
            free = self._free.setdefault((self.size, self.aligned), [])
            if len(free) < self.keep:
                free.append((buf, hashed))


HASH_WAIT_S = 30.0
