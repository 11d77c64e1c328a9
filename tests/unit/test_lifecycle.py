"""The questions every service asks of an export's lifecycle (shared/core/lifecycle.py), answered from the
fold — and the answers that callers without a fold use agree with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from shared.core import events as ev
from shared.core.lifecycle import (
    STATUSES,
    TERMINAL,
    counts_toward_limit,
    fold,
    is_terminal,
    logged_upload_usable,
    step_running_after,
)
from tests.unit.test_state_fold import ASSEMBLED, CATALOGED, COMPLETED, FINALIZED, UPLOAD, E, part, requested

FAILED = ev.ExportFailed(**E, step="assemble", reason="x")
CANCELLED: list[ev.Event] = [ev.CancelRequested(**E), ev.ExportCancelled(**E)]  # a cancel ends only when asked for
ENDINGS: list[list[ev.Event]] = [[ASSEMBLED, FINALIZED, COMPLETED], [FAILED], CANCELLED]


def test_every_status_is_named_once_and_the_terminal_ones_are_the_outcomes() -> None:
    assert len(set(STATUSES)) == len(STATUSES) == 8
    assert TERMINAL == {"complete", "failed", "cancelled", "expired"} and TERMINAL < set(STATUSES)
    assert all(is_terminal(s) == fold([requested(), *e]).terminal for s, e in zip(
        ("complete", "failed", "cancelled"), ENDINGS, strict=True))
    assert not is_terminal(None) and not is_terminal("assembling")


def test_a_failed_export_does_not_count_toward_the_hour_and_every_other_outcome_does() -> None:
    assert [s for s in STATUSES if counts_toward_limit(s)] == ["complete", "cancelled", "expired"]
    assert fold([requested(), ASSEMBLED, FINALIZED, COMPLETED]).counts_toward_limit and not fold([requested(), FAILED]).counts_toward_limit


def test_a_step_is_running_only_after_a_steps_own_progress_events() -> None:
    running = {t for t in ev.EVENT_TYPES if step_running_after(t)}
    failed = {"StepFailed", "CatalogAttemptFailed", "AssembleAttemptFailed", "FinalizeAttemptFailed",
              "CancelAttemptFailed"}  # a failed attempt waits for its retry (StepFailed: older logs)
    assert running == {"CatalogStarted", "UploadStarted", "PartUploaded", "FinalizeStarted", *failed}


def test_an_email_is_due_once_per_outcome_and_only_when_one_was_asked_for() -> None:
    assert fold([requested(), ASSEMBLED, FINALIZED, COMPLETED]).email_due and fold([requested(), FAILED]).email_due
    assert not fold([requested(), *CANCELLED]).email_due
    assert not fold([requested(delivery_method="download"), ASSEMBLED, FINALIZED, COMPLETED]).email_due
    assert not fold([requested(), ASSEMBLED, FINALIZED, COMPLETED, ev.NotificationSent(**E, channel="outbox")]).email_due
    assert not fold([requested(), CATALOGED]).email_due


def test_a_complete_export_is_shown_expired_from_its_expiry_on_by_the_gateway_and_the_janitor() -> None:
    from services.gateway.projection import Row
    from services.gateway.views import shown_status as gateway_status
    from services.janitor.decide import is_expired
    from shared.core.lifecycle import shown_status

    expires = datetime(2030, 1, 1, tzinfo=UTC)
    assert shown_status("complete", expires, expires - timedelta(seconds=1)) == "complete"
    assert shown_status("complete", expires, expires) == "expired"
    assert shown_status("failed", expires, expires + timedelta(days=1)) == "failed"
    row = Row(id="e", tenant_id="t", user_email="a@b.c", mode="full", include_images=1, delivery_method="email",
              status="complete", progress=100, created_at=0, expires_at=int(expires.timestamp() * 1000))
    ms = int(expires.timestamp() * 1000)
    assert (gateway_status(row, ms - 1), gateway_status(row, ms)) == ("complete", "expired")
    state = SimpleNamespace(status="complete", completed=SimpleNamespace(expires_at=expires))
    assert (is_expired(state, expires - timedelta(seconds=1)), is_expired(state, expires)) == (False, True)  # type: ignore[arg-type]
    recorded = SimpleNamespace(status="expired", completed=state.completed)  # the janitor's own ExportExpired
    assert not is_expired(recorded, expires + timedelta(days=1))  # type: ignore[arg-type]


def test_the_logged_upload_is_used_only_while_the_store_still_holds_it() -> None:
    """One rule for the assembler (before it resumes) and the operator's retry: an upload aborted in
    the store (lifecycle rule, MinIO's purge, anyone) means a new upload from byte 0."""
    assembling = fold([requested(), CATALOGED, UPLOAD, part(1, 500, 10)])
    assert logged_upload_usable(assembling, upload_open=True, records_present=True)
    assert not logged_upload_usable(assembling, upload_open=False, records_present=True)
    assert not logged_upload_usable(assembling, upload_open=True, records_present=False)
    assert logged_upload_usable(assembling, upload_open=True)  # records not asked: assumed there
    assert not logged_upload_usable(fold([requested(), CATALOGED]), upload_open=True)  # no upload logged


def test_an_event_the_fold_ignores_is_not_the_last_event_and_a_late_cancel_is_no_cancel() -> None:
    """The janitor asks the last event whether a step runs: a second ExportRequested, an operator's
    note, a cancel after FinalizeStarted (the contract refuses it; the finalizer completes the export)
    moved it, and the late cancel made the step 'cancel' — a dead step was then never failed."""
    uploading = [requested(), ev.CatalogStarted(**E), CATALOGED, UPLOAD]
    for stray in (requested(), ev.AdmissionUnlocked(**E, operator="ada"), ev.ResendRequested(**E),
                  ev.ExportExpired(**E), ev.ExportRetried(**E), ev.NotificationSent(**E, channel="smtp"),
                  ev.NotificationFailed(**E, channel="smtp", reason="x")):
        s = fold([*uploading, stray])
        assert (s.last_event, s.step, s.status) == ("UploadStarted", "assemble", "assembling"), stray.name()
        assert step_running_after(s.last_event or "")
    finalizing = [*uploading, ev.ArchiveAssembled(**E, archive_key=UPLOAD.archive_key, upload_id="u1", size_bytes=1,
                                                  part_count=1, member_count=1, error_count=0),
                  ev.FinalizeStarted(**E)]
    late = fold([*finalizing, ev.CancelRequested(**E, requested_by="u")])
    assert (late.last_event, late.step, late.cancel_requested) == ("FinalizeStarted", "finalize", False)
    assert fold([*uploading, ev.CancelRequested(**E, requested_by="u")]).step == "cancel"  # one that can win


def test_an_email_recorded_before_the_export_has_an_outcome_does_not_cancel_the_email_it_is_owed() -> None:
    """The notifier's user may append NotificationSent to any export; one appended while it ran
    marked its email done, so when it completed no email was due and the person never got it."""
    s = fold([requested(), CATALOGED, ev.NotificationSent(**E, channel="smtp"), UPLOAD, ASSEMBLED, FINALIZED, COMPLETED])
    assert (s.notification, s.email_due) == (None, True)


def test_moved_says_whether_an_event_changed_the_export_beyond_counting_it() -> None:
    from shared.core.lifecycle import apply, moved

    s = fold([requested(), ev.CatalogStarted(**E), CATALOGED, UPLOAD])
    for stray in (requested(), ev.NotificationSent(**E, channel="smtp"), ev.AdmissionUnlocked(**E, operator="ada")):
        assert not moved(s, apply(s, stray)), stray.name()
    for real in (part(1, 5, 10), ev.StepFailed(**E, step="assemble", attempt=1, reason="x"),
                 ev.CancelRequested(**E, requested_by="u")):
        assert moved(s, apply(s, real)), real.name()
