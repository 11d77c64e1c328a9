"""The cancel-vs-finalize rule, decided from the fold alone: whatever the order of CancelRequested
and FinalizeStarted, exactly one of the canceller and the finalizer is due, and the gateway's
cancel is refused exactly when the finalizer owns the export."""

from __future__ import annotations

import itertools

import pytest

from services.canceller.service import should_run as canceller_due
from services.finalizer.service import should_run as finalizer_due
from shared.core import events as ev
from shared.core.lifecycle import fold
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
    # (cancel, finalize) cannot come from fenced writers, but even then the log has one owner: once
    # FinalizeStarted is there the upload may be completing, so the finalizer finishes it.
    assert canceller != finalizer
    assert finalizer


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
