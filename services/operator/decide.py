"""Pure decisions of the operator's commands: from an export's fold (and what the store still holds)
to an action, or a :class:`Refused` with one line that says why. No clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.gateway import admission as adm
from shared.core.lifecycle import (
    RESENDABLE,
    ExportState,
    counts_toward_limit,
    is_terminal,
    logged_upload_usable,
    retryable,
    shown_status,
)
from shared.runtime.settings import MAX_DAYS


@dataclass(frozen=True)
class Refused:
    """The log says no; ``why`` is the one line the operator sees."""

    why: str


@dataclass(frozen=True)
class RetryPlan:
    from_step: str  # "catalog" | "assemble" | "finalize"
    upload_id: str | None
    error_count: int

    def describe(self) -> str:
        if self.from_step == "finalize":
            return "from finalize (the parts are all uploaded)"
        if self.from_step == "assemble":
            how = f"resuming upload {self.upload_id}" if self.upload_id else "a new upload from part 1"
            return f"from assemble (snapshot kept, {how})"
        return "from catalog (a new snapshot)"


def plan_retry(state: ExportState, *, snapshot_present: bool = False, upload_open: bool = False,
               records_present: bool = False) -> RetryPlan | Refused:
    """Where a failed export can go on from: the furthest step whose inputs still exist.

    ``snapshot_present``: the snapshot and its rendered texts are in the store; ``upload_open``: the
    logged multipart upload still accepts parts; ``records_present``: every logged part's member
    records are in the store (needed to resume inside the archive).
    """
    if not state.exists:
        return Refused("no such export")
    if not retryable(state):
        if state.status == "failed":
            return Refused("the export was being cancelled when it failed; start a new export instead")
        return Refused(f"the export is {state.status}; only a failed export can be retried")
    if state.assembled is not None and logged_upload_usable(state, upload_open=upload_open):
        return RetryPlan("finalize", state.upload.upload_id if state.upload else None, state.error_count)
    if state.cataloged is not None and snapshot_present:
        # the lifecycle's rule (the assembler asks it too); an upload with no part logged gains nothing
        keep = bool(state.parts) and logged_upload_usable(state, upload_open=upload_open,
                                                          records_present=records_present)
        return RetryPlan("assemble", state.upload.upload_id if keep and state.upload else None,
                         state.cataloged.error_count)
    return RetryPlan("catalog", None, 0)


def slot_for_retry(slot: adm.Slot, active_status: str | None, now: datetime, export_id: str,
                   reservation_timeout_s: float) -> adm.Slot | Refused:
    """The admission slot once the retried export holds it again; refused while another export does.

    Keeps what counts toward the hour: a complete export the slot named is remembered as the last one.
    """
    active = slot.active_export_id
    counted_at, counted_id = slot.last_started_at, slot.last_export_id
    if active is not None and active != export_id:
        if adm.reservation_live(slot, active_status, now, reservation_timeout_s) and not is_terminal(active_status):
            return Refused(f"the tenant has another export in progress ({active}, {active_status or 'reserved'}); "
                           f"one active export per tenant")
        if counts_toward_limit(active_status):
            counted_at, counted_id = slot.reserved_at, active
    return adm.Slot(export_id, now, counted_at, counted_id)


def resend_refusal(state: ExportState, now: datetime) -> Refused | None:
    """``now``: a complete export past its expiry is expired (:func:`shown_status`) before the janitor
    records it; the ready email would link to what the gateway already calls expired."""
    if not state.exists:
        return Refused("no such export")
    if state.request is not None and state.request.delivery_method != "email":
        return Refused("this export was asked for as a download only; there is no email to send")
    expires_at = state.completed.expires_at if state.completed else None
    if shown_status(state.status or "", expires_at, now) == "expired":
        return Refused("the archive has expired and was deleted; the email would link to nothing")
    if state.status == "cancelled":
        return Refused("the export was cancelled; a cancelled export sends no email (only a complete or failed "
                       "one does)")
    if state.status not in RESENDABLE:
        return Refused(f"the export is {state.status}; there is no outcome to email yet")
    if state.notification is None:
        return Refused("an email for this export is already due; the notifier is on it")
    return None


def unlock_refusal(tenant_exports: list[ExportState], admission: adm.Decision,
                   reserving: str | None = None) -> Refused | None:
    """Free the slot only when no export of the tenant is active in the log, and only when the
    admission rule (``admission``: what a new request would get now) actually holds the tenant back.
    A log with no valid request (a forged or malformed ExportRequested every service drops) is no
    export: it is not active, and it held the slot locked for good ("export  is None in the log").
    ``reserving``: the export a live reservation names while the log holds no request of it yet (a
    gateway between reserving the slot and publishing ExportRequested): freeing the slot then let a
    second request in beside it, and AdmissionUnlocked written first in its log refused its request."""
    for state in tenant_exports:
        if state.exists and not state.terminal:
            return Refused(f"export {state.export_id} is {state.status} in the log; cancel it first "
                           f"(grove-export cancel {state.export_id}) or let it finish")
    if reserving is not None:  # a gateway holds a live reservation: its ExportRequested is on the way
        return Refused(f"a request is being admitted right now (export {reserving} is reserved and not yet in "
                       "the log); try again in a few seconds")
    if isinstance(admission, adm.Admit):
        return Refused("the admission slot is already free: a new export would be admitted now")
    return None


MAX_AGE_DAYS = MAX_DAYS  # a hundred years: older than any export, and the longest any setting names


def parse_age(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``3d`` → a timedelta; ValueError with a readable message otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = text[:-1], text[-1:].lower()
    if unit not in units or not value.replace(".", "", 1).isdigit():
        raise ValueError(f"{text!r} is not an age like 90s, 15m, 2h or 3d")
    seconds = float(value) * units[unit]
    if seconds > MAX_AGE_DAYS * 86400:  # beyond it, timedelta and "now - age" overflow
        raise ValueError(f"{text!r} is more than {MAX_AGE_DAYS} days")
    return timedelta(seconds=seconds)


def human_age(then: datetime | None, now: datetime) -> str:
    """``42s``, ``7m``, ``3h``, ``2d``: how long ago, in the largest whole unit."""
    if then is None:
        return "-"
    secs = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"
