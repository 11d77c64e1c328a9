"""Pure decisions of the janitor: what to do with one export, given its fold and the clock."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

from shared.core import events as ev
from shared.core.keys import export_of_key
from shared.core.lifecycle import (
    RETRY_MARGIN,
    ExportState,
    is_failed_attempt,
    kept_for_retry,
    retryable,
    shown_status,
    step_running_after,
)
from shared.core.retry import retry_delay


def is_expired(state: ExportState, now: datetime) -> bool:
    """Complete and past its expiry (the lifecycle's rule, also what the gateway shows)."""
    if state.status != "complete" or state.completed is None:
        return False  # already expired (or never complete): nothing to record
    return shown_status(state.status, state.completed.expires_at, now) == "expired"


def is_dead(state: ExportState, last_event: str, last_at: datetime | None, heartbeat_alive: bool | None,
            ttl_s: float, now: datetime, *, retry_base_delay_s: float = 0.0, max_attempts: int = 1) -> bool:
    """A step was running, its heartbeat key expired, and nothing happened for a whole TTL.

    An export waiting in a queue (last event is a step's output) is not stuck, however long it
    waits; one that keeps beating is never touched, however long it runs. ``heartbeat_alive`` None:
    the heartbeat could not be read (a KV hiccup) — unknown is not dead, the next run decides. After a
    failed attempt (its step's ``…AttemptFailed``, or ``StepFailed`` in older logs) the step waits for
    its retry (``retry.retry_delay``), beating nothing: a whole TTL after that wait, not before.
    """
    if heartbeat_alive is None:
        return False
    if state.terminal or heartbeat_alive or not step_running_after(last_event) or last_at is None:
        return False
    waiting = 0.0
    if is_failed_attempt(last_event) and state.step and state.attempts_of(state.step):
        waiting = retry_delay(state.step, state.attempts_of(state.step), retry_base_delay_s, max_attempts)
    return now - last_at > timedelta(seconds=ttl_s + waiting)


def is_abandoned_cancel(state: ExportState, last_at: datetime | None, heartbeat_alive: bool | None,
                        ttl_s: float, now: datetime) -> bool:
    """A cancel nobody completes (no canceller running, or one that died): asked for, not finished,
    not overtaken by the finalizer, no heartbeat and nothing logged for a whole TTL. The janitor
    records it cancelled so the tenant is free; its upload is then an orphan it aborts. A heartbeat
    that could not be read (None) is not a missing one."""
    if heartbeat_alive is None:
        return False
    if not state.cancel_wins or heartbeat_alive:
        return False
    return last_at is not None and now - last_at > timedelta(seconds=ttl_s)


Verdict = Literal["cancel", "fail"]


def verdict(state: ExportState, last_event: str, last_at: datetime | None, heartbeat_alive: bool | None,
            ttl_s: float, now: datetime, *, retry_base_delay_s: float = 0.0, max_attempts: int = 1) -> Verdict | None:
    """What the janitor does with an export that is not over: complete a cancel nobody finishes
    (``cancel``), fail a dead step (``fail``), or nothing. A beat only ever spares an export — with
    ``heartbeat_alive`` True or None the verdict is None — so the heartbeat is read only for an export
    whose verdict without one is not None: a key holding a value no worker put is listened to for two
    beat intervals, and asking every running export's cost each run that much for each (any user can
    aim a PubAck at every key)."""
    if is_abandoned_cancel(state, last_at, heartbeat_alive, ttl_s, now):
        return "cancel"
    if state.cancel_wins:
        return None  # a cancel in progress is never failed: it ends cancelled
    if is_dead(state, last_event, last_at, heartbeat_alive, ttl_s, now, retry_base_delay_s=retry_base_delay_s,
               max_attempts=max_attempts):
        return "fail"
    return None


def is_orphan_upload(state: ExportState | None, upload_id: str, initiated: datetime | None,
                     min_age_s: float, now: datetime, keep: timedelta = timedelta(0)) -> bool:
    """An open multipart upload nobody will complete: its export is finished or unknown, or the
    log names another upload for it — and it is older than the threshold. A failed export's upload is
    what a retry goes on from: kept as its work objects are (:func:`is_swept`)."""
    if initiated is not None and now - initiated < timedelta(seconds=min_age_s):
        return False
    if state is not None and state.exists and state.terminal:
        return is_swept(state, False, initiated, now, keep) if retryable(state) else True
    if state is None or not state.exists:
        return True
    return state.upload is not None and state.upload.upload_id != upload_id and state.assembled is not None


def export_of(key: str) -> tuple[str, str] | None:
    """(tenant, export) of an object or upload key under an export's prefix, when both are ids an export
    can have; else None, no export's (a ``*`` there named every tenant's export of that id)."""
    owner = export_of_key(key)
    return owner if owner is not None and all(ev.is_valid_id(token) for token in owner) else None


def is_swept(state: ExportState, archive: bool, last_modified: datetime | None, now: datetime,
             keep: timedelta) -> bool:
    """An object of an ended export the janitor deletes: a work object (snapshot, texts, part records)
    or, ``archive``, the export's own archive key. A complete export's archive is its download (deleted
    at expiry); a failed or cancelled one's is offered by nobody — a finalizer stopped after the store
    completed it, failed as dead, left the person's whole archive there for good. A failed export that
    may be retried keeps everything for ``keep`` (:func:`lifecycle.kept_for_retry`), and after that takes
    what was stored before the window's end less twice :data:`lifecycle.RETRY_MARGIN` (or before the
    failure, for a window shorter than that): a retry that decided
    after this run read the log (past the window) went on from catalog, and what it stores is newer; a part
    record or archive a stopped replica wrote after the failure is older, and goes. One without a time is left."""
    if not state.terminal or kept_for_retry(state, now, keep):
        return False
    if archive and state.status not in ("failed", "cancelled"):
        return False
    if retryable(state) and state.failure is not None:
        failed_at = state.failure.occurred_at
        return last_modified is not None and last_modified < max(failed_at, failed_at + keep - 2 * RETRY_MARGIN)
    return True


def is_forgotten(in_log: bool, last_modified: datetime | None, log_begins: datetime | None,
                 min_age_s: float, now: datetime) -> bool:
    """An object of an export the log no longer holds (its events aged out of the stream: a max age
    shorter than the archive's retention, a janitor that did not run for weeks, a retry long after
    the request), older than ``min_age_s``: nobody else would ever delete it. Only one written before
    the oldest message the log still holds (``log_begins``) can have aged out of it: a log that holds
    nothing (a new or wrong server, one being restored) or a younger object without its export's
    request (a key some writer made up) is no reason to delete anything. One of an export the log
    holds is the log's to judge; one without a time is left."""
    if in_log or last_modified is None or log_begins is None or last_modified >= log_begins:
        return False
    return now - last_modified >= timedelta(seconds=min_age_s)


def is_unaccounted(in_log: bool, last_modified: datetime | None, log_begins: datetime | None) -> bool:
    """An object of an export the log does not hold, written since the oldest message it holds: not
    aged out of it (:func:`is_forgotten` never deletes it), so left, and said. After a restore from
    an older backup these are the objects of the exports requested since the backup was taken; else
    keys no export made."""
    return not in_log and last_modified is not None and log_begins is not None and last_modified >= log_begins


def no_request(prefix: str, stored: Iterable[tuple[str, bytes, bool]]) -> str | None:
    """Why none of the messages stored on an export's ``ExportRequested`` subject is its request —
    ``malformed`` or ``forged`` (``events.BadEvent.reason``), as the log's fold would drop each — or None
    when one is (the fold takes it: an export), or when ``stored`` is empty (nothing judged).
    ``stored``: (subject, body, stored as the server's answer) of every message on the subject. Any
    user can have the server store a body on a subject nobody requested (a PubAck aimed there):
    thousands of them cost every run a full read and a warning each, and such a subject holds no
    export however often it is read."""
    reason = None
    for subject, data, answer in stored:
        try:
            ev.decode(prefix, subject, data, answer=answer)  # the type is the subject's: ExportRequested
        except ev.BadEvent as e:
            reason = e.reason
            continue
        return None
    return reason
