"""A fenced append that is not lost to messages which moved nothing.

Every append is fenced on the export's last stored sequence: a writer decides from its fold, and the
server refuses the append (:class:`~shared.eventlog.jetstream.Conflict`) when the log moved since. But
any service user can have a message stored on any export's subjects — garbage on a subject its
allow-list names, a PubAck it aims there as a reply subject — and an event the fold ignores (a second
ExportRequested, a cancel of a finished export) is stored too. Every reader drops or ignores them, yet
their sequence moves the fence: the writer re-decided, and a step ran again from the start (the
notifier sent its email once more per such message). Here, after a Conflict, the messages logged since
the fold are read: when none of them changes the fold (:func:`shared.core.lifecycle.moved`) and none
is this very event, the decision still holds and the event is appended again after them. A real event
(a cancel, another replica's part) is still a Conflict: the writer re-decides.

One rule for every writer of the log: the step worker, a cancel, the janitor and the operator's tools.
"""

from __future__ import annotations

from shared.core import events as ev
from shared.core.lifecycle import ExportState, apply, moved
from shared.eventlog.jetstream import Conflict, Loaded
from shared.ports import EventLogPort

ROUNDS = 8  # tries at one append while only messages that change nothing land before it


async def append_folded(log: EventLogPort, event: ev.Event, loaded: Loaded, msg_id: str | None = None) -> Loaded:
    """Append ``event`` after ``loaded`` (the fold it was decided from) — or after messages logged
    since that moved nothing; the fold with the event and its sequence. Conflict when the log moved."""
    state, expected = loaded.state, loaded.last_seq
    for round_ in range(ROUNDS):
        try:
            seq = await log.append(event, expected, msg_id)
            return Loaded(apply(state, event), seq)
        except Conflict:
            unmoved = await _unmoved_since(log, state, expected, event.event_id)
            if unmoved is None or round_ == ROUNDS - 1:
                raise
            state, expected = unmoved
    raise AssertionError("unreachable: the last round raises")  # pragma: no cover


async def _unmoved_since(log: EventLogPort, state: ExportState, seq: int,
                         event_id: str) -> tuple[ExportState, int] | None:
    """The fold and last sequence now, when nothing logged after ``seq`` changed ``state`` nor is
    this very event; else None (re-decide)."""
    last = await log.last_seq(state.tenant_id, state.export_id)
    if last < seq:
        return None  # messages the fold was made from are gone (see below)
    # Messages the fold was made from are gone when its request is: erase-tenant deleted the export's
    # events while this writer was paused. Such a log is no log that 'moved nothing' — appended again
    # at 0, or after a message stored on the erased export's subjects since, the event went into the
    # erased export, and its step went on writing the tenant's data.
    requested = state.request is None  # a fold without a request has none to lose
    async for at, logged in log.history(state.tenant_id, state.export_id):
        if at <= seq:
            requested = requested or isinstance(logged, ev.ExportRequested)
            continue
        if at > last or not requested:
            break
        after = apply(state, logged)
        if logged.event_id == event_id or moved(state, after):
            return None
        state = after
    return (state, last) if requested else None
