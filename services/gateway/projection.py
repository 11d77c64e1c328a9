"""One ``storage_exports`` row: a pure function of the export's fold (:class:`shared.core.lifecycle.ExportState`).

No rule lives here. Status, progress, ETA, error count, item counts and every transition are the
fold's (:func:`shared.core.lifecycle.apply`); :func:`row_from_state` only copies what the table shows into
flat columns. Times are Unix milliseconds (UTC). ``workflow_id`` stays NULL: there is no workflow
engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from shared.core import events as ev
from shared.core.lifecycle import ExportState, apply, is_terminal


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
    error_source: int = 0  # which event error_count came from: 1 cataloged (or a retry), 2 assembled, 3 completed
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
    eta_seconds: float | None = None  # ExportState.eta_seconds() when the row was written

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def values(self) -> list[Any]:
        return [getattr(self, name) for name in _NAMES]

    @property
    def terminal(self) -> bool:
        return is_terminal(self.status)

    def counts(self) -> dict[str, int]:
        return json.loads(self.item_counts) if self.item_counts else {}


_NAMES = tuple(Row.columns())


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else ms(value)


def row_from_state(state: ExportState, requested_seq: int, last_seq: int) -> Row | None:
    """The row of an export whose fold is ``state``: ``requested_seq`` is the stream sequence of its
    ExportRequested, ``last_seq`` of the last event folded. None before the export was requested."""
    req = state.request
    if req is None or state.status is None or state.created_at is None:
        return None
    done, assembled, cataloged = state.completed, state.assembled, state.cataloged
    if state.status == "expired":
        key = None  # the janitor deleted the archive
    elif done is not None:
        key = done.archive_key
    else:
        key = cataloged.archive_key if cataloged else None
    source = 3 if done else 2 if assembled else 1 if (cataloged or state.attempt > 1) else 0
    return Row(
        id=req.export_id, tenant_id=req.tenant_id, user_email=req.user_email, mode=req.mode,
        include_images=int(req.include_images), delivery_method=req.delivery_method,
        status=state.status, progress=state.progress, created_at=ms(state.created_at), r2_key=key,
        file_size_bytes=done.size_bytes if done else None,
        item_counts=_counts(state.item_counts()) if (done or assembled or cataloged) else None,
        error_message=state.failure.reason if state.failure else None,
        updated_at=_ms(state.updated_at), completed_at=_ms(done.occurred_at if done else None),
        expires_at=_ms(done.expires_at if done else None), user_id=req.user_id, username=req.username,
        sha256=done.sha256 if done else None, error_count=state.error_count, error_source=source,
        bytes_done=state.bytes_done, total_bytes=cataloged.total_bytes if cataloged else None,
        items_done=state.items_done, items_total=cataloged.member_count if cataloged else None,
        upload_id=state.upload.upload_id if state.upload else None,
        assembling_since=_ms(state.assembling_since), last_part_at=_ms(state.last_part_at),
        finalize_started=int(state.finalize_started), cancel_requested=int(state.cancel_requested),
        notification=state.notification, notification_reason=state.notification_reason,
        events=state.events, requested_seq=requested_seq, last_seq=last_seq, eta_seconds=state.eta_seconds())


def _counts(counts: dict[str, int]) -> str:
    return json.dumps(counts, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Fold:
    """One export as the read model folds it: the shared fold and the sequence of its request."""

    state: ExportState
    requested_seq: int

    def row(self, last_seq: int) -> Row | None:
        return row_from_state(self.state, self.requested_seq, last_seq)


def advance(fold: Fold | None, seq: int, event: ev.Event) -> Fold | None:
    """``fold`` after ``event`` (stream sequence ``seq``): :func:`shared.core.lifecycle.apply`, nothing more.
    The read model folds an export from its ExportRequested on (an event before it has no row)."""
    if fold is None:
        if not isinstance(event, ev.ExportRequested):
            return None
        return Fold(apply(ExportState(), event), seq)
    state = apply(fold.state, event)
    return Fold(state, seq if state.request is event else fold.requested_seq)


def fold_rows(events: Iterable[tuple[int, ev.Event]]) -> Row | None:
    """The row of one export's whole history (what the projector ends with)."""
    fold, last = None, 0
    for seq, event in events:
        fold, last = advance(fold, seq, event), seq
    return fold.row(last) if fold else None
