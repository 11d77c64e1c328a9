"""The finalize step. ``FinalizeStarted`` is appended fenced before the upload is completed, so a
cancel racing this step resolves to one outcome: the log holds either CancelRequested before
FinalizeStarted (the finalizer stands down) or FinalizeStarted first (the gateway refuses the cancel).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta

from shared.core import events as ev
from shared.eventlog.jetstream import Loaded
from shared.objectstore import (
    CompletedPart,
    NoSuchUpload,
    ObjectNotFound,
    ObjectStore,
    PartsTooSmall,
    StoreError,
    StoreRefused,
)
from shared.runtime import faults, metrics
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepError

log = logging.getLogger(__name__)

def should_run(loaded: Loaded) -> bool:
    s = loaded.state
    return s.assembled is not None and s.completed is None and not s.terminal and not s.cancel_wins


class UploadGone(StepError):
    """The upload was aborted in the store before it was completed (the lifecycle rule, MinIO's purge
    of stale uploads, anyone) and no archive was completed from it. Permanent for this step: its
    parts went with it, and retrying the completion cannot bring them back. The export fails at
    once; ``grove-export retry`` then goes on from assemble with a new upload (the lifecycle's
    ``logged_upload_usable`` says the logged one is gone), not from finalize."""

    permanent = True


class ForeignPart(StepError):
    """A part in the store is not the logged one (a zombie attempt's, uploaded after ours): the upload
    can never be completed with the logged parts and this step has no bytes to send again. Permanent;
    the upload is aborted first, so ``grove-export retry`` goes on from assemble with a new upload (the
    lifecycle's ``logged_upload_usable``), not from finalize into the same refusal for good."""

    permanent = True


class NotTheArchive(StepError):
    """The store completed the upload, but the object it then holds at the key is not the archive the
    log names: another size, or another ETag than the completion answered. The export must never be
    completed with it, and the upload is spent, so retrying the completion cannot help: permanent.
    The object is left alone: a finalizer that stalled between its completion and its HEAD may be
    looking at a newer archive a retry put there meanwhile (as :meth:`Finalizer._completed_before`
    leaves it). Nothing offers a failed export's key for download, and ``grove-export retry`` goes on
    from assemble with a new upload, which replaces it."""

    permanent = True


class Incoherent(StepError):
    """The store's listing of the upload contradicts itself (a part listed twice with two ETags):
    no account of the upload to abort it on. Retried; the upload stays."""


def check_parts(logged: list[tuple[int, str]], listed: dict[int, str]) -> str | None:
    """Why the store's parts do not match the log, or None when every logged part is there."""
    for number, etag in logged:
        if number not in listed:
            return f"part {number} is missing from the upload"
        if listed[number] != etag:
            return f"part {number} in the store is not the logged one"
    return None


class Finalizer:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.bucket = settings.buckets.exports

    async def __call__(self, ctx: StepContext) -> None:
        s = ctx.state
        a = s.assembled
        assert a is not None
        await faults.slow("finalize.before_start")
        if not s.finalize_started:
            await ctx.append(ev.FinalizeStarted(export_id=a.export_id, tenant_id=a.tenant_id),
                             msg_id=f"{a.export_id}:FinalizeStarted")
        faults.point("finalize.started")
        parts = [p for p in ctx.state.parts if p.number <= a.part_count]
        etag = await self._finish(a, parts)
        ctx.progress()  # the complete can take a while on a big archive; the hash below marks its own
        sha = a.sha256 or await self._hash(a, etag, ctx.progress)
        now = ctx.clock.now()
        await ctx.append(ev.ExportCompleted(
            export_id=a.export_id, tenant_id=a.tenant_id, archive_key=a.archive_key, size_bytes=a.size_bytes,
            sha256=sha, item_counts=a.item_counts or ctx.state.item_counts(), error_count=a.error_count,
            expires_at=now + timedelta(days=self.settings.archive_ttl_days),
        ), msg_id=f"{a.export_id}:ExportCompleted:{etag}")

    async def _finish(self, a: ev.ArchiveAssembled, parts: list) -> str:
        """Complete the upload and check that the object at the key is the archive the log names.
        The store's time for the two (all of this step's time but two log appends: nothing is read
        back unless a resume lost the running hash) is logged and observed: on S3 it grows with the
        archive, on some S3-compatible stores by minutes."""
        spent: list[float] = []  # the two requests alone: anything else the step does is not the store's
        etag = await self._complete(a, parts, spent)
        faults.point("finalize.completed_not_logged")
        await faults.slow("finalize.completed")  # tests: hold a completed archive's ExportCompleted back
        started = time.perf_counter()
        head = await self.store.head(self.bucket, a.archive_key)
        seconds = sum(spent) + time.perf_counter() - started
        metrics.ARCHIVE_COMPLETE.observe(seconds)
        log.info("%s: the store completed the upload (%d parts, %d bytes) and described it in %.3f s",
                 a.export_id, len(parts), a.size_bytes, seconds,
                 extra={"export_id": a.export_id, "tenant_id": a.tenant_id, "seconds": round(seconds, 3)})
        if head.size != a.size_bytes:
            problem = f"it is {head.size} bytes, {a.size_bytes} were written"
        elif head.etag != etag:
            problem = "storage describes another object than the one it completed"
        else:
            return etag
        raise NotTheArchive(f"The finished archive in storage is not the one assembled ({problem}); a retry "
                            "assembles it again. Nothing is wrong with your content.")

    async def _complete(self, a: ev.ArchiveAssembled, parts: list, spent: list[float] | None = None) -> str:
        """Complete the upload with the logged parts. The store checks each one itself (S3 refuses
        a missing part or another ETag: ``InvalidPart``; the filesystem store the same), so the
        parts are listed only to say why it refused — not before every completion (a request).
        ``spent`` gets the completion request's own seconds when it answers."""
        done = [CompletedPart(p.number, p.etag) for p in parts]
        try:
            started = time.perf_counter()
            etag = await self.store.complete_multipart(self.bucket, a.archive_key, a.upload_id, done)
            if spent is not None:
                spent.append(time.perf_counter() - started)
            return etag
        except NoSuchUpload:
            return await self._completed_before(a)
        except PartsTooSmall:  # refused for good: ended, so a retry assembles again (not finalize into it)
            await self.store.abort_multipart(self.bucket, a.archive_key, a.upload_id)
            raise
        except StoreRefused:
            raise
        except StoreError as e:
            try:
                listing = await self.store.list_parts(self.bucket, a.archive_key, a.upload_id)
            except NoSuchUpload:
                return await self._completed_before(a)  # a completion of ours landed after all
            listed: dict[int, str] = {}
            for p in listing:  # in any order; a part twice with two ETags: no account to abort on
                if listed.setdefault(p.part_number, p.etag) != p.etag:
                    raise Incoherent(f"cannot complete: the store listed part {p.part_number} twice, "
                                     "with two different contents") from e
            problem = check_parts([(p.number, p.etag) for p in parts], listed)
            if problem and any(listed.get(p.number, p.etag) != p.etag for p in parts):
                await self.store.abort_multipart(self.bucket, a.archive_key, a.upload_id)
                raise ForeignPart(f"The partly saved archive cannot be completed: {problem} (another attempt's); "
                                  "a retry assembles it again. Nothing is wrong with your content.") from e
            if problem:  # a part missing from the listing: the upload stays (nothing lost)
                raise StepError(f"cannot complete: {problem}") from e
            raise

    async def _completed_before(self, a: ev.ArchiveAssembled) -> str:
        """The upload is gone: completed before a crash (the object is there with the logged size)?"""
        try:
            head = await self.store.head(self.bucket, a.archive_key)
        except ObjectNotFound:
            raise UploadGone("The partly saved archive was removed from storage before it could be completed; "
                             "nothing is wrong with your content.") from None
        if head.size == a.size_bytes:
            return head.etag
        # Permanent, like a gone upload; the object is left alone: a finalizer whose log is stale (its
        # upload replaced by a retry's) would be looking at the newer archive.
        raise UploadGone("The partly saved archive is no longer in storage, and what storage holds in its place "
                         "is not the archive assembled; a retry assembles it again. Nothing is wrong with your "
                         "content.") from None

    async def _hash(self, a: ev.ArchiveAssembled, etag: str, moved: Callable[[], None]) -> str:
        """After a resume the running hash was lost: read the completed object back (``moved``
        after each chunk: a big archive takes minutes, and a step that stops moving is stopped).
        Only the object just checked (``If-Match`` its ETag), and all of it: a read that gives another
        length (a cache's cut copy, a connection that ended early and cleanly) is no hash of the archive."""
        sha = hashlib.sha256()
        read = 0
        async for chunk in self.store.get(self.bucket, a.archive_key, if_match=etag, chunk_size=4 << 20):
            await asyncio.to_thread(sha.update, chunk)
            read += len(chunk)
            moved()
        if read != a.size_bytes:
            raise StepError(f"the archive read back from storage for its checksum was {read} bytes, "
                            f"not {a.size_bytes}; it will be read again")
        return sha.hexdigest()
