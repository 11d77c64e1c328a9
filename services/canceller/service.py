"""Cancel: abort the multipart upload, re-list until no part remains, then append ExportCancelled.

A cancel always ends ``cancelled`` for the person who asked. When the store refuses or fails the
abort (a 5xx past the adapter's retries, a 405 from a store without the call, a policy without
``s3:AbortMultipartUpload``), the attempt is counted in the log like any step's (``CancelAttemptFailed``,
retried with a growing delay); after the last attempt the export is recorded cancelled anyway
(``aborted_upload=False``) and the open upload is left to the janitor's orphan sweep, which
keeps trying. The tenant is never held by an upload nobody can abort.

Nothing gives up silently: ``aborted_upload`` is true only when the store really holds no part of
the upload any more, and rounds that all lose to a moving log raise a :class:`StepError` (counted
and retried), never fall through without ``ExportCancelled``.
"""

from __future__ import annotations

import asyncio
import logging

from shared.core import events as ev
from shared.core.reasons import is_permanent
from shared.core.snapshot import remove_work_objects
from shared.eventlog.jetstream import Conflict, Loaded
from shared.objectstore import NoSuchUpload, ObjectStore, StoreError
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepError

log = logging.getLogger(__name__)


def should_run(loaded: Loaded) -> bool:
    """A cancel wins unless FinalizeStarted came first (then the finalizer completes)."""
    return loaded.state.cancel_wins


ROUNDS = 20  # fenced tries at ExportCancelled per attempt (an assembler may log parts meanwhile)
ABORT_TRIES = 50  # abort + list rounds until the store lists no part
ABORT_DELAY_S = 0.05  # first pause between them, doubled up to 1 s


class Canceller:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.store = store
        self.bucket = settings.buckets.exports
        self.attempts = settings.step_attempts

    async def __call__(self, ctx: StepContext) -> None:
        for _ in range(ROUNDS):
            s = ctx.state
            aborted = False
            if s.upload is not None:
                aborted = await self._abort(ctx, s.upload.archive_key, s.upload.upload_id)
            try:
                await ctx.append(ev.ExportCancelled(export_id=s.export_id, tenant_id=s.tenant_id,
                                                    aborted_upload=aborted),
                                 msg_id=f"{s.export_id}:ExportCancelled")
                break
            except Conflict:  # an assembler logged a part meanwhile: re-read, abort again
                if not should_run(await ctx.reload()):
                    return
        else:
            raise StepError("The export kept changing while we cancelled it; we will try again.")
        await remove_work_objects(self.store, self.bucket, ctx.state.tenant_id, ctx.state.export_id)

    async def _abort(self, ctx: StepContext, key: str, upload_id: str) -> bool:
        """True when the upload is gone; False on the last allowed attempt (the janitor sweeps it);
        otherwise a failure is a :class:`StepError`: counted and retried by the worker."""
        try:
            await self.abort_until_empty(key, upload_id)
            return True
        except Exception as e:  # StoreError, or a store that answers nonsense: counted, never a stuck cancel
            attempt = ctx.state.attempts_of("cancel") + 1
            log.warning("cancel %s: aborting the upload failed (attempt %d): %r", ctx.state.export_id, attempt, e,
                        extra={"export_id": ctx.state.export_id, "tenant_id": ctx.state.tenant_id})
            if attempt >= self.attempts or is_permanent(e):  # a refusal will not change by retrying
                return False
            raise StepError("The storage service did not let us remove the partial upload yet.") from None

    async def abort_until_empty(self, key: str, upload_id: str) -> None:
        for attempt in range(ABORT_TRIES):
            try:
                await self.store.abort_multipart(self.bucket, key, upload_id)
            except NoSuchUpload:
                return
            try:
                if not await self.store.list_parts(self.bucket, key, upload_id):
                    return
            except NoSuchUpload:
                return
            await asyncio.sleep(min(ABORT_DELAY_S * 2**attempt, 1.0))
        raise StoreError(f"parts kept appearing after {ABORT_TRIES} aborts")
