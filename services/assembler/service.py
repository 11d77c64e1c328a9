"""The assemble step: snapshot → streamed ZIP → logged parts → ArchiveAssembled.

Decides from the fold: create the upload once (UploadStarted), resume after the last contiguous
logged part, rewind when a member already partly uploaded turns out changed, restart the
straddling member when the encoder's fingerprint moved.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from services.assembler.ahead import DeflateAhead, last_texts
from services.assembler.bridge import TEXT_WINDOW, ReadAhead, TextWindows, pump, source_opener
from services.assembler.encoder import INLINE, ArchiveStream, Rewind
from services.assembler.hashing import ThreadHasher
from services.assembler.plan import ResumeFold, ResumePoint, part_size, rewind_target
from services.assembler.spill import RecordSpill, SpilledRecords, load_snapshot
from services.assembler.uploader import PartUploader, load_records
from shared.archive import layout
from shared.archive.zipmember import fingerprint
from shared.core import events as ev
from shared.core.keys import records_prefix
from shared.core.lifecycle import PartInfo, logged_upload_usable
from shared.core.snapshot import Snapshot, SnapshotMember
from shared.eventlog.jetstream import Conflict, Loaded
from shared.objectstore import NoSuchUpload, ObjectStore, StoreError, upload_open
from shared.runtime import metrics
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepError

log = logging.getLogger(__name__)
TEXT_KINDS = frozenset({"readme", "post", "page", "index"})
RECORDS_AHEAD = 8  # parts whose records a resume reads ahead: one request each, in flight together


def marked(chunks: Iterator[bytes], moved: Callable[[], None]) -> Iterator[bytes]:
    """``chunks``, calling ``moved`` before each: the step is alive while its sources flow — also
    while a resume re-reads the straddling member and drops its bytes, when no part is logged
    (the worker stops a step that stops moving). Closing this closes ``chunks`` at once."""
    try:
        for chunk in chunks:
            moved()
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def should_run(loaded: Loaded) -> bool:
    s = loaded.state
    return not s.stopping and s.cataloged is not None and s.assembled is None


class Assembler:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.bucket = settings.buckets.exports
        # exports this process is assembling now, as (tenant, export): export ids are unique per tenant only
        self.active: set[tuple[str, str]] = set()
        # Each export's encoder (``bridge.pump``) runs on a thread of this pool, never on the event
        # loop's default executor: a pump waits for the loop (text windows, source reads, part
        # uploads), and the filesystem store does its file I/O on the default executor. With as
        # many exports running as that executor has threads (min(32, CPUs + 4)), every thread held
        # a pump waiting for I/O that could not start — a deadlock, and the in-progress acks kept
        # the stuck exports from every other replica (seen: GROVE_CONCURRENCY=8 on 2 CPUs). Twice
        # the slots: a cancelled export's encoder may still be stopping when the next one starts.
        # Never shut down: a message taken while the service stops must not fail its step on a
        # closed pool (idle threads end with the process).
        self.encoders = ThreadPoolExecutor(max_workers=2 * settings.concurrency,  # >= 1: Settings checks it
                                           thread_name_prefix="encoder")

    def pace(self, tenant_id: str, export_id: str) -> Callable[[float, int], None]:
        """Fairness inside one replica: an export past ``pace_after_bytes`` gives way to the others
        beside it — after each hop it sleeps as long as the hop took, once per other
        export (capped), so a huge export slows to its share and a small one is not kept waiting
        behind its I/O. Alone, it runs at full speed."""
        def pace(spent: float, emitted: int) -> None:
            others = len(self.active - {(tenant_id, export_id)})
            if others and emitted > self.settings.pace_after_bytes:
                time.sleep(min(spent * others, 0.25))
        return pace

    async def __call__(self, ctx: StepContext) -> None:
        mine = (ctx.state.tenant_id, ctx.state.export_id)
        self.active.add(mine)
        try:
            await self._assemble(ctx)
        finally:
            self.active.discard(mine)

    async def _assemble(self, ctx: StepContext) -> None:
        c = ctx.state.cataloged
        assert c is not None
        # Into a temporary file, members parsed one at a time: memory stays flat in the member count.
        snapshot = await load_snapshot(self.store.get(self.bucket, c.snapshot_key, chunk_size=1 << 20),
                                       c.snapshot_sha256)
        if snapshot is None:
            raise StepError("the frozen snapshot does not match its checksum")
        upload, keep = await self._upload(ctx, c)
        skips: dict[int, str] = {}
        resumed = bool(ctx.state.parts)
        renewed = False
        while True:
            rp = await self._resume_point(ctx, keep)
            resumed = resumed or rp.offset > 0
            try:
                size, last, sha, records = await self._stream(ctx, snapshot, upload, rp, skips)
                break
            except Rewind as r:
                log.info("%s: rewinding past member %s (%s)", c.export_id, r.index, r.reason)
                skips[r.index] = r.reason
                keep = rewind_target(r.member_offset, upload.part_size, len(ctx.state.parts)) - 1
                resumed = True
            except NoSuchUpload:
                # The upload vanished under this attempt (aborted in the store): once per attempt, the
                # same rule as at the start decides — a new upload from byte 0 when it is gone. (A
                # cancel's abort ends here too: the new UploadStarted then loses the fence.)
                if renewed:
                    raise
                renewed = True
                # As the stream's leader holds the log: on a stream of several replicas a direct get may
                # be answered by a follower still behind, which may not hold the export at all yet.
                now = (await ctx.peek_at_leader()).state
                if not now.exists:
                    # Erased while this attempt ran (an erasure cancels first: its abort ends here), or the
                    # stream replaced by an older backup (`restore --replace`). The part records this attempt
                    # stored for the gone upload are the tenant's member names and paths, read by no run
                    # again (a new upload starts from byte 0), and after an erasure nobody else removes
                    # them — the canceller's sweep and the erasure ran before they landed, and the janitor
                    # leaves objects of an export the log does not hold while newer than its oldest event.
                    # Only those: the snapshot and rendered posts stay — the erasure removed them already,
                    # a newer backup restored resumes from them, and a live export needs them.
                    await self._remove_gone_records(c, upload)
                    raise Conflict(f"{c.export_id}: the export is no longer in the log; no new upload") from None
                if now.stopping:
                    # a cancel's abort (the export ends): open no upload only to abort it again — left
                    # open until the refused UploadStarted's abort, it was one after ExportCancelled
                    raise Conflict(f"{c.export_id}: the export is ending; no new upload") from None
                upload, keep = await self._upload(ctx, c)
        metrics.MEMBERS_STREAMED.inc(records.ok_count)
        await ctx.append(ev.ArchiveAssembled(
            export_id=c.export_id, tenant_id=c.tenant_id, archive_key=upload.archive_key,
            upload_id=upload.upload_id, size_bytes=size, part_count=last,
            member_count=records.ok_count,
            error_count=layout.error_count(snapshot, records.skipped), sha256=None if resumed else sha,
            item_counts=layout.held_counts(snapshot, records.skipped),
        ), msg_id=f"{c.export_id}:ArchiveAssembled")
        records.close()

    async def _remove_gone_records(self, c: ev.ExportCataloged, upload: ev.UploadStarted) -> None:
        """Delete the part records of ``upload`` once the store says it is gone (a store that does not
        answer, or says it is open, leaves them: the sweep at the export's end, or the janitor's)."""
        try:
            if await upload_open(self.store, self.bucket, upload.archive_key, upload.upload_id):
                return
            prefix = records_prefix(c.tenant_id, c.export_id, upload.upload_id)
            keys = [o.key for o in await self.store.list_keys(self.bucket, prefix)]
            if keys:
                await self.store.delete_many(self.bucket, keys)
        except StoreError as e:
            log.warning("%s: the gone upload's part records are left (%s)", c.export_id, e)

    async def _upload(self, ctx: StepContext, c: ev.ExportCataloged) -> tuple[ev.UploadStarted, int | None]:
        """The upload to write into, and how many logged parts stay valid (None = all).

        The logged upload is used only while the store still holds it (the lifecycle's
        ``logged_upload_usable``, which the operator's retry asks too): one aborted by the lifecycle
        rule after a long outage, by MinIO's purge of stale uploads or by anyone else took its parts
        with it, and every attempt into it would fail alike. Then a new upload, from byte 0."""
        fp = fingerprint()
        current = ctx.state.upload
        if current is not None and not logged_upload_usable(
                ctx.state, upload_open=await upload_open(self.store, self.bucket, current.archive_key,
                                                         current.upload_id)):
            log.warning("%s: upload %s is gone from the store (aborted); starting a new upload from byte 0, "
                        "the %d parts logged for it are not reused", c.export_id, current.upload_id,
                        len(ctx.state.parts))
            current = None  # the new UploadStarted drops the gone upload's parts from the fold
        if current is None:
            size = part_size(c.total_bytes, self.settings.min_part_size)
            upload_id = await self.store.create_multipart(self.bucket, c.archive_key, "application/zip", size)
            started = ev.UploadStarted(
                export_id=c.export_id, tenant_id=c.tenant_id, upload_id=upload_id, archive_key=c.archive_key,
                part_size=size, fingerprint=fp)
            try:
                await ctx.append(started, msg_id=f"{c.export_id}:UploadStarted")
            except Conflict:
                logged = (await ctx.peek()).state.upload
                if logged is None or logged.upload_id != upload_id:  # else its own went in, its reply lost
                    await self.store.abort_multipart(self.bucket, c.archive_key, upload_id)
                raise
            return started, None
        if current.fingerprint == fp:
            return current, None
        # A different encoder (zlib or stream-zip moved): finished members stay, the straddler is redone.
        rp = await self._resume_point(ctx, None)
        keep = rewind_target(rp.member_offset, current.part_size, len(ctx.state.parts)) - 1
        started = ev.UploadStarted(
            export_id=c.export_id, tenant_id=c.tenant_id, upload_id=current.upload_id,
            archive_key=current.archive_key, part_size=current.part_size, fingerprint=fp)
        await ctx.append(started)
        return started, keep

    async def _resume_point(self, ctx: StepContext, keep: int | None) -> ResumePoint:
        """The logged parts' records folded in order, a few parts' records read ahead (thousands of
        parts take a while to read back) and none kept in memory: they go to a spill file."""
        parts = ctx.state.parts if keep is None else ctx.state.parts[:keep]
        fold = ResumeFold(SpilledRecords())

        async def read(key: str) -> bytes:
            return await self.store.read(self.bucket, key)

        ahead: deque[tuple[PartInfo, asyncio.Task[bytes]]] = deque()
        try:
            for part in parts:
                ahead.append((part, asyncio.ensure_future(read(part.records_key))))
                if len(ahead) > RECORDS_AHEAD:
                    await self._fold_part(ctx, fold, *ahead.popleft())
            while ahead:
                await self._fold_part(ctx, fold, *ahead.popleft())
        finally:
            for _, task in ahead:
                task.cancel()
        return fold.point()

    @staticmethod
    async def _fold_part(ctx: StepContext, fold: ResumeFold, part: PartInfo, read: asyncio.Task[bytes]) -> None:
        fold.part(part.number, part.byte_end, load_records(await read))
        ctx.progress()

    async def _stream(self, ctx: StepContext, snapshot: Snapshot, upload: ev.UploadStarted, rp: ResumePoint,
                      skips: dict[int, str]) -> tuple[int, int, str | None, RecordSpill]:
        loop = asyncio.get_running_loop()
        throttle = self.settings.demo_throttle_s

        def open_source(m: SnapshotMember) -> Iterator[bytes]:
            if throttle > 0:  # a demo aid, off by default: wakes at once on cancel
                stream.stop.wait(throttle)
            ctx.progress()
            if m.kind in TEXT_KINDS:
                data = texts.read(m)
                if data is not None:
                    return iter([data])
            else:
                texts.release()  # texts come first: free the window for the rest of the stream
            return marked(opener(m), ctx.progress)

        # The two SHA-256 passes (each member's, the archive's) run on threads of their own, in
        # parallel with each other and with this export's encoding thread — except the archive's
        # when it fits one part: then a thread (started, fed, joined) costs more than the hash.
        hasher = ThreadHasher()
        c = ctx.state.cataloged  # sources plus ~1 KiB a member of headers, records and manifest
        small = c is not None and c.total_bytes + c.member_count * 1024 < self.settings.min_part_size
        archive_hasher = INLINE if small else ThreadHasher()
        # The large deflated members (a big blog's index.json and feed.json) are compressed on
        # another core while the encoder is still at the text members before them.
        stop = threading.Event()
        early = last_texts(snapshot.members, rp.member_index, lambda m: m.kind in TEXT_KINDS, skips, TEXT_WINDOW)
        ahead = None
        if early:
            # a view of its own: a spilled snapshot's member list caches the member last parsed,
            # and that cache is the encoder thread's
            ahead_texts = TextWindows(self.store, snapshot.members[0:], loop, stop)
            ahead = DeflateAhead(early, ahead_texts.read, stop, ahead_texts.release)  # no window held after
        stream = ArchiveStream(snapshot, open_source, rp, dict(skips), stop=stop, hasher=hasher, ahead=ahead)
        opener = source_opener(self.store, loop, stream.stop, snapshot.members,
                               lambda m: m.index not in skips and m.kind not in TEXT_KINDS)
        texts = TextWindows(self.store, snapshot.members, loop, stream.stop)
        uploader = PartUploader(ctx, self.store, self.bucket, upload, rp.next_part, rp.offset,
                                self.settings.parts_in_flight, metrics.observe_part)
        try:
            # with this task's context (its trace span and log fields), as asyncio.to_thread would:
            # the part uploads the encoder starts on the loop are children of this attempt's span
            run = functools.partial(contextvars.copy_context().run, pump, stream, uploader, loop, rp.offset == 0,
                                    self.pace(ctx.state.tenant_id, ctx.state.export_id), archive_hasher)
            sha = await loop.run_in_executor(self.encoders, run)
            size, last = await uploader.finish()
            if ahead is not None and ahead.taken:
                log.info("%s: %d large member(s) deflated ahead on another core", upload.export_id, ahead.taken)
        except Rewind:
            await uploader.drain()  # parts already cut get logged; the rewind redoes them anyway
            if uploader.fenced_off is not None:  # the log moved under a drained part: not ours any more
                raise uploader.fenced_off from None
            raise
        except Exception:
            # A failed attempt (a store outage): the parts already uploaded still get logged — real
            # progress for the retry, and no append of ours lands after we gave up (it would move
            # the fence under the next attempt). Then stop what is left.
            stream.stop.set()
            await uploader.drain()
            await uploader.cancel()
            if uploader.fenced_off is not None:
                raise uploader.fenced_off from None
            raise
        except BaseException:  # cancelled or shutting down: stop at once
            stream.stop.set()
            await uploader.cancel()
            raise
        finally:
            if isinstance(opener, ReadAhead):
                opener.close()  # a member read ahead that the stream did not reach
            for h in (hasher, archive_hasher) if ahead is None else (ahead, hasher, archive_hasher):
                if h.running:  # a join: off the loop (an export of small files never starts one)
                    await asyncio.to_thread(h.close)
                else:
                    h.close()  # nothing to join; an update after this (a stopped encoder) raises
        return size, last, sha, stream.records
