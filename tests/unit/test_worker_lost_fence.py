"""A step whose fenced append lost is not a failed attempt: StandDown (another worker owns the
export) stops without acking, naking or recording anything; a Conflict (the log moved) naks for a
prompt re-decision, again recording nothing. On the in-memory event log; no server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.eventlog.jetstream import Conflict
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StandDown, StepContext, StepWorker
from tests.unit.test_append_fence import SECOND_REQUEST, Interloper
from tests.unit.test_worker_tenant_bound import Beats, FakeMsg


@pytest.mark.parametrize(("error", "calls"), [
    (StandDown("another worker logged part 1"), []),
    (Conflict("the log moved"), [("nak", 0.5)]),
])
async def test_a_lost_fence_is_not_a_failed_attempt(error: Exception, calls: list[tuple[str, float]]) -> None:
    log = InMemoryEventLog()
    requested = ev.ExportRequested(export_id="exp_f", tenant_id="t_f", user_id="u", user_email="u@example.org",
                                   username="u")
    await log.append(requested, 0)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]

    async def work(ctx: StepContext) -> None:
        raise error

    worker = StepWorker("assemble", bus, Settings(progress_interval_s=60, ack_wait_s=120), work, lambda loaded: True)
    msg = FakeMsg("exports.t_f.exp_f.ExportRequested", data=requested.to_json())
    await worker.handle(msg)  # type: ignore[arg-type]
    await asyncio.wait_for(asyncio.gather(*worker.running.values()), 5)
    assert msg.calls == calls
    assert [e.name() async for _, e in log.history("t_f", "exp_f")] == ["ExportRequested"]  # nothing recorded


@pytest.mark.parametrize("attempts", [5, 1])
async def test_a_failure_is_recorded_past_an_event_the_fold_ignores(attempts: int) -> None:
    """The worker's own failure records (CatalogAttemptFailed, and ExportFailedAtCatalog on the last attempt) append
    through the same fence rule as the steps: a message that moved nothing (here a second
    ExportRequested, stored while the step failed) no longer makes the record a Conflict — 'could not
    record the failure', a nak, and no attempt counted, for as long as such messages kept coming."""
    log = Interloper(SECOND_REQUEST)
    log.foreign = None
    requested = SECOND_REQUEST.model_copy(update={"event_id": "a" * 32})
    await log.append(requested, 0)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]

    async def work(ctx: StepContext) -> None:
        log.foreign = SECOND_REQUEST  # stored just before the worker records the failure
        raise RuntimeError("the store is down")

    settings = Settings(progress_interval_s=60, ack_wait_s=120, step_attempts=attempts)
    worker = StepWorker("catalog", bus, settings, work, lambda loaded: True)
    tenant, export = requested.tenant_id, requested.export_id
    msg = FakeMsg(f"exports.{tenant}.{export}.ExportRequested", data=requested.to_json())
    await worker.handle(msg)  # type: ignore[arg-type]
    await asyncio.wait_for(asyncio.gather(*worker.running.values()), 5)
    recorded = "CatalogAttemptFailed" if attempts > 1 else "ExportFailedAtCatalog"
    assert [e.name() async for _, e in log.history(tenant, export)] == ["ExportRequested", "ExportRequested", recorded]
    assert msg.calls[-1][0] == ("nak" if attempts > 1 else "ack")


def _requested(x: str) -> ev.ExportRequested:
    return ev.ExportRequested(export_id=f"exp_{x}", tenant_id=f"t_{x}", user_id="u", user_email="u@example.org",
                              username="u")


def _finalized(x: str) -> list[ev.Event]:
    """What comes before an ExportCompleted: the fold takes one only after these."""
    ids = {"export_id": f"exp_{x}", "tenant_id": f"t_{x}"}
    return [ev.ArchiveAssembled(**ids, archive_key=f"exports/t_{x}/exp_{x}/grove-export-u-2026-12-04.zip",
                                upload_id="u", size_bytes=1, part_count=1, member_count=1, error_count=0),
            ev.FinalizeStarted(**ids)]


def _completed(x: str) -> ev.ExportCompleted:
    return ev.ExportCompleted(export_id=f"exp_{x}", tenant_id=f"t_{x}", size_bytes=1, sha256="0" * 64,
                              archive_key=f"exports/t_{x}/exp_{x}/grove-export-u-2026-12-04.zip", item_counts={},
                              error_count=0, expires_at=datetime(2026, 12, 31, tzinfo=UTC))


async def _failing_run(step: ev.Step, events: list[ev.Event], work: Callable[[InMemoryEventLog], Awaitable[None]],
                       caplog: pytest.LogCaptureFixture) -> tuple[InMemoryEventLog, FakeMsg]:
    """One StepWorker run of ``step`` on a log holding ``events``, triggered by the last of them, whose
    work is ``work(log)`` (it raises); the worker's lines from INFO up are in ``caplog``."""
    log = InMemoryEventLog()
    for seq, event in enumerate(events):
        await log.append(event, seq)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]

    async def run(ctx: StepContext) -> None:
        await work(log)

    worker = StepWorker(step, bus, Settings(progress_interval_s=60, ack_wait_s=120), run, lambda loaded: True)
    last = events[-1]
    msg = FakeMsg(f"exports.{last.tenant_id}.{last.export_id}.{last.name()}", data=last.to_json())
    with caplog.at_level(logging.INFO, logger="shared.runtime.worker"):
        await worker.handle(msg)  # type: ignore[arg-type]
        await asyncio.wait_for(asyncio.gather(*worker.running.values()), 5)
    return log, msg


def _failed_lines(caplog: pytest.LogCaptureFixture, export_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and f"{export_id} failed" in r.getMessage()]


@pytest.mark.parametrize("ended_by", [[ev.CancelRequested(export_id="exp_e", tenant_id="t_e"),
                                       ev.ExportCancelled(export_id="exp_e", tenant_id="t_e")],
                                      [*_finalized("e"), _completed("e")]],
                         ids=["cancelled", "completed"])
async def test_a_run_stopped_because_its_export_ended_is_said_as_ended_not_failed(
        ended_by: list[ev.Event], caplog: pytest.LogCaptureFixture) -> None:
    """A replica thawed after another completed the export (or after a cancel) stops with an error of
    its own making (the encoder's Stopped, a lost upload): the worker drops the message, which was right,
    but logged 'failed: An internal error occurred' with a traceback — an operator read a failure that
    never was. It now says the run ended, at INFO, without a traceback, and acks."""
    class Stopped(Exception):  # what the encoder raises once its export is stopped
        pass

    async def work(log: InMemoryEventLog) -> None:
        for seq, event in enumerate(ended_by, 1):  # another actor ended the export while this run worked
            await log.append(event, seq)
        raise Stopped()

    log, msg = await _failing_run("assemble", [_requested("e")], work, caplog)
    assert msg.calls == [("ack", None)]
    lines = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records if "exp_e" in r.getMessage()]
    assert [(lvl, text) for lvl, text, _ in lines if lvl >= logging.WARNING] == []
    assert any(lvl == logging.INFO and "ended, the export no longer needs this step (Stopped: )" in text
               and not exc for lvl, text, exc in lines), lines
    assert [e.name() async for _, e in log.history("t_e", "exp_e")] == ["ExportRequested", *(e.name() for e in ended_by)]


async def test_a_failure_of_an_export_under_way_is_still_a_warning_with_its_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    async def work(log: InMemoryEventLog) -> None:
        raise RuntimeError("the store is down")

    log, _ = await _failing_run("assemble", [_requested("w")], work, caplog)
    warnings = _failed_lines(caplog, "exp_w")
    assert len(warnings) == 1 and warnings[0].exc_info is not None
    assert [e.name() async for _, e in log.history("t_w", "exp_w")] == ["ExportRequested", "AssembleAttemptFailed"]


async def test_a_step_that_fails_on_an_export_already_ended_is_still_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    """The notifier runs on an export that has ended (complete or failed): the failure rule drops its
    message whatever went wrong, so a template bug in the notifier is a warning with its traceback, not
    'ended' at INFO (found by the review of 033b696): 'ended' only when the export needed the step as
    the run started."""
    async def work(log: InMemoryEventLog) -> None:
        raise ValueError("template broke")

    _, msg = await _failing_run("notify", [_requested("n"), *_finalized("n"), _completed("n")], work, caplog)
    warnings = _failed_lines(caplog, "exp_n")
    assert len(warnings) == 1 and warnings[0].exc_info is not None, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if "ended, the export no longer needs" in r.getMessage()]
    assert msg.calls == [("ack", None)]


async def test_a_run_whose_export_is_erased_meanwhile_is_said_as_ended(caplog: pytest.LogCaptureFixture) -> None:
    """erase-tenant --erase-running purges the export's log while a step runs: the reloaded log is
    empty (its last sequence 0), so 'the log moved past the run's start' (3ff2852) never held and the
    thawed run's Stopped was a warning with a traceback again (found by the review of 3ff2852)."""
    async def work(log: InMemoryEventLog) -> None:
        log.messages.clear()  # the erasure
        raise RuntimeError("stopped")

    _, msg = await _failing_run("assemble", [_requested("x")], work, caplog)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
    assert any("exp_x: ended, the export no longer needs this step" in r.getMessage() for r in caplog.records)
    assert msg.calls == [("ack", None)]


async def test_a_notifier_failure_while_a_resend_lands_is_still_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The log moving during a notifier's run (an operator's resend, the janitor's expiry) is no
    export ending: the notifier's export had ended before it started (review of 3ff2852)."""
    async def work(log: InMemoryEventLog) -> None:
        await log.append(ev.ResendRequested(export_id="exp_r", tenant_id="t_r", operator="ops", reason="bounced"), 4)
        raise ValueError("template broke")

    await _failing_run("notify", [_requested("r"), *_finalized("r"), _completed("r")], work, caplog)
    warnings = _failed_lines(caplog, "exp_r")
    assert len(warnings) == 1 and warnings[0].exc_info is not None, [r.getMessage() for r in caplog.records]
