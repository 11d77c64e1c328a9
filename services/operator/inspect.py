"""See: ``grove-export exports`` (every export, across tenants, from the log) and ``grove-export
show`` (one export: its fold, its events, its open upload and parts, its heartbeat).

Everything is read through :class:`shared.eventlog.jetstream.EventLog` and folded by :mod:`shared.core.lifecycle`, so
what the operator sees is what the services decide from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nats.js.errors import NotFoundError

from shared.bus.beats import last_beat
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.core import steps
from shared.core.lifecycle import ExportState, fold, shown_status
from shared.core.printable import printable
from shared.eventlog.directget import subject_counts
from shared.objectstore import NoSuchUpload, ObjectStore
from shared.runtime.settings import Settings


@dataclass(frozen=True)
class Folded:
    """One export read from the log: its fold, its events with their sequences."""

    state: ExportState
    events: tuple[tuple[int, ev.Event], ...]

    @property
    def last(self) -> ev.Event | None:
        return self.events[-1][1] if self.events else None

    @property
    def last_seq(self) -> int:
        return self.events[-1][0] if self.events else 0


async def read(bus: Bus, tenant_id: str, export_id: str) -> Folded:
    events = tuple([(seq, e) async for seq, e in bus.log.history(tenant_id, export_id)])
    return Folded(fold(e for _, e in events), events)


async def locate(bus: Bus, settings: Settings, export_id: str) -> list[str]:
    """Every tenant whose log holds events of this export id, sorted: export ids are unique within
    a tenant only (a gateway of one's own picks them), so an id alone may name several exports."""
    if not ev.is_valid_id(export_id):
        return []
    try:
        info = await bus.js.stream_info(settings.stream_name,
                                        subjects_filter=f"{settings.subject_prefix}.*.{export_id}.>")
    except NotFoundError:
        return []
    # a tenant token that is no id ('*': anyone can aim a PubAck at <prefix>.*.<export>.<type>) is no
    # tenant: it made every command naming the export refuse it as used by two tenants
    owners = (ev.export_of_subject(settings.subject_prefix, subject) for subject in (info.state.subjects or {}))
    return sorted({owner[0] for owner in owners if owner is not None})


async def requested(bus: Bus, settings: Settings, tenant_id: str | None = None) -> list[tuple[int, str, str]]:
    """(sequence of ExportRequested, tenant, export) of every export in the log, newest first."""
    subject = f"{settings.subject_prefix}.{tenant_id or '*'}.*.ExportRequested"
    out = []
    for subj in await subject_counts(bus.js, settings.stream_name, subject):
        owner = ev.export_of_subject(settings.subject_prefix, subj)
        if owner is None:  # a '*' there names every export of the tenant, not one
            continue
        msg = await bus.js.get_last_msg(settings.stream_name, subj, direct=True)
        out.append((int(msg.seq or 0), *owner))
    return sorted(out, reverse=True)


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    tenant: str | None = None
    older_than: timedelta | None = None
    step: str | None = None

    def match(self, state: ExportState, now: datetime) -> bool:
        if self.status and status_of(state, now) != self.status:
            return False
        if self.step and state.step != self.step:
            return False
        if self.older_than and (state.created_at is None or now - state.created_at < self.older_than):
            return False
        return True


@dataclass(frozen=True)
class Page:
    rows: list[Folded]
    page: int
    more: bool


async def list_exports(bus: Bus, settings: Settings, filters: Filters, now: datetime, *, page: int = 1,
                       per_page: int = 20) -> Page:
    """Newest first; folds only as many exports as it takes to fill the page (and see one more).

    An export whose log holds no valid request (a forged or malformed ``ExportRequested`` that every
    service drops) is not an export: it is skipped, as the janitor and the workers skip it."""
    if page < 1 or per_page < 1:
        raise ValueError(f"page and per_page start at 1, not {page} and {per_page}")
    skip, rows = (page - 1) * per_page, list[Folded]()
    for _, tenant, export in await requested(bus, settings, filters.tenant):
        folded = await read(bus, tenant, export)
        if not folded.state.exists or not filters.match(folded.state, now):
            continue
        if skip:
            skip -= 1
            continue
        if len(rows) == per_page:
            return Page(rows, page, True)
        rows.append(folded)
    return Page(rows, page, False)


def status_of(state: ExportState, now: datetime) -> str | None:
    """The status the gateway shows: a complete export past its expiry is expired before the janitor
    records it (:func:`shown_status`); ``show`` said complete, with a size, and ``--status expired``
    left it out."""
    if state.status is None:
        return None
    return shown_status(state.status, state.completed.expires_at if state.completed else None, now)


def size_of(state: ExportState) -> int | None:
    """The archive's size while there is an archive: all parts uploaded (``uploading``) or
    ``complete``; else None. Never the snapshot's source bytes: a cancelled or failed export that
    never had an archive showed them as if it had one, and an expired one's archive is deleted."""
    if state.status == "complete" and state.completed:
        return state.completed.size_bytes
    if state.status == "uploading" and state.assembled:
        return state.assembled.size_bytes
    return None


def snapshot_of(state: ExportState) -> dict[str, Any] | None:
    """What the catalog froze, and whether it became the archive: ``archived`` is true once the
    export completed (an expired one's archive was made, then deleted), false when it ended without
    one (cancelled or failed: ``show`` printed the snapshot's members as if they were archived), and
    null while the export is under way."""
    if not state.cataloged:
        return None
    c = state.cataloged
    return {"key": c.snapshot_key, "members": c.member_count, "totalBytes": c.total_bytes, "errors": c.error_count,
            "archived": True if state.completed else False if state.terminal else None}


def archive_of(state: ExportState) -> dict[str, Any] | None:
    """The archive a complete export made: its members, size, the items its errors.json lists, SHA-256 and
    expiry. The snapshot's errors are what the catalog planned; a source gone before it was archived is
    counted here only (``show`` said "0 errors" for an archive whose errors.json listed eight)."""
    if not state.completed:
        return None
    c = state.completed
    return {"members": state.assembled.member_count if state.assembled else None, "sizeBytes": c.size_bytes,
            "errors": c.error_count, "sha256": c.sha256, "expiresAt": _iso(c.expires_at)}


def summary(folded: Folded, now: datetime) -> dict[str, Any]:
    s, last = folded.state, folded.last
    status = status_of(s, now)
    return {"exportId": s.export_id, "tenantId": s.tenant_id, "status": status, "step": s.step,
            "attempt": s.attempt, "createdAt": _iso(s.created_at),
            "ageSeconds": int((now - s.created_at).total_seconds()) if s.created_at else None,
            "lastEvent": last.name() if last else None, "lastEventAt": _iso(last.occurred_at) if last else None,
            "sizeBytes": size_of(s) if status == s.status else None}  # expired: no archive to offer


async def upload_view(store: ObjectStore, settings: Settings, state: ExportState) -> dict[str, Any] | None:
    """The logged upload and what the store holds for it right now."""
    if state.upload is None:
        return None
    up = state.upload
    view: dict[str, Any] = {"uploadId": up.upload_id, "key": up.archive_key, "partSize": up.part_size,
                            "loggedParts": [p.number for p in state.parts],
                            "loggedBytes": state.archive_bytes_uploaded}
    try:
        parts = await store.list_parts(settings.buckets.exports, up.archive_key, up.upload_id)
    except NoSuchUpload:
        view.update(open=False, storedParts=[])
        return view
    view.update(open=True, storedParts=[p.part_number for p in parts], storedBytes=sum(p.size for p in parts))
    return view


async def heartbeat(bus: Bus, settings: Settings, tenant_id: str, export_id: str,
                    now: datetime) -> dict[str, Any] | None:
    """The export's freshest heartbeat (step, worker, when; ``deaths`` when runs before it died) over
    its steps' keys, read as the janitor and the workers read them (shared/bus/beats.py), or None
    when no worker holds one."""
    beats = []
    for step in dict.fromkeys(s.step for s in steps.STEPS):
        beat = await last_beat(bus, settings, step, tenant_id, export_id)
        if beat is not None:
            beats.append(beat)
    if not beats:
        return None
    beat = max(beats, key=lambda b: float(b.get("at", 0)))
    # a field beside the worker's holding NaN or Infinity (json.loads takes them; anyone can put a beat)
    # made `show --json` print NaN, which no JSON reader accepts. The workers write scalars only: a
    # list or object (nested hundreds deep, it would not even print) is left out too
    shown = {k: v for k, v in beat.items() if _scalar(v)}
    shown["ageSeconds"] = round(now.timestamp() - float(beat.get("at", 0)), 1)
    return shown


def _scalar(value: Any) -> bool:
    """A JSON scalar JSON can write: text, a whole number, a bool, null or a finite number."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, bool))


_ENVELOPE = frozenset({"event_id", "export_id", "tenant_id", "version", "occurred_at", "producer"})


def event_fields(event: ev.Event) -> dict[str, Any]:
    """An event's own fields, without the envelope."""
    return event.model_dump(mode="json", exclude=set(_ENVELOPE))


def event_line(seq: int, event: ev.Event) -> str:
    """One line per event, as ``grove-export events`` and ``show`` both print it: the line already says
    the type, the time and the producer; unset and empty fields say nothing. Whoever published the event chose
    its text (a username, a reason), so control and bidi characters are escapes (:func:`printable`)."""
    fields = event.model_dump(mode="json", exclude_none=True, exclude={*_ENVELOPE, "type"})
    detail = " ".join(f"{k}={v}" for k, v in fields.items() if v != "")  # "" (no worker, no operator): unset too
    return printable(f"{seq:>8} {event.occurred_at:%Y-%m-%dT%H:%M:%S.%f}Z {event.producer:<10} {event.name():<18} "
                     f"{detail}")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
