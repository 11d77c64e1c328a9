"""The assembler's coalesced CancelRequested wake-ups (services/assembler/wakeups.py): a wake-up heard
while a read runs is one read after it — also when that read fails. Pure: the log is a stub."""

from __future__ import annotations

import asyncio

from nats.aio.msg import Msg

from services.assembler.wakeups import CancelWakeups
from shared.core import events as ev
from shared.core.lifecycle import fold
from shared.eventlog.jetstream import Loaded

IDS = {"tenant_id": "t_w", "export_id": "exp_w"}
RUNNING = [ev.ExportRequested(**IDS, user_id="u", user_email="w@example.org", username="w"), ev.CatalogStarted(**IDS)]


def _wake(subject: str) -> Msg:
    return Msg(_client=None, subject=subject)  # type: ignore[arg-type]  (only the subject is read)


async def test_a_cancel_heard_while_a_read_fails_is_read_again_and_stops_the_task() -> None:
    """Junk wakes a read; the real cancel arrives while it runs (it only asks for one more read), and
    the read fails (a timeout under the flood): the read it asked for must still happen. Before, the
    failed read ended the loop — 1 read, nothing stopped, the assembler streaming on for a cancelled
    export until its next append failed."""
    first_read_started, fail_first = asyncio.Event(), asyncio.Event()
    loads: list[int] = []
    stopped: list[tuple[str, str]] = []
    stopped_once = asyncio.Event()

    def stop(tenant_id: str, export_id: str) -> None:
        stopped.append((tenant_id, export_id))
        stopped_once.set()

    async def load(tenant_id: str, export_id: str) -> Loaded:
        loads.append(1)
        if len(loads) == 1:
            first_read_started.set()
            await fail_first.wait()
            raise TimeoutError("the log did not answer")
        return Loaded(fold([*RUNNING, ev.CancelRequested(**IDS)]), 3)

    wakeups = CancelWakeups("exports", lambda t, e: True, load, stop)
    subject = "exports.t_w.exp_w.CancelRequested"
    try:
        await wakeups.wake(_wake(subject))  # junk: a read starts
        await asyncio.wait_for(first_read_started.wait(), 5)
        await wakeups.wake(_wake(subject))  # the real cancel, heard while that read runs
        fail_first.set()
        await asyncio.wait_for(stopped_once.wait(), 5)
        assert (len(loads), stopped) == (2, [("t_w", "exp_w")])
    finally:
        await wakeups.close()


async def test_a_failed_read_with_no_wakeup_after_it_reads_no_more() -> None:
    loads: list[int] = []

    async def load(tenant_id: str, export_id: str) -> Loaded:
        loads.append(1)
        raise TimeoutError("the log did not answer")

    wakeups = CancelWakeups("exports", lambda t, e: True, load, lambda t, e: None)
    try:
        await wakeups.wake(_wake("exports.t_w.exp_w.CancelRequested"))
        for _ in range(50):
            await asyncio.sleep(0)
        assert loads == [1] and not wakeups._tasks
    finally:
        await wakeups.close()
