"""The assembler's core CancelRequested wake-ups read the log once at a time per export, not once each.

Any user can have the server publish on a running export's CancelRequested subject (a PubAck aimed
there as a reply subject; also stored in the log), and every assembler replica hears each as a core
message: each was a full read of the export's history, one after another — K of them cost K reads of
a history growing to K. On the real JetStream log."""

from __future__ import annotations

from services.assembler.wakeups import CancelWakeups
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.eventlog.jetstream import Loaded
from shared.runtime.settings import Settings
from tests.support.wait import until

JUNK = 200


async def test_a_flood_of_cancel_wakeups_costs_a_few_reads_and_the_real_cancel_still_stops_the_task(
        bus: Bus, settings: Settings) -> None:
    p = settings.subject_prefix
    ids = {"tenant_id": "t_w", "export_id": "exp_w"}
    seq = await bus.log.append(ev.ExportRequested(**ids, user_id="u", user_email="w@example.org", username="w"), 0)
    seq = await bus.log.append(ev.CatalogStarted(**ids), seq)
    loads: list[str] = []
    stopped: list[tuple[str, str]] = []

    async def load(tenant_id: str, export_id: str) -> Loaded:
        loads.append(export_id)
        return await bus.log.load(tenant_id, export_id)

    wakeups = CancelWakeups(p, lambda t, e: e in ("exp_w", "exp_other") and not stopped, load,
                            lambda t, e: stopped.append((t, e)))
    sub = await bus.nc.subscribe(f"{p}.*.*.CancelRequested", cb=wakeups.wake)
    try:
        for i in range(JUNK):  # what PubAcks aimed at the subject are: stored, and heard; no cancel
            await bus.nc.publish(f"{p}.t_w.exp_w.CancelRequested", b'{"stream": "X", "seq": %d}' % i)
        # heard after them on the same subscription: once it is read, every wake-up before it was taken
        await bus.nc.publish(f"{p}.t_w.exp_other.CancelRequested", b"")

        async def all_heard() -> bool:
            return "exp_other" in loads

        await until(all_heard, 60, 0.01, "the wake-up after the flood")
        reads = loads.count("exp_w")
        assert reads <= 10, f"{reads} reads of the log for {JUNK} wake-ups"
        assert not stopped  # no cancel in the log: nothing stopped
        # the real cancel still stops the task
        await bus.log.append(ev.CancelRequested(**ids), (await bus.log.load("t_w", "exp_w")).last_seq)

        async def stopped_once() -> bool:
            return bool(stopped)

        await until(stopped_once, 30, 0.01, "the real cancel to stop the task")
        assert stopped == [("t_w", "exp_w")]
    finally:
        await sub.unsubscribe()
        await wakeups.close()
