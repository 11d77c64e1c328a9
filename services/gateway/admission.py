"""Admission: the pure decision of whether a tenant may start an export now. No clock, no I/O.

The tenant's slot (KV key ``tenant.<id>`` in the admission bucket, JSON) holds the export most
recently admitted (``activeExportId``, ``reservedAt``) and the last *earlier* export that counts
toward the hour (``lastExportId``, ``lastStartedAt``). Rules, in order:

1. the active export's log is not terminal → :class:`Conflict` (409, with its id);
   a reservation with no events yet blocks only for ``reservation_timeout_s`` after ``reservedAt``;
2. the last export that counts started less than ``window_s`` ago → :class:`RateLimited` (429).
   Every admitted export counts — complete, expired and cancelled ones too (otherwise create →
   cancel → create would run the catalog and part uploads without limit) — except one that failed
   (every ExportFailed is our fault: a step out of retries, or a dead worker) and an abandoned
   reservation;
3. otherwise → :class:`Admit` with the slot to compare-and-set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.core.events import is_valid_id
from shared.core.lifecycle import counts_toward_limit, is_terminal


@dataclass(frozen=True)
class Slot:
    active_export_id: str | None = None
    reserved_at: datetime | None = None
    last_started_at: datetime | None = None
    last_export_id: str | None = None
    idempotency: str | None = None  # "<sha256([user, key])>:<sha256(body)>" of the active reservation
    # The stored fields that could not be read (from_json): each is None here. A gateway of one's own
    # writes this key too (README, "Admission"), and the README names the fields, not their encoding.
    unreadable: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"activeExportId": self.active_export_id, "reservedAt": _iso(self.reserved_at),
                "lastStartedAt": _iso(self.last_started_at), "lastExportId": self.last_export_id,
                "idempotency": self.idempotency}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Slot:
        """The slot as stored. A field that cannot be what it holds — a time that is not ISO 8601
        with its zone (one without a zone, epoch milliseconds, any other text), an export id that is
        no id (a ``*`` folded every export of the tenant as one), an idempotency that is not text —
        is None and named in ``unreadable``: each made every request of the tenant a 500 before
        (``now - reserved_at`` on a naive time), and ``grove-export unlock`` too."""
        bad: list[str] = []

        def read(name: str, ok: Any) -> Any:
            value = data.get(name)
            if value is None or value == "":
                return None
            got = ok(value)
            if got is None:
                bad.append(name)
            return got

        def an_id(value: Any) -> str | None:
            return value if isinstance(value, str) and is_valid_id(value) else None

        def text(value: Any) -> str | None:
            return value if isinstance(value, str) else None

        return cls(read("activeExportId", an_id), read("reservedAt", _dt), read("lastStartedAt", _dt),
                   read("lastExportId", an_id), read("idempotency", text), tuple(bad))


SLOT_FIELDS = frozenset({"activeExportId", "reservedAt", "lastStartedAt", "lastExportId", "idempotency"})  # to_json's


@dataclass(frozen=True)
class Admit:
    slot: Slot


@dataclass(frozen=True)
class Conflict:
    active_export_id: str


@dataclass(frozen=True)
class RateLimited:
    next_allowed_at: datetime
    retry_after_s: int


@dataclass(frozen=True)
class Replay:
    """The same Idempotency-Key and body as the active reservation: answer with its export.
    ``reserved_at``: None when its ExportRequested is in the log; else when it was reserved — the
    request that reserved it has not appended it (still in flight, or it failed: its client got a
    503 and retries), so the retry appends it, within the reservation's life — answering with the
    id alone named an export the log never got."""

    export_id: str
    reserved_at: datetime | None = None


@dataclass(frozen=True)
class Mismatch:
    """The same Idempotency-Key with a different body."""

    export_id: str


Decision = Admit | Conflict | RateLimited


def reservation_live(slot: Slot, active_status: str | None, now: datetime, timeout_s: float) -> bool:
    """The active export has events, or its reservation is younger than the timeout."""
    if slot.active_export_id is None:
        return False
    if active_status is not None:
        return True
    return slot.reserved_at is not None and now - slot.reserved_at < timedelta(seconds=timeout_s)


def being_admitted(slot: Slot, active_status: str | None, now: datetime, timeout_s: float) -> str | None:
    """The export a live reservation names while the log holds no event of it yet: a gateway between
    reserving the slot and appending its ExportRequested (README, Admission). None otherwise."""
    if active_status is None and reservation_live(slot, active_status, now, timeout_s):
        return slot.active_export_id
    return None


def decide(now: datetime, slot: Slot | None, active_status: str | None, *, new_export_id: str,
           window_s: float, reservation_timeout_s: float, idempotency: str | None = None) -> Decision:
    """Admit, Conflict or RateLimited for a new export ``new_export_id`` at server time ``now``.

    ``active_status`` is the folded status of ``slot.active_export_id`` (None: no events yet).
    """
    slot = slot or Slot()
    counted_at, counted_id = slot.last_started_at, slot.last_export_id
    active = slot.active_export_id
    if active is not None:
        if active_status is None and reservation_live(slot, None, now, reservation_timeout_s):
            return Conflict(active)
        if active_status is not None and not is_terminal(active_status):
            return Conflict(active)
        if counts_toward_limit(active_status):
            counted_at, counted_id = slot.reserved_at, active
    if counted_at is not None:
        next_allowed = counted_at + timedelta(seconds=window_s)
        if now < next_allowed:
            return RateLimited(next_allowed, max(1, math.ceil((next_allowed - now).total_seconds())))
    new = Slot(new_export_id, now, counted_at, counted_id, idempotency)
    return Admit(new)


def rate_text(window_s: float) -> str:
    """The rate limit as the 429 states it: "One new export per hour." for the default window, and
    the configured one (``GROVE_RATE_WINDOW_S``) otherwise — it said "per hour" whatever it was."""
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        n = window_s / size
        if n >= 1 and n == int(n):
            return f"One new export per {unit}." if n == 1 else f"One new export every {int(n)} {unit}s."
    return f"One new export every {window_s:g} seconds."


IDEMPOTENCY_TTL = timedelta(hours=24)  # how long an Idempotency-Key is honoured (README, "The API")


def match_idempotency(slot: Slot | None, active_status: str | None, now: datetime, timeout_s: float,
                      idempotency: str | None) -> Replay | Mismatch | None:
    """Whether this request repeats the active reservation's Idempotency-Key (same or other body),
    within :data:`IDEMPOTENCY_TTL` of that reservation: the slot keeps its key until the tenant's next
    export, so a key used again days later was answered with the old export (or a 422) for good."""
    if not idempotency or slot is None or not slot.idempotency or slot.active_export_id is None:
        return None
    if not reservation_live(slot, active_status, now, timeout_s):
        return None
    if slot.reserved_at is None or now - slot.reserved_at >= IDEMPOTENCY_TTL:
        return None
    key, _, _ = idempotency.partition(":")
    if slot.idempotency == idempotency:
        return Replay(slot.active_export_id, None if active_status is not None else slot.reserved_at)
    if slot.idempotency.partition(":")[0] == key:
        return Mismatch(slot.active_export_id)
    return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: Any) -> datetime | None:
    """An ISO 8601 time with its zone, or None."""
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else None

