"""The assembler's core CancelRequested wake-ups: a re-read of the export's log, never a decision.

Every replica hears CancelRequested as a core message and stops that export's task at once when the
log holds the cancel (the canceller's durable does the rest). A core message can come from anywhere
that may publish on the subject — and any user can have the server publish there (a PubAck aimed at it
as a reply subject, stored in the log as well) — so it only wakes: the log decides.

One read at a time per export, and at most one more after it: each wake-up was a full read of the
export's history, one after another, and K aimed at a running export (each also a stored message that
every read walks) cost K reads of a history growing to K — 200 of them took the assembler 200 reads.
Wake-ups heard while a read runs are one read after it: the cancel stored before the last of them is
in that read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from shared.core import events as ev
from shared.eventlog.jetstream import Loaded

log = logging.getLogger(__name__)


class CancelWakeups:
    """:meth:`wake` is the subscription's callback; ``runs(tenant, export)`` says whether this replica runs the
    export, ``load`` reads its log, ``stop`` stops its task (when the fold says the cancel wins)."""

    def __init__(self, prefix: str, runs: Callable[[str, str], bool],
                 load: Callable[[str, str], Awaitable[Loaded]], stop: Callable[[str, str], object]) -> None:
        self.prefix, self.runs, self.load, self.stop = prefix, runs, load, stop
        self._reading: dict[tuple[str, str], bool] = {}  # export → woken again while its read runs
        self._tasks: set[asyncio.Task[None]] = set()

    async def wake(self, msg: Msg) -> None:
        try:
            tenant_id, export_id, _ = ev.subject_tokens(self.prefix, msg.subject)
        except ev.BadEvent:
            return
        if not self.runs(tenant_id, export_id):
            return  # nothing of ours to stop: the canceller's durable does the rest
        key = (tenant_id, export_id)
        if key in self._reading:
            self._reading[key] = True  # read once more when this read ends
            return
        self._reading[key] = False
        task = asyncio.create_task(self._read(tenant_id, export_id), name=f"cancel-wakeup-{export_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, tenant_id: str, export_id: str) -> None:
        key = (tenant_id, export_id)
        try:
            while True:
                self._reading[key] = False
                try:
                    loaded = await self.load(tenant_id, export_id)
                except Exception as e:  # noqa: BLE001  (a read that failed: the canceller's durable still runs)
                    log.warning("cancel wake-up for %s: the log could not be read: %r", export_id, e,
                                extra={"export_id": export_id, "tenant_id": tenant_id})
                    if self._reading[key] and self.runs(tenant_id, export_id):
                        continue  # woken while it failed (a real cancel, maybe): the read it asked for
                    return
                if loaded.state.cancel_wins:  # the one cancel-vs-finalize rule, asked of the fold
                    self.stop(tenant_id, export_id)
                    return
                if not self._reading[key] or not self.runs(tenant_id, export_id):
                    return
        finally:
            self._reading.pop(key, None)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
