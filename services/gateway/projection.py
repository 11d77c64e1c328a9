"""One ``storage_exports`` row folded from events: the read model's pure projection.

It follows :func:`shared.state.apply` rule for rule (a unit test folds the same events both ways
and compares), keeping only what the row needs: the last part's counters instead of every part.
Times are Unix milliseconds (UTC). ``workflow_id`` stays NULL: there is no workflow engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from shared import events as ev
from shared.state import RESENDABLE, TERMINAL

_AFTER_TERMINAL = (ev.NotificationSent, ev.NotificationFailed, ev.ExportExpired, ev.ExportRetried,
                   ev.ResendRequested)


@dataclass(frozen=True)
class Row:
    id: str
    tenant_id: str
    user_email: str
    mode: str
    include_images: int
    delivery_method: str
    status: str
    progress: int
    created_at: int
    r2_key: str | None = None
    file_size_bytes: int | None = None
    item_counts: str | None = None  # JSON: {posts, pages, images} or {files}
    error_message: str | None = None
    workflow_id: str | None = None
    updated_at: int | None = None
    completed_at: int | None = None
    expires_at: int | None = None
    # beyond the spec's columns
    user_id: str = ""
    username: str = ""
    sha256: str | None = None
    error_count: int = 0
    error_source: int = 0  # which event error_count came from: 1 cataloged, 2 assembled, 3 completed
    bytes_done: int = 0
    total_bytes: int | None = None  # None until cataloged
    items_done: int = 0
    items_total: int | None = None
    upload_id: str | None = None
    assembling_since: int | None = None
    last_part_at: int | None = None
    finalize_started: int = 0
    cancel_requested: int = 0
    notification: str | None = None
    notification_reason: str | None = None
    events: int = 0
    requested_seq: int = 0
    last_seq: int = 0

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def values(self) -> list[Any]:
        return [getattr(self, name) for name in _NAMES]

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def counts(self) -> dict[str, int]:
        return json.loads(self.item_counts) if self.item_counts else {}


_NAMES = tuple(Row.columns())


def replace(row: Row, **changes: Any) -> Row:
    """``dataclasses.replace`` for this flat frozen row, ~10x faster (a replay calls it per event)."""
    new = object.__new__(Row)
    new.__dict__.update(row.__dict__)
    new.__dict__.update(changes)
    return new


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _progress(row: Row) -> int:
    total = row.total_bytes or 0
    return 10 if total <= 0 else 10 + min(75, (75 * row.bytes_done) // total)


def project(row: Row | None, event: ev.Event, seq: int) -> Row | None:
    """The row after ``event`` (stream sequence ``seq``). Events before ExportRequested are ignored."""
    if isinstance(event, ev.ExportRequested):
        return Row(
            id=event.export_id, tenant_id=event.tenant_id, user_email=event.user_email, mode=event.mode,
            include_images=int(event.include_images), delivery_method=event.delivery_method,
            status="pending", progress=0, created_at=ms(event.occurred_at), updated_at=ms(event.occurred_at),
            user_id=event.user_id, username=event.username, events=(row.events if row else 0) + 1,
            requested_seq=seq, last_seq=seq)
    if row is None:
        return None
    r = replace(row, events=row.events + 1, updated_at=ms(event.occurred_at), last_seq=seq)
    if row.terminal and not isinstance(event, _AFTER_TERMINAL):
        return r
    match event:
        case ev.CatalogStarted():
            return replace(r, status="cataloging", progress=5)
        case ev.ExportCataloged():
            return replace(_errors(r, 1, event.error_count), status="assembling", progress=10,
                           r2_key=event.archive_key, total_bytes=event.total_bytes,
                           items_total=event.member_count, item_counts=_counts(event.item_counts))
        case ev.UploadStarted():
            reset = r.upload_id is not None and r.upload_id != event.upload_id
            return replace(r, status="assembling", upload_id=event.upload_id,
                           bytes_done=0 if reset else r.bytes_done, items_done=0 if reset else r.items_done,
                           assembling_since=r.assembling_since or ms(event.occurred_at))
        case ev.PartUploaded():
            r = replace(r, status="assembling", bytes_done=event.source_bytes_done,
                        items_done=event.members_done, last_part_at=ms(event.occurred_at))
            return replace(r, progress=_progress(r))
        case ev.ArchiveAssembled():
            return replace(_errors(r, 2, event.error_count), status="uploading", progress=90)
        case ev.FinalizeStarted():
            return replace(r, status="uploading", progress=90, finalize_started=1)
        case ev.ExportCompleted():
            return replace(_errors(r, 3, event.error_count), status="complete", progress=100,
                           r2_key=event.archive_key, file_size_bytes=event.size_bytes, sha256=event.sha256,
                           item_counts=_counts(event.item_counts), completed_at=ms(event.occurred_at),
                           expires_at=ms(event.expires_at))
        case ev.ExportFailed():
            return replace(r, status="failed", error_message=event.reason)
        case ev.CancelRequested():
            return replace(r, cancel_requested=1)
        case ev.ExportCancelled():
            return replace(r, status="cancelled")
        case ev.ExportExpired():
            return replace(r, status="expired", r2_key=None) if r.status == "complete" else r
        case ev.ExportRetried():
            return _retried(r, event)
        case ev.ResendRequested():
            return replace(r, notification=None, notification_reason=None) if r.status in RESENDABLE else r
        case ev.NotificationSent():
            return replace(r, notification="sent", notification_reason=None)
        case ev.NotificationFailed():
            return replace(r, notification="failed", notification_reason=event.reason)
    return r


def _retried(r: Row, event: ev.ExportRetried) -> Row:
    """As shared.state's retry rule: a failed export becomes active again at ``from_step``."""
    if r.status != "failed" or r.cancel_requested:
        return r
    r = replace(r, error_message=None, notification=None, notification_reason=None)
    if event.from_step == "finalize":
        return replace(r, status="uploading", progress=90)
    keep = event.from_step == "assemble" and r.upload_id is not None and r.upload_id == event.upload_id
    r = replace(r, finalize_started=0, error_count=event.error_count, error_source=1)
    if not keep:
        r = replace(r, upload_id=None, bytes_done=0, items_done=0, assembling_since=None, last_part_at=None)
    if event.from_step == "assemble":
        r = replace(r, status="assembling")
        return replace(r, progress=_progress(r))
    return replace(r, status="pending", progress=0, r2_key=None, total_bytes=None, items_total=None,
                   item_counts=None)


def _errors(row: Row, source: int, count: int) -> Row:
    """As ExportState.error_count: the completed count wins over the assembled, that over the cataloged."""
    return row if source < row.error_source else replace(row, error_count=count, error_source=source)


def _counts(counts: dict[str, int]) -> str:
    return json.dumps(counts, sort_keys=True, separators=(",", ":"))


def eta_seconds(row: Row) -> float | None:
    """Seconds left at the rate seen since assembly began (as ExportState.eta_seconds)."""
    if row.status != "assembling" or row.total_bytes is None or row.bytes_done <= 0:
        return None
    if row.assembling_since is None or row.last_part_at is None:
        return None
    elapsed = (row.last_part_at - row.assembling_since) / 1000
    if elapsed <= 0:
        return None
    return round(max(0, row.total_bytes - row.bytes_done) * elapsed / row.bytes_done, 1)
