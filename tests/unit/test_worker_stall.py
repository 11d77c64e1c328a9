"""A step beats only while it moves: one that appends nothing and marks no progress for
``stall_after_s`` is stopped and counted as a failed attempt — retried, then reported as failed —
instead of being kept alive by its own heartbeat forever (seen: an encoder deadlock that left
exports "assembling" with a fresh heartbeat). On the in-memory event log; no server."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from shared.core import events as ev
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.worker import StepContext, StepWorker
from tests.unit.test_worker_keepalive import Beats, FakeMsg
from tests.unit.test_worker_keepalive import _worker as keepalive_worker


async def _worker(work: Any, step: ev.Step = "catalog",
                  **settings: Any) -> tuple[StepWorker, FakeMsg, Beats, InMemoryEventLog]:
    """The keep-alive tests' worker, beating every 0.02 s, with its in-memory log."""
    worker, msg, beats = await keepalive_worker(0.02, work, step, retry_base_delay_s=0.01, **settings)
    assert isinstance(worker.bus.log, InMemoryEventLog)
    return worker, msg, beats, worker.bus.log


async def _names(log: InMemoryEventLog) -> list[str]:
    return [e.name() async for _, e in log.history("t_k", "exp_k")]


async def _run_once(worker: StepWorker, msg: FakeMsg, within: float) -> float:
    started = time.monotonic()
    await worker.handle(msg)  # type: ignore[arg-type]
    async with asyncio.timeout(within):  # the step must end by itself: nobody releases it
        await asyncio.gather(*worker.running.values())
    return time.monotonic() - started


async def test_a_step_that_hangs_is_stopped_and_counted_as_a_failed_attempt() -> None:
    entered: list[float] = []

    async def hangs(ctx: StepContext) -> None:
        entered.append(time.monotonic())
        await asyncio.Event().wait()  # a deadlock: alive, never moving

    worker, msg, beats, log = await _worker(hangs, stall_after_s=0.2, step_attempts=3)
    took = await _run_once(worker, msg, within=5)
    assert 0.2 <= took < 2, took
    assert await _names(log) == ["ExportRequested", "CatalogAttemptFailed"]
    failed = [e async for _, e in log.history("t_k", "exp_k")][-1]
    assert isinstance(failed, ev.CatalogAttemptFailed) and failed.attempt == 1 and failed.step == "catalog"
    assert failed.reason == "the catalog step made no progress for 0.2 s"
    assert msg.calls[-1] == "nak" and "ack" not in msg.calls  # retried later, not dropped
    assert beats.calls[-1] == ("delete", "catalog.t_k.exp_k")  # the heartbeat it had put is gone
    assert not worker.running and not worker.contexts and worker.capacity._value == worker.settings.concurrency


async def test_the_last_allowed_stall_fails_the_export_with_the_reason() -> None:
    async def hangs(ctx: StepContext) -> None:
        await asyncio.Event().wait()

    worker, msg, _, log = await _worker(hangs, stall_after_s=0.1, step_attempts=2)
    for _ in range(2):
        msg.calls.clear()
        await _run_once(worker, msg, within=5)
    assert await _names(log) == ["ExportRequested", "CatalogAttemptFailed", "ExportFailedAtCatalog"]
    failed = [e async for _, e in log.history("t_k", "exp_k")][-1]
    assert isinstance(failed, ev.ExportFailed) and "made no progress for 0.1 s" in failed.reason
    assert msg.calls[-1] == "ack"


async def test_a_long_step_that_keeps_moving_is_never_stopped() -> None:
    async def moves(ctx: StepContext) -> None:
        for _ in range(25):  # 0.5 s in all, 2.5 times the stall limit
            await asyncio.sleep(0.02)
            ctx.progress()

    worker, msg, beats, log = await _worker(moves, stall_after_s=0.2)
    took = await _run_once(worker, msg, within=5)
    assert took >= 0.5
    assert await _names(log) == ["ExportRequested"] and msg.calls[-1] == "ack"
    assert msg.calls.count("in_progress") >= 10  # it kept beating all along
    assert beats.calls.count(("put", "catalog.t_k.exp_k")) >= 10 and beats.calls[-1] == ("delete", "catalog.t_k.exp_k")


async def test_an_append_counts_as_progress_and_zero_turns_the_check_off() -> None:
    async def appends(ctx: StepContext) -> None:
        s = ctx.state
        for _ in range(5):
            await asyncio.sleep(0.1)
            await ctx.append(ev.AssembleAttemptFailed(export_id=s.export_id, tenant_id=s.tenant_id,
                                                      attempt=1, reason="a mark"))

    worker, msg, _, log = await _worker(appends, stall_after_s=0.25)
    await _run_once(worker, msg, within=5)
    assert (await _names(log)).count("AssembleAttemptFailed") == 5 and msg.calls[-1] == "ack"

    async def sleeps(ctx: StepContext) -> None:
        await asyncio.sleep(0.4)

    worker, msg, _, log = await _worker(sleeps, stall_after_s=0)
    await _run_once(worker, msg, within=5)
    assert await _names(log) == ["ExportRequested"] and msg.calls[-1] == "ack"


async def test_a_shutdown_during_a_stall_is_not_counted() -> None:
    inside = asyncio.Event()

    async def hangs(ctx: StepContext) -> None:
        inside.set()
        await asyncio.Event().wait()

    worker, msg, _, log = await _worker(hangs, stall_after_s=30)
    await worker.handle(msg)  # type: ignore[arg-type]
    task = next(iter(worker.running.values()))
    await asyncio.wait_for(inside.wait(), 5)  # the step's work is running (and hanging): not before it
    worker.contexts["t_k.exp_k"].stalled = True  # the keep-alive's stop and a SIGTERM land together
    task.cancel("stalled")
    task.cancel("shutdown")
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and msg.calls[-1] == "nak"
    assert await _names(log) == ["ExportRequested"]  # no attempt counted


async def test_a_thread_still_working_for_a_stopped_step_stops_at_its_next_mark() -> None:
    ended = threading.Event()

    def render(ctx: StepContext) -> None:  # a catalog's render in its worker thread
        try:
            time.sleep(0.4)  # longer than the limit without a mark: the step is stopped meanwhile
            while True:
                ctx.progress()  # raises Stalled once the step was stopped
                time.sleep(0.01)
        finally:
            ended.set()

    async def work(ctx: StepContext) -> None:
        await asyncio.to_thread(render, ctx)

    worker, msg, _, log = await _worker(work, stall_after_s=0.2)
    await _run_once(worker, msg, within=5)
    assert await _names(log) == ["ExportRequested", "CatalogAttemptFailed"]
    assert await asyncio.to_thread(ended.wait, 5)  # the thread did not run on for ever


async def test_a_failure_recorded_after_a_quiet_spell_is_not_mistaken_for_a_stall() -> None:
    # Seen in review: a step that failed 0.25 s after its last mark, with a 0.3 s limit and a slow
    # bus, was stopped inside the failure handling: no StepFailed, no nak, nothing counted.
    async def fails_late(ctx: StepContext) -> None:
        await asyncio.sleep(0.25)
        raise RuntimeError("boom")

    worker, msg, _, log = await _worker(fails_late, stall_after_s=0.3)
    real_load, loads = log.load, []

    async def slow_load(tenant_id: str, export_id: str) -> Any:
        loads.append(tenant_id)
        if len(loads) == 2:  # the load inside the failure handling
            await asyncio.sleep(0.3)
        return await real_load(tenant_id, export_id)

    log.load = slow_load  # type: ignore[method-assign]
    await _run_once(worker, msg, within=5)
    assert await _names(log) == ["ExportRequested", "CatalogAttemptFailed"] and msg.calls[-1] == "nak"
    failed = [e async for _, e in log.history("t_k", "exp_k")][-1]
    assert isinstance(failed, ev.StepFailed) and "made no progress" not in failed.reason


async def test_the_notifier_and_the_canceller_are_not_watched() -> None:
    # Their calls have their own timeouts and their failures their own rules: a stalled email on a
    # complete export would be dropped (acked, nothing recorded), a stalled cancel would fail it.
    async def slow(ctx: StepContext) -> None:
        await asyncio.sleep(0.5)

    for step in ("notify", "cancel"):
        worker, msg, _, log = await _worker(slow, step, stall_after_s=0.1)  # type: ignore[arg-type]
        took = await _run_once(worker, msg, within=5)
        assert took >= 0.5 and msg.calls[-1] == "ack" and await _names(log) == ["ExportRequested"], step


@pytest.mark.parametrize("how", ["cancel", "shutdown"])
async def test_a_thread_still_working_for_a_cancelled_or_shut_down_step_stops_at_its_next_mark(how: str) -> None:
    # Seen: a render thread (asyncio.to_thread cannot interrupt one) ran on to the end after its
    # step was gone, beside the retry's own render; only a stall stopped it, not a cancel or SIGTERM.
    started, ended, marks = threading.Event(), threading.Event(), []

    def render(ctx: StepContext) -> None:
        try:
            started.set()
            for _ in range(500):  # 5 s if nothing stops it
                ctx.progress()
                marks.append(1)
                time.sleep(0.01)
        finally:
            ended.set()

    async def work(ctx: StepContext) -> None:
        await asyncio.to_thread(render, ctx)

    worker, msg, _, log = await _worker(work, stall_after_s=30)
    await worker.handle(msg)  # type: ignore[arg-type]
    task = next(iter(worker.running.values()))
    assert await asyncio.to_thread(started.wait, 5)
    if how == "cancel":
        assert worker.cancel_export("t_k", "exp_k")
    else:
        task.cancel("shutdown")
    await asyncio.gather(task, return_exceptions=True)
    assert await asyncio.to_thread(ended.wait, 1)  # stopped at its next mark, not 5 s later
    assert len(marks) < 100
    assert await _names(log) == ["ExportRequested"]  # neither counts as an attempt
