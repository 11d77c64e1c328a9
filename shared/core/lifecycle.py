"""ExportState: the pure fold of one export's events. Every decision is taken from it.

| event                                        | status      | progress      |
|----------------------------------------------|-------------|---------------|
| ExportRequested                              | pending     | 0             |
| CatalogStarted                               | cataloging  | 5             |
| ExportCataloged, UploadStarted, PartUploaded | assembling  | 10-85 by bytes|
| ArchiveAssembled, FinalizeStarted            | uploading   | 90            |
| ExportCompleted                              | complete    | 100           |
| ExportFailed / ExportCancelled / ExportExpired | failed / cancelled / expired | unchanged |

A step's failure counts only while the export is at that step, ExportCancelled only while a cancel
can win (CancelRequested logged, FinalizeStarted not), FinalizeStarted only once ArchiveAssembled is
logged and while no cancel is asked for, and ExportCompleted only once both are: elsewhere the fold
ignores them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from shared.core import events as ev

Status = Literal["pending", "cataloging", "assembling", "uploading", "complete", "failed", "cancelled", "expired"]
STATUSES: tuple[str, ...] = get_args(Status)
TERMINAL: frozenset[str] = frozenset({"complete", "failed", "cancelled", "expired"})
ACTIVE: frozenset[str] = frozenset({"pending", "cataloging", "assembling", "uploading"})
RESENDABLE: frozenset[str] = frozenset({"complete", "failed"})  # the two outcomes that have an email
# Every admitted export uses up the tenant's hour except one that failed (the person did not get it).
COUNTS_TOWARD_LIMIT: frozenset[str] = frozenset({"complete", "expired", "cancelled"})
# A failed attempt of a step: each step's own type (events.ATTEMPT_FAILED) and the older StepFailed.
_FAILED_ATTEMPT: frozenset[str] = frozenset(name for name, cls in ev.EVENT_TYPES.items()
                                            if issubclass(cls, ev.StepFailed))
# Last events of an export whose step is running: a worker holds it and keeps its heartbeat alive
# (after a failed attempt, the retry's delivery will).
_RUNNING_AFTER: frozenset[str] = frozenset({"CatalogStarted", "UploadStarted", "PartUploaded", "FinalizeStarted",
                                            *_FAILED_ATTEMPT})
_STEP_OF: dict[str, str] = {"pending": "catalog", "cataloging": "catalog", "assembling": "assemble",
                            "uploading": "finalize"}


# -- questions asked of a status or an event type (callers that hold no fold) -----------------
def is_terminal(status: str | None) -> bool:
    """Ended: nothing moves it but the email, the janitor's expiry and an operator."""
    return status in TERMINAL


def counts_toward_limit(status: str | None) -> bool:
    """Does an export with this status use up the tenant's hourly export?"""
    return status in COUNTS_TOWARD_LIMIT


def shown_status(status: str, expires_at: datetime | None, now: datetime) -> str:
    """A complete export past its expiry is expired, even before the janitor records it (the
    janitor records it because of this same rule)."""
    if status == "complete" and expires_at is not None and now >= expires_at:
        return "expired"
    return status


def step_running_after(event_type: str) -> bool:
    """An export whose last event is ``event_type`` is inside a step (not waiting in a queue)."""
    return event_type in _RUNNING_AFTER


def is_failed_attempt(event_type: str) -> bool:
    """``event_type`` records a failed attempt of a step (its retry is due after a delay)."""
    return event_type in _FAILED_ATTEMPT


@dataclass(frozen=True)
class PartInfo:
    number: int
    etag: str
    crc32: int | None
    byte_start: int
    byte_end: int
    records_key: str
    members_done: int
    source_bytes_done: int


@dataclass(frozen=True)
class ExportState:
    """Everything known about one export, folded from its log."""

    export_id: str = ""
    tenant_id: str = ""
    status: Status | None = None
    progress: int = 0
    events: int = 0
    # the type of the last event that moved the export (one this version knows): an event the fold
    # ignores — a second ExportRequested, a cancel after FinalizeStarted, an operator's note — is not
    # it (the janitor asks it whether a step runs: one such event must not end a dead step for it)
    last_event: str | None = None
    request: ev.ExportRequested | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    cataloged: ev.ExportCataloged | None = None
    upload: ev.UploadStarted | None = None
    parts: tuple[PartInfo, ...] = ()
    assembled: ev.ArchiveAssembled | None = None
    finalize_started: bool = False
    completed: ev.ExportCompleted | None = None
    cancel_requested: bool = False
    attempts: tuple[tuple[str, int], ...] = ()
    failure: ev.ExportFailed | None = None
    last_step_error: str | None = None
    notification: Literal["sent", "failed"] | None = None
    notification_reason: str | None = None
    assembling_since: datetime | None = None
    last_part_at: datetime | None = None
    attempt: int = 1  # 1 + the operator's retries (ExportRetried)
    resends: int = 0  # operator resends (ResendRequested) that re-armed the email
    base_error_count: int = 0  # errors known before assembly: the catalog's, or carried by a retry

    # -- derived -------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return self.request is not None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def stopping(self) -> bool:
        """Nothing new may start: terminal, or a cancel was asked for."""
        return self.terminal or self.cancel_requested

    @property
    def cancellable(self) -> bool:
        """A cancel can still win: not ended, and ``FinalizeStarted`` is not in the log yet
        (once it is, the finalizer completes the export). The whole cancel-vs-finalize rule."""
        return not self.terminal and not self.finalize_started

    @property
    def cancel_wins(self) -> bool:
        """A cancel was asked for and can still win: the canceller's to finish, not the finalizer's."""
        return self.cancel_requested and self.cancellable

    @property
    def step(self) -> str | None:
        """The step the export is in or waits for (cancel while a cancel can win); for a failed
        export the step that failed; None once it ended otherwise."""
        if self.status == "failed":
            return self.failure.step if self.failure else None
        if self.cancel_wins:
            return "cancel"
        return _STEP_OF.get(self.status or "")

    @property
    def email_due(self) -> bool:
        """The person asked for an email, the export has an outcome, and no email was recorded for it."""
        wants = self.request is not None and self.request.delivery_method == "email"
        return wants and self.notification is None and self.status in RESENDABLE

    @property
    def counts_toward_limit(self) -> bool:
        return counts_toward_limit(self.status)

    def attempts_of(self, step: str) -> int:
        return dict(self.attempts).get(step, 0)

    @property
    def bytes_done(self) -> int:
        return self.parts[-1].source_bytes_done if self.parts else 0

    @property
    def items_done(self) -> int:
        return self.parts[-1].members_done if self.parts else 0

    @property
    def archive_bytes_uploaded(self) -> int:
        return self.parts[-1].byte_end if self.parts else 0

    def eta_seconds(self) -> float | None:
        """Seconds left at the rate seen since assembly began, or None before it is known."""
        if self.status != "assembling" or not self.cataloged or not self.parts:
            return None
        if self.assembling_since is None or self.last_part_at is None:
            return None
        elapsed = (self.last_part_at - self.assembling_since).total_seconds()
        done = self.bytes_done
        if elapsed <= 0 or done <= 0:
            return None
        left = max(0, self.cataloged.total_bytes - done)
        return round(left * elapsed / done, 1)

    def item_counts(self) -> dict[str, int]:
        if self.completed:
            return dict(self.completed.item_counts)
        if self.assembled and self.assembled.item_counts is not None:
            return dict(self.assembled.item_counts)
        if self.cataloged:
            return dict(self.cataloged.item_counts)
        return {}

    @property
    def error_count(self) -> int:
        if self.completed:
            return self.completed.error_count
        if self.assembled:
            return self.assembled.error_count
        return self.base_error_count


_FIELDS = frozenset(f.name for f in fields(ExportState))


def _with(state: ExportState, **changes: Any) -> ExportState:
    """``dataclasses.replace`` without its per-field ``__init__`` call: the fold runs once per event
    read (every step's fold, every replay), and replace was a third of a replay's time."""
    if not changes.keys() <= _FIELDS:
        raise TypeError(f"ExportState has no field {sorted(changes.keys() - _FIELDS)}")
    new = object.__new__(ExportState)
    new.__dict__.update(state.__dict__)
    new.__dict__.update(changes)
    return new


def _set(fresh: ExportState, **changes: Any) -> ExportState:
    """Set fields on a state made by :func:`_with` in the same call and not yet handed to anyone."""
    if not changes.keys() <= _FIELDS:
        raise TypeError(f"ExportState has no field {sorted(changes.keys() - _FIELDS)}")
    fresh.__dict__.update(changes)
    return fresh


def _part_number(part: PartInfo) -> int:
    return part.number


def _assembling_progress(state: ExportState) -> int:
    total = state.cataloged.total_bytes if state.cataloged else 0
    if total <= 0:
        return 10
    return 10 + min(75, (75 * state.bytes_done) // total)


def apply(state: ExportState, event: ev.Event) -> ExportState:
    """Fold one event into the state. Pure: no clock, no I/O."""
    s = _with(state, events=state.events + 1, updated_at=event.occurred_at, last_event=event.name())
    # ``s`` is this call's own new copy, seen by nobody yet: the cases below set their fields on it
    # (``_set``) instead of copying it once more — one copy per event instead of two (replay speed).
    if state.terminal and not isinstance(
        event, ev.NotificationSent | ev.NotificationFailed | ev.ExportExpired | ev.ExportRetried | ev.ResendRequested
    ):
        # nothing moves a finished export except the email, the janitor and an operator: the event
        # is ignored, so it is not the last event that moved it either (``moved`` says it changed nothing)
        return _set(s, last_event=state.last_event)
    match event:
        case ev.ExportRequested():
            if state.request is not None:
                # Requested once: a later ExportRequested (a publisher's retry without the expected-
                # sequence header, or a forgery) would send the email elsewhere and restart the status.
                return _set(s, last_event=state.last_event)
            return _set(
                s, export_id=event.export_id, tenant_id=event.tenant_id, status="pending",
                progress=0, request=event, created_at=event.occurred_at,
            )
        case ev.CatalogStarted():
            return _set(s, status="cataloging", progress=5)
        case ev.ExportCataloged():
            return _set(s, status="assembling", progress=10, cataloged=event, base_error_count=event.error_count)
        case ev.UploadStarted():
            if s.upload is not None and s.upload.upload_id != event.upload_id:
                # a new upload (the logged one was gone from the store): its archive starts at byte 0,
                # no part logged for the old upload is in it, and its pace is measured afresh
                return _set(s, status="assembling", upload=event, parts=(), assembling_since=event.occurred_at,
                            last_part_at=None, progress=10)
            return _set(s, status="assembling", upload=event, assembling_since=s.assembling_since or event.occurred_at)
        case ev.PartUploaded():
            # parts are in number order: keep those before this one (a slice, not a walk in Python —
            # that made a fold of 9,000 parts take seconds, quadratic in the parts)
            kept = s.parts[:bisect_left(s.parts, event.part_number, key=_part_number)]
            part = PartInfo(
                event.part_number, event.etag, event.crc32, event.byte_start, event.byte_end,
                event.records_key, event.members_done, event.source_bytes_done,
            )
            s = _set(s, status="assembling", parts=(*kept, part), last_part_at=event.occurred_at)
            return _set(s, progress=_assembling_progress(s))
        case ev.ArchiveAssembled():
            return _set(s, status="uploading", progress=90, assembled=event)
        case ev.FinalizeStarted() if s.assembled is None or s.cancel_requested:
            # The finalizer appends it, fenced, only once the archive is assembled and while no cancel
            # is asked for (a CancelRequested since its fold moves it: a Conflict, then it is not due);
            # its NATS user may publish it on any export's subject. One before the archive made a
            # running export uncancellable and stopped a cancel under way (canceller and finalizer both
            # not due); one after a CancelRequested overtook the cancel the person was told was taken
            # (the finalizer due, a forged ExportCompleted after it counted). Ignored.
            return _set(s, last_event=state.last_event)
        case ev.FinalizeStarted():
            return _set(s, status="uploading", progress=90, finalize_started=True)
        case ev.ExportCompleted() if s.assembled is None or not s.finalize_started:
            # The end of a finalize, and nothing else: the finalizer appends FinalizeStarted, fenced, once
            # the assembler's ArchiveAssembled is logged and before it completes the upload, and
            # ExportCompleted after. Its NATS user may publish both types on any export's subject, and a
            # bare ExportCompleted ended any tenant's running export 'complete' (an archive never made,
            # a cancel overtaken) and had the ready email sent. Ignored.
            return _set(s, last_event=state.last_event)
        case ev.ExportCompleted():
            return _set(s, status="complete", progress=100, completed=event)
        case ev.StepFailed() if not _at_its_step(s, event):
            return _set(s, last_event=state.last_event)
        case ev.ExportFailed() if not _at_its_step(s, event):
            return _set(s, last_event=state.last_event)
        case ev.StepFailed():
            counts = dict(s.attempts)
            counts[event.step] = max(counts.get(event.step, 0), event.attempt)
            return _set(s, attempts=tuple(sorted(counts.items())), last_step_error=event.reason)
        case ev.ExportFailed():
            return _set(s, status="failed", failure=event)
        case ev.CancelRequested():
            if s.finalize_started:  # too late (the contract refuses it): the finalizer completes the export
                return _set(s, last_event=state.last_event)
            return _set(s, cancel_requested=True)
        case ev.ExportCancelled() if not s.cancel_wins:
            # The end of a cancel that can still win (asked for, FinalizeStarted not logged), and
            # nothing else: the canceller's and the janitor's NATS users may publish it on any
            # export's subject, and a bare one ended any tenant's running export nobody asked to
            # cancel. Both append it only while a cancel wins, fenced on the log they read. Ignored.
            return _set(s, last_event=state.last_event)
        case ev.ExportCancelled():
            return _set(s, status="cancelled")
        case ev.ExportExpired():
            return _set(s, status="expired") if s.status == "complete" else _set(s, last_event=state.last_event)
        case ev.ExportRetried():
            return _retried(s, event) if retryable(s) else _set(s, last_event=state.last_event)
        case ev.ResendRequested():
            if s.status not in RESENDABLE:
                return _set(s, last_event=state.last_event)
            return _set(s, notification=None, notification_reason=None, resends=s.resends + 1)
        case ev.NotificationSent() | ev.NotificationFailed() if not state.terminal:
            # No email is sent before an outcome (the notifier's own appends are fenced at a terminal
            # fold): one appended to a running export would mark its email done before it is due and
            # end the step for the janitor. Ignored.
            return _set(s, last_event=state.last_event)
        case ev.NotificationSent():
            return _set(s, notification="sent", notification_reason=None)
        case ev.NotificationFailed():
            return _set(s, notification="failed", notification_reason=event.reason)
    return _set(s, last_event=state.last_event)  # AdmissionUnlocked: an operator's note, no transition



_BOOKKEEPING = frozenset({"events", "updated_at"})


def moved(before: ExportState, after: ExportState) -> bool:
    """Did folding one event change the export (``after = apply(before, event)``)? Not when the fold
    ignored it — a second ExportRequested, an email recorded before an outcome, a cancel after
    FinalizeStarted, an operator's note — nor for a repeat that changes nothing. The janitor's
    'nothing happened for a TTL' counts only events that moved the export."""
    old = before.__dict__
    return any(value is not old.get(name) and value != old.get(name)
               for name, value in after.__dict__.items() if name not in _BOOKKEEPING)


def _at_its_step(state: ExportState, event: ev.StepFailed | ev.ExportFailed) -> bool:
    """A step's failed attempt, or its giving up on the export, counts only while the export is at
    that step (``state.step``: the step's own event that ends it is not in the log yet; while a
    cancel can win, the cancel's). Each step's NATS user may publish its own failure types on every
    export's subjects: without this the catalog's user could fail an export long past its catalog,
    at any tenant's, and have the failure email sent. A step that truly gave up was at its step — its
    append is fenced on the log it read, and a worker runs no step while a cancel wins — so a failure
    the rule drops is a forgery or one that lost a race to the step's own success or to a cancel. The
    janitor's (a dead worker, at any step) counts but while a cancel can win: the janitor fails no
    export then (it completes a cancel nobody finishes as cancelled, ``decide.verdict``), and its
    append is fenced on the log it read, so one there is its user's forgery — which ended the export
    the person was cancelling 'failed', with the failure email. The older types, whose subjects named
    no step, count as logged."""
    step = type(event).of_step
    if step == "janitor":
        return not state.cancel_wins
    return step is None or step == state.step


def logged_upload_usable(state: ExportState, *, upload_open: bool, records_present: bool = True) -> bool:
    """May the export go on in the multipart upload its log names (``state.upload``)? Only while the
    store still holds that upload (``upload_open``: listing its parts did not answer NoSuchUpload)
    and the logged parts' member records (``records_present``, needed to resume inside the archive).

    An upload disappears without the log knowing: the S3 lifecycle rule ``grove-export setup``
    installs (``AbortIncompleteMultipartUpload`` after 2 days) after a long outage, MinIO's own purge
    of uploads older than 24 h, or any other abort — and with it every part. Then nothing the log
    says about its parts is true any more: the export needs a new upload, assembled from byte 0
    (its ``UploadStarted`` drops the gone upload's parts from the fold). The one rule for the
    assembler (before it resumes) and the operator's ``retry`` (which step to go on from)."""
    return state.upload is not None and upload_open and records_present


def retryable(state: ExportState) -> bool:
    """Only a failed export starts again, and not one whose cancel failed (it was meant to stop)."""
    return state.status == "failed" and not state.cancel_requested


RETRY_MARGIN = timedelta(hours=1)  # the clocks of the janitor's machine and the operator's may differ


def kept_for_retry(state: ExportState, now: datetime, keep: timedelta) -> bool:
    """What a retry of a failed export goes on from — its snapshot, texts, part records, archive — is
    kept for ``keep`` after it failed: the janitor's sweep leaves it until then. The janitor decided
    from the log as it read it, and its deletes came after: a run that read the export failed and
    removed the snapshot after an operator's ``retry`` had gone on from it failed the retried export
    ("a file this export needs changed or disappeared from storage")."""
    if not retryable(state) or state.failure is None:
        return False
    return now - state.failure.occurred_at < keep


def retry_may_use_stored(state: ExportState, now: datetime, keep: timedelta) -> bool:
    """The operator's retry goes on from what the store holds (the snapshot, the upload, the part
    records) only while :func:`kept_for_retry` keeps it, an hour short of it: a janitor run decides
    to delete only past ``keep``, so any retry deciding after that run read the log starts afresh."""
    return kept_for_retry(state, now + RETRY_MARGIN, keep)


def _retried(s: ExportState, event: ev.ExportRetried) -> ExportState:
    """A failed export becomes active again at ``from_step``; step attempts count afresh."""
    if not retryable(s):
        return s
    s = _with(s, failure=None, attempts=(), last_step_error=None, notification=None, notification_reason=None,
                attempt=event.attempt)
    if event.from_step == "finalize":
        return _with(s, status="uploading", progress=90)
    keep = event.from_step == "assemble" and s.upload is not None and s.upload.upload_id == event.upload_id
    s = _with(s, assembled=None, finalize_started=False, base_error_count=event.error_count,
                upload=s.upload if keep else None, parts=s.parts if keep else (),
                assembling_since=s.assembling_since if keep else None, last_part_at=s.last_part_at if keep else None)
    if event.from_step == "assemble":
        s = _with(s, status="assembling")
        return _with(s, progress=_assembling_progress(s))
    return _with(s, status="pending", progress=0, cataloged=None)


def fold(events: Iterable[ev.Event], state: ExportState | None = None) -> ExportState:
    """The state after every event, in log order."""
    s = state or ExportState()
    for event in events:
        s = apply(s, event)
    return s
