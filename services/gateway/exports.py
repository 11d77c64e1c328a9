"""What the endpoints do, between parsing and answering: create, find, cancel.

Each reads what it needs, decides with a pure function (admission, the fold) and acts on the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

from aiohttp import web

from services.gateway import admission as adm
from services.gateway import problems as p
from services.gateway.auth import Identity, valid_id
from services.gateway.keys import ADMISSION, BUS, BUS_PROBE, READ_MODEL, SETTINGS
from services.gateway.projection import Row, fold_rows
from services.gateway.schemas import ExportRequest
from shared.bus.connect import Bus
from shared.cancel import CancelContended, NoSuchExport, NotCancellable, request_cancel
from shared.core import events as ev
from shared.eventlog.jetstream import Conflict
from shared.runtime import faults

log = logging.getLogger(__name__)
READ_YOUR_WRITES_S = 2.0
# The part of a reservation's life its ExportRequested may not use: other gateways judge the reservation
# by their own reading of the server's clock, and a publish given up on may still be on its way.
RESERVATION_MARGIN = 0.1
SLOW = "The export service is slow right now; try again."


async def require_bus(app: web.Application) -> None:
    """A write (or a read the read model cannot answer) goes to NATS only while it answers: a frozen server
    or a partition that drops packets keeps the client "connected", and each such request waited out the
    bus's 10 s request timeout for its 503 while the gateway's connections piled up. The readiness probe's
    answer (a PING within 2 s, shared, at most one a second) says so in 2 s at most, at once while it stands."""
    if await app[BUS_PROBE].failing(app[BUS].nc):
        raise p.Unavailable("The event bus is not reachable; try again shortly.")


def fingerprint(idempotency_key: str | None, request: ExportRequest, user_id: str) -> str | None:
    """"<sha256(user, key)>:<sha256(canonical body)>"; equal bodies are equal after defaults are applied.

    A key is its user's own (the token's ``sub``), not the tenant's: under one hash for the tenant,
    another user's request with the same key and body was answered with the first user's export
    (whose email and link go to the first user), or, while that one's request had not reached the
    log, appended it with the other user's identity."""
    if idempotency_key is None:
        return None
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    key = json.dumps([user_id, idempotency_key], separators=(",", ":"))  # unambiguous: no separator to forge
    return f"{hashlib.sha256(key.encode()).hexdigest()}:{hashlib.sha256(body.encode()).hexdigest()}"


async def create_export(app: web.Application, who: Identity, request: ExportRequest,
                        idempotency_key: str | None = None) -> str:
    """Admit and append ExportRequested; returns the export id (an earlier one for a repeated key)."""
    await require_bus(app)
    settings, bus = app[SETTINGS], app[BUS]
    export_id, fp = ev.new_export_id(), fingerprint(idempotency_key, request, who.user_id)
    outcome = await app[ADMISSION].admit(who.tenant_id, export_id, fp)
    await faults.slow("gateway.admitted")  # tests: hold an admitted request before its ExportRequested
    match outcome:
        case adm.Replay(export_id=earlier, reserved_at=None):
            return earlier
        case adm.Replay(export_id=earlier, reserved_at=reserved):  # reserved, not in the log: this retry requests it
            export_id = earlier
        case adm.Admit(slot=adm.Slot(reserved_at=reserved)):
            pass
        case adm.Mismatch():
            raise p.IdempotencyMismatch(
                "This Idempotency-Key was already used with a different body; use a new key.")
        case adm.Conflict(active_export_id=active):
            raise p.ExportInProgress("An export is already in progress for this blog.", activeExportId=active)
        case adm.RateLimited(next_allowed_at=at, retry_after_s=secs):
            raise p.RateLimited(adm.rate_text(settings.rate_window_s), headers={"Retry-After": str(secs)},
                                nextAllowedAt=at.isoformat().replace("+00:00", "Z"), retryAfter=secs)
    assert reserved is not None
    life = settings.reservation_timeout_s
    left = life - (await app[ADMISSION].clock.now() - reserved).total_seconds()
    if left < life / 2:  # the reservation may lapse before the event lands: let the client retry instead
        raise p.Unavailable(SLOW)
    event = ev.ExportRequested(
        export_id=export_id, tenant_id=who.tenant_id, user_id=who.user_id, user_email=who.email,
        username=who.username, mode=request.mode, include_images=request.include_images,
        delivery_method=request.delivery_method, producer="gateway")
    try:
        # The request lands within its reservation's life or not at all: once it has lapsed, another
        # request of the tenant is admitted, and a late ExportRequested (the append retries a bus that
        # does not answer for up to ~36 s) ran a second export beside that one.
        async with asyncio.timeout(left - life * RESERVATION_MARGIN):
            seq = await request_once(bus, event)
    except TimeoutError:
        raise p.Unavailable(SLOW) from None
    if fp:
        await app[ADMISSION].remember(who.tenant_id, fp, export_id)
    if not await app[READ_MODEL].wait_for(seq, READ_YOUR_WRITES_S):
        log.warning("read model did not reach %s within %ss", seq, READ_YOUR_WRITES_S)
    return export_id


async def request_once(bus: Bus, event: ev.ExportRequested) -> int:
    """Append an export's ExportRequested as its first event; the sequence it has in the log. A retry
    with the same Idempotency-Key appends it for a reservation whose own request has not (yet), so
    the two may race: the one that comes second finds the export requested, and that is its answer."""
    try:
        return await bus.log.append(event, 0, msg_id=f"{event.export_id}:ExportRequested")
    except Conflict:
        loaded = await bus.log.load(event.tenant_id, event.export_id)
        if not loaded.state.exists:
            # The export's subjects hold a message, and none is its request: one every reader drops (any
            # service user may publish its own event types on any export's subjects, and a 409 names the
            # reserved export to anyone of the tenant), or a replica read back from behind the leader.
            # The log's Conflict went out of the handler: a 500. Not requested, so a 503 to retry.
            log.warning("%s of %s: its subjects hold messages but no request; not requested",
                        event.export_id, event.tenant_id)
            raise p.Unavailable(SLOW) from None
        return loaded.last_seq


async def find_row(app: web.Application, who: Identity, export_id: str) -> Row:
    """The caller's export from the read model, else folded from the log; another tenant's is a 404."""
    if not valid_id(export_id):
        raise p.NotFound("No export with this id.")
    row = await app[READ_MODEL].get(who.tenant_id, export_id)
    if row is not None:
        return row
    await require_bus(app)
    row = fold_rows([item async for item in app[BUS].log.history(who.tenant_id, export_id)])
    if row is None:
        raise p.NotFound("No export with this id.")
    return row


async def cancel_export(app: web.Application, who: Identity, export_id: str) -> None:
    """Append CancelRequested (shared.cancel's protocol); terminal or finalizing → 409."""
    if not valid_id(export_id):
        raise p.NotFound("No export with this id.")
    await require_bus(app)
    try:
        seq = await request_cancel(app[BUS].log, who.tenant_id, export_id, who.user_id)
    except NoSuchExport:
        raise p.NotFound("No export with this id.") from None
    except NotCancellable as e:
        detail = ("The archive is being completed; it can no longer be cancelled." if e.finalizing
                  else f"The export is already {e.status}.")
        raise p.NotCancellable(detail, exportStatus=e.status) from None
    except CancelContended:
        raise p.Unavailable("The export is changing too quickly to cancel; try again.") from None
    if seq is not None:
        await app[READ_MODEL].wait_for(seq, READ_YOUR_WRITES_S)
