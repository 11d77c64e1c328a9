"""Cancel: abort the multipart upload, re-list until no part remains, then append ExportCancelled."""

from __future__ import annotations

import asyncio

from shared import events as ev
from shared.eventlog import Conflict, Loaded
from shared.objectstore import NoSuchUpload, ObjectStore
from shared.settings import Settings
from shared.snapshot import remove_work_objects
from shared.worker import StepContext


def should_run(loaded: Loaded) -> bool:
    """A cancel wins unless FinalizeStarted came first (then the finalizer completes)."""
    return loaded.state.cancel_wins


class Canceller:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.store = store
        self.bucket = settings.buckets.exports

    async def __call__(self, ctx: StepContext) -> None:
        for _ in range(20):
            s = ctx.state
            aborted = False
            if s.upload is not None:
                await self.abort_until_empty(s.upload.archive_key, s.upload.upload_id)
                aborted = True
            try:
                await ctx.append(ev.ExportCancelled(export_id=s.export_id, tenant_id=s.tenant_id,
                                                    aborted_upload=aborted),
                                 msg_id=f"{s.export_id}:ExportCancelled")
                break
            except Conflict:  # an assembler logged a part meanwhile: re-read, abort again
                if not should_run(await ctx.reload()):
                    return
        await remove_work_objects(self.store, self.bucket, ctx.state.tenant_id, ctx.state.export_id)

    async def abort_until_empty(self, key: str, upload_id: str) -> None:
        for attempt in range(50):
            await self.store.abort_multipart(self.bucket, key, upload_id)
            try:
                if not await self.store.list_parts(self.bucket, key, upload_id):
                    return
            except NoSuchUpload:
                return
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
