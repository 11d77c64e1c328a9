"""Fix: operator cancel, retry, resend and unlock. Each decides from the export's fold
(:mod:`services.operator.decide`), then appends one event with who and why, fenced at the sequence it
folded — a racing service or a second operator makes it re-read and re-decide, never fork the log.

Errors::

    Refusal   the log (or the admission slot) says no: one line for the operator, exit 1
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.gateway import admission as adm
from services.gateway.admission_kv import AdmissionStore
from services.operator import decide
from services.operator.inspect import read, requested
from shared.bus.connect import Bus
from shared.cancel import CancelContended, NoSuchExport, NotCancellable, request_cancel
from shared.core import events as ev
from shared.core.keys import texts_key_beside, work_prefix
from shared.core.lifecycle import ExportState, retry_may_use_stored
from shared.eventlog.fence import append_folded
from shared.eventlog.jetstream import Conflict, Loaded
from shared.objectstore import ObjectStore
from shared.objectstore import upload_open as store_upload_open
from shared.runtime.settings import Settings

ROUNDS = 8
PRODUCER = "operator"


class Refusal(Exception):
    """The log says no."""


@dataclass(frozen=True)
class Who:
    operator: str
    reason: str


def _refuse(result: decide.Refused | None, export_id: str) -> None:
    if result is not None:
        raise Refusal(f"{export_id}: {result.why}")


async def cancel(bus: Bus, tenant_id: str, export_id: str, who: Who) -> str:
    """The gateway's cancel (:func:`shared.cancel.request_cancel`), by an operator, with who and why."""
    try:
        seq = await request_cancel(bus.log, tenant_id, export_id, f"operator:{who.operator}",
                                   operator=who.operator, reason=who.reason)
    except NoSuchExport:
        raise Refusal(f"{export_id}: no such export") from None
    except NotCancellable as e:
        hint = " (FinalizeStarted is in the log)" if e.finalizing else ""
        raise Refusal(f"{export_id}: {e}{hint}; it can no longer be cancelled") from None
    except CancelContended:
        raise Refusal(f"{export_id}: the export is changing too quickly to cancel; try again") from None
    if seq is None:
        raise Refusal(f"{export_id}: a cancel is already in the log; the canceller is on it")
    return f"{export_id}: CancelRequested by {who.operator} (seq {seq}); the canceller aborts the upload"


async def _retry_inputs(store: ObjectStore, settings: Settings, s: ExportState) -> dict[str, bool]:
    """What the store still holds of a failed export: the snapshot, the upload, the part records —
    none of it once the janitor may be deleting it (``lifecycle.retry_may_use_stored``)."""
    bucket = settings.buckets.exports
    if not retry_may_use_stored(s, datetime.now(UTC), timedelta(days=settings.archive_ttl_days)):
        return {"snapshot_present": False, "upload_open": False, "records_present": False}
    keys = {o.key for o in await store.list_keys(bucket, work_prefix(s.tenant_id, s.export_id))}
    snapshot = s.cataloged is not None and {s.cataloged.snapshot_key, texts_key_beside(s.cataloged.snapshot_key)} <= keys
    upload_open = s.upload is not None and await store_upload_open(store, bucket, s.upload.archive_key,
                                                                   s.upload.upload_id)
    records = all(p.records_key in keys for p in s.parts)
    return {"snapshot_present": snapshot, "upload_open": upload_open, "records_present": records}


async def _hold_slot(admission: AdmissionStore, settings: Settings, tenant_id: str, export_id: str) -> None:
    """Point the tenant's admission slot at the retried export, unless another export holds it."""
    key = f"tenant.{tenant_id}"
    for _ in range(ROUNDS):
        now = await admission.server_now()
        data, revision, _ = await admission.read(key)
        slot = adm.Slot.from_json(data) if data else adm.Slot()
        active = slot.active_export_id
        status = await admission.active_status(tenant_id, active) if active else None
        new = decide.slot_for_retry(slot, status, now, export_id, settings.reservation_timeout_s)
        if isinstance(new, decide.Refused):
            raise Refusal(f"{export_id}: {new.why}")
        if await admission.write(key, new.to_json(), revision):
            return
    raise Refusal(f"{export_id}: the tenant's admission slot is changing too quickly; try again")


async def retry(bus: Bus, store: ObjectStore, settings: Settings, tenant_id: str, export_id: str, who: Who) -> str:
    """A failed export starts again as a new attempt, from the furthest step its log and store allow."""
    admission = AdmissionStore(bus, settings, PRODUCER)
    for _ in range(ROUNDS):
        loaded = await bus.log.load(tenant_id, export_id)
        s = loaded.state
        inputs = await _retry_inputs(store, settings, s) if s.exists else {}
        plan = decide.plan_retry(s, **inputs)
        if isinstance(plan, decide.Refused):
            raise Refusal(f"{export_id}: {plan.why}")
        await _hold_slot(admission, settings, tenant_id, export_id)
        event = ev.ExportRetried(export_id=export_id, tenant_id=tenant_id, operator=who.operator, reason=who.reason,
                                 from_step=plan.from_step, upload_id=plan.upload_id,  # type: ignore[arg-type]
                                 attempt=s.attempt + 1, error_count=plan.error_count, producer=PRODUCER)
        try:
            # not append_folded: the decision holds the tenant's admission slot, which is not in the
            # fold (an unlock meanwhile freed it, and AdmissionUnlocked moves no fold): re-hold, re-decide
            seq = await bus.log.append(event, loaded.last_seq)
        except Conflict:
            continue
        said = f"{export_id}: attempt {s.attempt + 1} started {plan.describe()} by {who.operator} (seq {seq})"
        # An unlock frees the slot first and records AdmissionUnlocked after: one that freed it after the
        # hold above and before this append left the running export without its slot (a second export
        # was then admitted beside it). Held again now the log shows it running: an unlock deciding from
        # here on sees it active, and one that decided before finds the slot's revision changed.
        try:
            await _hold_slot(admission, settings, tenant_id, export_id)
        except Refusal as e:
            return f"{said}; but its admission slot could not be held again ({e})"
        return said
    raise Refusal(f"{export_id}: the export is changing too quickly to retry; try again")


async def resend(bus: Bus, tenant_id: str, export_id: str, who: Who) -> str:
    """ResendRequested: the notifier sends the outcome's email again."""
    for _ in range(ROUNDS):
        loaded = await bus.log.load(tenant_id, export_id)
        _refuse(decide.resend_refusal(loaded.state, datetime.now(UTC)), export_id)
        event = ev.ResendRequested(export_id=export_id, tenant_id=tenant_id, operator=who.operator, reason=who.reason,
                                   producer=PRODUCER)
        try:
            seq = (await append_folded(bus.log, event, loaded)).last_seq
        except Conflict:
            continue
        kind = "ready" if loaded.state.status == "complete" else "failed"
        return f"{export_id}: ResendRequested by {who.operator} (seq {seq}); the notifier sends the {kind} email again"
    raise Refusal(f"{export_id}: the export is changing too quickly; try again")


async def reserving(bus: Bus, settings: Settings, tenant_id: str) -> tuple[str | None, int]:
    """The export a live reservation of the tenant names while the log holds no request of it yet: a
    gateway between reserving the slot and appending its ExportRequested (README, Admission, 5–6);
    and the revision of the slot so judged (0: the tenant has none)."""
    admission = AdmissionStore(bus, settings, PRODUCER)
    now = await admission.server_now()
    data, revision, _ = await admission.read(f"tenant.{tenant_id}")
    slot = adm.Slot.from_json(data) if data else adm.Slot()
    if slot.active_export_id is None:
        return None, revision
    status = await admission.active_status(tenant_id, slot.active_export_id)
    return adm.being_admitted(slot, status, now, settings.reservation_timeout_s), revision


async def unlock(bus: Bus, settings: Settings, tenant_id: str, who: Who) -> str:
    """Free the tenant's admission slot (active export and hourly limit) when the log shows nothing
    active; record AdmissionUnlocked on the export the slot named."""
    admission = AdmissionStore(bus, settings, PRODUCER)
    key = f"tenant.{tenant_id}"
    for _ in range(ROUNDS):
        states = [(await read(bus, t, e)).state for _, t, e in await requested(bus, settings, tenant_id)]
        now = await admission.server_now()
        data, revision, _ = await admission.read(key)
        slot = adm.Slot.from_json(data) if data else adm.Slot()
        named = slot.active_export_id or slot.last_export_id
        status = await admission.active_status(tenant_id, slot.active_export_id) if slot.active_export_id else None
        would = adm.decide(now, slot, status, new_export_id="probe", window_s=settings.rate_window_s,
                           reservation_timeout_s=settings.reservation_timeout_s)
        refusal = decide.unlock_refusal(states, would, reserving=adm.being_admitted(
            slot, status, now, settings.reservation_timeout_s))
        if refusal:
            typo = "" if states or data else " (the log holds no export of this tenant: a typo?)"
            raise Refusal(f"tenant {tenant_id}: {refusal.why}{typo}")
        if not await admission.write(key, adm.Slot().to_json(), revision):
            continue  # a request was admitted meanwhile: re-decide
        assert named is not None
        seq = await _record(bus, ev.AdmissionUnlocked(export_id=named, tenant_id=tenant_id, operator=who.operator,
                                                      reason=who.reason, released_export_id=slot.active_export_id,
                                                      producer=PRODUCER))
        held = {s.export_id: s.status for s in states}.get(named) or "no events"
        return (f"tenant {tenant_id}: admission slot freed by {who.operator} (it named {named}, {held}); "
                f"the hourly limit starts afresh; AdmissionUnlocked seq {seq}")
    raise Refusal(f"tenant {tenant_id}: the admission slot is changing too quickly; try again")


async def _record(bus: Bus, event: ev.Event) -> int:
    """Append at whatever the export's log holds now (the event changes no decision)."""
    for _ in range(ROUNDS):
        loaded: Loaded = await bus.log.load(event.tenant_id, event.export_id)
        try:
            return (await append_folded(bus.log, event, loaded)).last_seq
        except Conflict:
            continue
    raise Refusal(f"{event.export_id}: could not record {event.name()}; the log kept moving")
