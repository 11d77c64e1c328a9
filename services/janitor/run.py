"""One janitor run, top to bottom: which exports the log holds, each export's pass (expire, check it is
alive, sweep what it left), then the store's own listings (orphan uploads, objects of exports the log
no longer holds).

Safe twice at once and twice in a row: every change to an export is a fenced append decided from
its fold (the loser of a race re-reads and finds nothing left to do), and deletes and aborts are
idempotent.

A store that does not answer (``StoreUnavailable``: the endpoint down, after the adapter's retries,
and no answer either to :meth:`Job.stop_if_down`'s question of a key no export has) stops the run
at once, with every act before it whole (no ``ExportExpired`` for a delete the store did
not answer); it is said in one line (``Summary.stopped``) and the next run does the rest.
"""

from __future__ import annotations

from datetime import datetime

from services.janitor import requests
from services.janitor.alive import check_alive
from services.janitor.decide import is_expired
from services.janitor.job import Job
from services.janitor.summary import Summary, store_silent
from services.janitor.sweep import abort_orphans, expire_batch, forget, sweep_ended
from shared.eventlog.jetstream import Loaded
from shared.objectstore.factory import check_fs_store
from shared.objectstore.port import StoreNotThere, StoreUnavailable
from shared.runtime import faults


class Janitor(Job):
    async def exports(self) -> list[tuple[str, str]]:
        """Every export in the log: (tenant, export), from the subjects of ExportRequested whose tokens
        are ids (``events.export_of_subject``: a ``*`` there is no export, it names them all)."""
        prefix = self.settings.subject_prefix
        return requests.owners(prefix, await requests.request_subjects(self.bus.js, self.settings.stream_name, prefix))

    async def run(self, now: datetime | None = None) -> Summary:
        """One run. A store that does not answer stops it where it is (``Summary.stopped`` says so):
        every export would wait out the adapter's retries in turn (10 s each on S3's defaults, hours on a
        large log) for the same answer."""
        summary = Summary()
        counts, exports = await self._exports_checked()  # a store not there: raised, nothing done
        try:
            await self._run(counts, exports, now or self.clock.now(), summary)
        except StoreUnavailable as e:
            summary.stopped = store_silent(self.settings, e)
        except StoreNotThere as e:  # gone since the run began (a volume unmounted): said as at the start
            summary.stopped = str(e)
        return summary

    async def _exports_checked(self) -> tuple[dict[str, int], list[tuple[str, str]]]:
        stream, prefix = self.settings.stream_name, self.settings.subject_prefix
        counts = await requests.request_subjects(self.bus.js, stream, prefix)
        exports = await requests.requested(self.bus.js, stream, prefix, counts)
        # The log says the store holds something once an export was cataloged: then the store must be
        # where the settings say before anything changes. One such export tells; none is kept.
        for tenant_id, export_id in exports:
            try:
                state = (await self.bus.log.load(tenant_id, export_id)).state
                stored = state.exists and state.cataloged is not None
            except Exception:  # unread: as if it said so (the check costs nothing where the store is)
                stored = True
            if stored:
                check_fs_store(self.settings, "nothing was expired, failed, aborted or removed")
                break
        return counts, exports

    async def _run(self, counts: dict[str, int], exports: list[tuple[str, str]], now: datetime,
                   summary: Summary) -> None:
        # One export at a time (the expired ones a batch at a time): a run holds no fold of every
        # export in the log, so its memory does not grow with the log. One export's error (a store
        # that refuses one delete, a read that times out) is that export's: it is left for the next
        # run, and every other export is still seen to.
        expired: list[Loaded] = []
        for tenant_id, export_id in exports:
            async with self.each(summary, f"{tenant_id}/{export_id}"):
                loaded = await self.bus.log.load(tenant_id, export_id)
                await faults.slow("janitor.read")  # tests: hold the run between its read and its acts
                if not loaded.state.exists:  # a request whose body disagreed with its subject: not an export
                    continue
                if is_expired(loaded.state, now):
                    expired.append(loaded)
                elif not loaded.state.terminal:
                    await check_alive(self, loaded, now, summary)
                else:
                    await sweep_ended(self, loaded, now, summary)
            if len(expired) >= self.settings.janitor_batch:  # the spec's batches of 50
                await expire_batch(self, expired, summary)
                expired = []
        if expired:
            await expire_batch(self, expired, summary)
        await abort_orphans(self, now, summary)
        await forget(self, set(requests.owners(self.settings.subject_prefix, counts)), now, summary)  # every subject's
