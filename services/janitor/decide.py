"""Pure decisions of the janitor: what to do with one export, given its fold and the clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.core.lifecycle import ExportState, shown_status, step_running_after
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
    failed attempt (``StepFailed``) the step waits for its retry (``retry.retry_delay``), beating
    nothing: a whole TTL after that wait, not before.
    """
    if heartbeat_alive is None:
        return False
    if state.terminal or heartbeat_alive or not step_running_after(last_event) or last_at is None:
        return False
    waiting = 0.0
    if last_event == "StepFailed" and state.step and state.attempts_of(state.step):
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


def is_orphan_upload(state: ExportState | None, upload_id: str, initiated: datetime | None,
                     min_age_s: float, now: datetime) -> bool:
    """An open multipart upload nobody will complete: its export is finished or unknown, or the
    log names another upload for it — and it is older than the threshold."""
    if initiated is not None and now - initiated < timedelta(seconds=min_age_s):
        return False
    if state is None or not state.exists or state.terminal:
        return True
    return state.upload is not None and state.upload.upload_id != upload_id and state.assembled is not None


def is_unoffered_archive(state: ExportState, last_modified: datetime | None, ended_at: datetime | None) -> bool:
    """An archive object of an export that ended failed or cancelled, stored before it ended: nobody
    offers it for download (only a complete export's key is signed) and nothing else ever deletes it —
    a finalizer stopped after the store completed the archive, failed as dead, left the person's whole
    archive there for good. ``ended_at`` is the time of the last message of the fold that said so: an
    archive a retry's new upload stored after it (the log has moved on since) is the retry's, never
    taken; one without a time is left. (A retry that completes the logged upload itself — from
    finalize — makes an object dated by that upload, so a run paused from its read of the log past
    such a retry can still take it: the same window as the work objects' sweep.)"""
    if state.status not in ("failed", "cancelled") or last_modified is None or ended_at is None:
        return False
    return last_modified < ended_at


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
