"""The cancel-vs-finalize rule, decided from the fold alone: whatever the order of CancelRequested
and FinalizeStarted, exactly one of the canceller and the finalizer is due, and the gateway's
cancel is refused exactly when the finalizer owns the export. An ExportCancelled ends the export
only while a cancel can win (asked for, FinalizeStarted not logged); elsewhere the fold ignores it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from services.canceller.service import should_run as canceller_due
from services.finalizer.service import should_run as finalizer_due
from services.janitor.decide import verdict
from shared.core import events as ev
from shared.core.lifecycle import fold, moved
from shared.eventlog.jetstream import Loaded
from tests.unit.test_state_fold import ASSEMBLED, CATALOGED, COMPLETED, UPLOAD, E, part, requested

CANCEL = ev.CancelRequested(**E, requested_by="u1")
FINALIZE = ev.FinalizeStarted(**E)
BEFORE = [requested(), ev.CatalogStarted(**E), CATALOGED, UPLOAD, part(1, 500, 10)]


def _due(events: list[ev.Event]) -> tuple[bool, bool]:
    loaded = Loaded(fold(events), len(events))
    return canceller_due(loaded), finalizer_due(loaded)


@pytest.mark.parametrize("cut", range(len(BEFORE) + 1))
def test_a_cancel_anywhere_before_finalize_started_wins(cut: int) -> None:
    tail = [*BEFORE[1:], ASSEMBLED]
    events = [BEFORE[0], *tail[:cut], CANCEL, *tail[cut:]]
    state = fold(events)
    assert state.cancel_wins and state.cancellable
    canceller, finalizer = _due(events)
    assert (canceller, finalizer) == (True, False)


def test_finalize_started_first_makes_the_finalizer_own_the_export() -> None:
    events = [*BEFORE, ASSEMBLED, FINALIZE, CANCEL]
    state = fold(events)
    assert not state.cancellable and not state.cancel_wins
    assert _due(events) == (False, True)


@pytest.mark.parametrize("order", list(itertools.permutations(["cancel", "finalize"])))
def test_either_order_leaves_exactly_one_owner(order: tuple[str, str]) -> None:
    pick = {"cancel": CANCEL, "finalize": FINALIZE}
    events = [*BEFORE, ASSEMBLED, *(pick[o] for o in order)]
    canceller, finalizer = _due(events)
    # (cancel, finalize) cannot come from fenced writers: the finalizer's FinalizeStarted is appended
    # at the sequence it folded, and a CancelRequested since moves that fold (a Conflict, then the
    # finalizer is no longer due). So the first one logged owns the export.
    assert canceller != finalizer
    assert finalizer == (order[0] == "finalize")


@pytest.mark.parametrize("upto", range(len(BEFORE) + 1))
def test_a_finalize_started_after_a_cancel_was_asked_for_is_ignored(upto: int) -> None:
    """The finalizer appends FinalizeStarted fenced at the fold it decided from, and only while a cancel
    cannot win, so none of its own ever follows a CancelRequested; its NATS user may still publish one on
    any export's subject. Taken after a person's cancel (its 202 given) on an assembled export, it made the
    cancel lose: the canceller no longer due, the finalizer due, and with a forged ExportCompleted after it
    the export ended 'complete' and the ready email went out. Ignored: the cancel wins, and the completion
    after it is ignored too."""
    tail = [*BEFORE[1:], ASSEMBLED]
    running = [BEFORE[0], *tail[:upto], CANCEL, *tail[upto:]]
    before = fold(running)
    s = fold([*running, FINALIZE])
    assert (s.finalize_started, s.cancel_wins, s.last_event) == (False, True, before.last_event)
    assert not moved(before, s)
    assert _due([*running, FINALIZE]) == (True, False)
    forged = fold([*running, FINALIZE, COMPLETED])
    assert (forged.status, forged.completed, forged.email_due) == (before.status, None, False)
    assert fold([*running, FINALIZE, COMPLETED, CANCELLED]).status == "cancelled"


def test_nothing_is_due_once_the_export_ended() -> None:
    assert _due([*BEFORE, ASSEMBLED, FINALIZE, COMPLETED]) == (False, False)
    assert not fold([*BEFORE, ASSEMBLED, FINALIZE, COMPLETED]).cancellable
    cancelled = [*BEFORE, CANCEL, ev.ExportCancelled(**E, aborted_upload=True)]
    assert _due(cancelled) == (False, False)


async def test_asking_to_cancel_twice_appends_one_cancel_requested() -> None:
    """request_cancel is idempotent: a second ask (a double click, an operator after the person)
    appends nothing and says so (None), so the log holds one CancelRequested."""
    from shared.cancel import request_cancel
    from shared.eventlog.memory import InMemoryEventLog

    log = InMemoryEventLog()
    seq = 0
    for event in BEFORE:
        seq = await log.append(event, seq)
    first = await request_cancel(log, "t1", "exp_1", "u1")  # type: ignore[arg-type]
    assert first is not None
    assert await request_cancel(log, "t1", "exp_1", "u1") is None  # type: ignore[arg-type]
    logged = [e async for _, e in log.history("t1", "exp_1") if isinstance(e, ev.CancelRequested)]
    assert len(logged) == 1


# A running export at each stage, before FinalizeStarted: where a cancel could still win.
RUNNING = [BEFORE[:1], BEFORE[:2], BEFORE, [*BEFORE, ASSEMBLED]]
CANCELLED = ev.ExportCancelled(**E, aborted_upload=True)
REST = [ev.CatalogStarted(**E), CATALOGED, UPLOAD, part(1, 500, 10), ASSEMBLED, FINALIZE, COMPLETED]
LIFE = [*BEFORE, ASSEMBLED, FINALIZE]


@pytest.mark.parametrize("running", RUNNING, ids=["pending", "cataloging", "assembling", "assembled"])
def test_an_export_cancelled_nobody_asked_for_is_ignored_and_the_export_completes(running: list[ev.Event]) -> None:
    """The canceller's and the janitor's NATS users may publish ExportCancelled on any export's subject:
    a bare one (no CancelRequested in the log) ended any tenant's running export — status 'cancelled',
    its canceller never due, its later events ignored, the ready email never due. A cancel ends an
    export only when one was asked for and can still win; elsewhere the fold ignores it."""
    before = fold(running)
    s = fold([*running, CANCELLED])
    assert (s.status, s.progress, s.last_event, s.step) == (before.status, before.progress, before.last_event,
                                                             before.step)
    assert not s.terminal and not s.cancel_requested and not moved(before, s)  # the janitor sees no progress
    assert _due([*running, CANCELLED])[0] is False  # nothing for the canceller either
    done = fold([*running, CANCELLED, *REST[len(running) - 1:]])
    assert (done.status, done.completed, done.email_due) == ("complete", COMPLETED, True)  # the ready email


@pytest.mark.parametrize("running", RUNNING, ids=["pending", "cataloging", "assembling", "assembled"])
def test_an_export_cancelled_after_a_cancel_was_asked_for_ends_the_export(running: list[ev.Event]) -> None:
    s = fold([*running, CANCEL, CANCELLED])
    assert (s.status, s.last_event, s.cancel_requested) == ("cancelled", "ExportCancelled", True)
    assert s.terminal and not s.email_due and _due([*running, CANCEL, CANCELLED]) == (False, False)
    assert fold([*running, CANCEL, CANCELLED, *REST[len(running) - 1:]]).status == "cancelled"


@pytest.mark.parametrize("events", [[*BEFORE, ASSEMBLED, FINALIZE], [*BEFORE, ASSEMBLED, FINALIZE, CANCEL]],
                         ids=["no-cancel", "cancel-too-late"])  # finalize-after-cancel: the cancel wins (below)
def test_an_export_cancelled_once_finalize_started_is_ignored(events: list[ev.Event]) -> None:
    """Once FinalizeStarted is logged the finalizer owns the export (its upload may be completing): an
    ExportCancelled then — forged, or one that lost the fenced race — does not end it."""
    before = fold(events)
    s = fold([*events, CANCELLED])
    assert (s.status, s.last_event, s.terminal) == ("uploading", before.last_event, False)
    assert _due([*events, CANCELLED]) == (False, True)
    done = fold([*events, CANCELLED, COMPLETED])
    assert (done.status, done.email_due) == ("complete", True)


@pytest.mark.parametrize("cut", range(1, len(LIFE) + 1))
@pytest.mark.parametrize("cancel", [False, True])
def test_every_export_cancelled_its_publishers_append_counts(cut: int, cancel: bool) -> None:
    """The rule costs the two publishers nothing: the canceller appends ExportCancelled only when it is
    due (``should_run``), the janitor only on its ``cancel`` verdict — both exactly when a cancel can
    win, and both fenced on the log they decided from. Whatever they append there ends the export."""
    events = [*LIFE[:cut], *([CANCEL] if cancel else [])]
    state = fold(events)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    janitor = verdict(state, state.last_event or "", now - timedelta(hours=1), False, 300, now) == "cancel"
    canceller = _due(events)[0]
    assert canceller == janitor == state.cancel_wins == (cancel and FINALIZE not in events)
    assert (fold([*events, CANCELLED]).status == "cancelled") == canceller


@pytest.mark.parametrize("running", [*RUNNING, [*BEFORE, CANCEL], [*BEFORE, ASSEMBLED, CANCEL]],
                         ids=["pending", "cataloging", "assembling", "assembled", "cancelling", "cancelling-assembled"])
def test_an_export_completed_nobody_finalized_is_ignored(running: list[ev.Event]) -> None:
    """The finalizer's NATS user may publish ExportCompleted on any export's subject, and the fold took a
    bare one (no FinalizeStarted in the log: the finalizer appends it, fenced, before it completes an
    upload) at any step: any tenant's running export — or one being cancelled — ended 'complete' with an
    archive that was never made (its assembler and canceller no longer due), and its person was sent the
    ready email for it. An ExportCompleted counts once FinalizeStarted is logged, as ExportCancelled only
    while a cancel can win; elsewhere the fold ignores it."""
    before = fold(running)
    s = fold([*running, COMPLETED])
    assert (s.status, s.completed, s.last_event, s.email_due) == (before.status, None, before.last_event, False)
    assert not s.terminal and not moved(before, s)
    assert _due([*running, COMPLETED]) == _due(running)
    if before.cancel_wins:  # the cancel still ends it
        assert fold([*running, COMPLETED, CANCELLED]).status == "cancelled"
    else:  # and the real one completes it
        done = fold([*running, COMPLETED, *REST[len(running) - 1:]])
        assert (done.status, done.email_due) == ("complete", True)


def test_an_export_completed_after_a_finalize_started_but_before_the_archive_is_ignored() -> None:
    """The finalizer's user may publish FinalizeStarted too: with it first, a forged ExportCompleted still
    ended an export still assembling. The archive must be assembled (the assembler's ArchiveAssembled)."""
    running = [*BEFORE, FINALIZE]
    s = fold([*running, COMPLETED])
    assert (s.status, s.completed, s.email_due) == ("assembling", None, False)
    done = fold([*running, COMPLETED, ASSEMBLED, FINALIZE, COMPLETED])  # the finalizer's own, once assembled
    assert (done.status, done.email_due) == ("complete", True)


@pytest.mark.parametrize("running", [BEFORE[:1], BEFORE[:2], BEFORE, [*BEFORE, CANCEL]],
                         ids=["pending", "cataloging", "assembling", "cancelling"])
def test_a_finalize_started_before_the_archive_is_assembled_is_ignored(running: list[ev.Event]) -> None:
    """FinalizeStarted is the finalizer's, appended (fenced) only once ArchiveAssembled is logged; its
    NATS user may publish it on any export's subject. Taken before the archive was assembled, it made a
    running export uncancellable (the gateway's 409 'being completed' for a person's cancel) and stopped
    a cancel under way: the canceller no longer due, the finalizer not due either (nothing assembled), the
    export stuck until the janitor failed it and mailed its person the failure. Ignored there."""
    before = fold(running)
    s = fold([*running, FINALIZE])
    assert (s.status, s.finalize_started, s.last_event) == (before.status, False, before.last_event)
    assert not moved(before, s) and s.cancellable == before.cancellable
    assert _due([*running, FINALIZE]) == _due(running)
    if before.cancel_wins:
        assert fold([*running, FINALIZE, CANCELLED]).status == "cancelled"
