"""What every pass of a janitor run acts with (settings, bus, store, dry run, clock) and the rules
every act keeps, in one place:

* a change to an export is an append fenced at the fold it was decided from (:meth:`Job.append`):
  the loser of a race (another janitor, the pipeline) finds the log moved and leaves it;
* an error is the one item's (:meth:`Job.each`): it is left for the next run and every other item is
  still seen to — unless the store answers nothing at all (:meth:`Job.stop_if_down`), which stops the
  run where it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from services.janitor.summary import Summary, log
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.eventlog.fence import append_folded
from shared.eventlog.jetstream import Conflict, Loaded
from shared.objectstore import ObjectStore
from shared.objectstore.port import StoreUnavailable
from shared.ports import SYSTEM_CLOCK, Clock
from shared.runtime.settings import Settings

PROBE_KEY = "grove-janitor-probe"  # asked whether the store answers at all: no export's key


class Job:
    def __init__(self, settings: Settings, bus: Bus, store: ObjectStore, dry_run: bool = False,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings, self.bus, self.store, self.dry_run, self.clock = settings, bus, store, dry_run, clock
        self.bucket = settings.buckets.exports

    async def append(self, loaded: Loaded, event: ev.Event) -> bool:
        """Record ``event`` fenced at the fold it was decided from; False when the log moved meanwhile
        (another janitor or the pipeline got there first: nothing done, the next run decides again)."""
        try:
            await append_folded(self.bus.log, event, loaded, msg_id=f"{event.export_id}:{event.name()}:janitor")
        except Conflict:
            log.info("janitor: %s moved while deciding; leaving it", event.export_id)
            return False
        return True

    @contextlib.asynccontextmanager
    async def each(self, summary: Summary, what: str) -> AsyncIterator[None]:
        """Around the acts on one item (``what``: an export, an upload, an object, as the log line names
        it): its error is its own (``Summary.leave``), unless the store answers nothing at all."""
        try:
            yield
        except StoreUnavailable as e:
            await self.stop_if_down(e)  # the store's: the run stops; else this item's
            summary.leave(what, e)
        except Exception as e:
            summary.leave(what, e)

    async def stop_if_down(self, error: StoreUnavailable) -> None:
        """Raise ``error`` — the run stops — when the store answers nothing, asked once more of a key no
        export has (:data:`PROBE_KEY`); when it answers, the error was that one call's (a 5xx one key
        keeps getting), left for the next run like any other, and the run goes on: else every archive
        after it would wait behind that key for good."""
        try:
            await self.store.head(self.bucket, PROBE_KEY)
        except StoreUnavailable:
            raise error from None
        except Exception:  # noqa: BLE001  (not found, refused: the store answered)
            return
