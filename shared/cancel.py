"""Asking for a cancel: the one protocol the gateway, the operator CLI and the tests all call.

A cancel is an event, appended fenced at the sequence the caller folded. It is refused once the
export has ended or once ``FinalizeStarted`` is in the log (the finalizer then completes it): that
is the whole cancel-vs-finalize rule, decided here from the fold and enforced by the fence.

Errors::

    CancelError
    ├── NoSuchExport     the log has no event of this export
    ├── NotCancellable   ended, or finalizing (``status`` says which)
    └── CancelContended  the log kept moving under every try
"""

from __future__ import annotations

from shared.core import events as ev
from shared.eventlog.fence import append_folded
from shared.eventlog.jetstream import Conflict
from shared.ports import EventLogPort

ROUNDS = 8


class CancelError(Exception):
    pass


class NoSuchExport(CancelError):
    pass


class NotCancellable(CancelError):
    def __init__(self, status: str, finalizing: bool) -> None:
        self.status = status
        self.finalizing = finalizing
        what = "being completed" if finalizing else f"already {status}"
        super().__init__(f"the export is {what}")


class CancelContended(CancelError):
    pass


async def request_cancel(log: EventLogPort, tenant_id: str, export_id: str, requested_by: str,
                         rounds: int = ROUNDS, *, operator: str = "", reason: str = "") -> int | None:
    """Append ``CancelRequested``; its sequence, or None when a cancel was already asked for.
    An operator's cancel (``grove-export cancel``) also records who and why."""
    for _ in range(rounds):
        loaded = await log.load(tenant_id, export_id)
        state = loaded.state
        if not state.exists:
            raise NoSuchExport(export_id)
        if not state.cancellable:
            raise NotCancellable(state.status or "", finalizing=not state.terminal)
        if state.cancel_requested:
            return None
        event = ev.CancelRequested(export_id=export_id, tenant_id=tenant_id, requested_by=requested_by,
                                   operator=operator, reason=reason)
        try:
            return (await append_folded(log, event, loaded)).last_seq
        except Conflict:
            continue  # the pipeline moved: re-read and re-decide
    raise CancelContended(f"{export_id}: the log moved under {rounds} tries")
