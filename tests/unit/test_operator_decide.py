"""The operator's pure decisions and the fold's rules for operator events (no infrastructure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.admission import Slot
from services.operator import decide
from shared.core import events as ev
from shared.core.lifecycle import fold

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
IDS = dict(tenant_id="t1", export_id="exp_1")
KEY = "exports/t1/exp_1/a.zip"
REQ = ev.ExportRequested(**IDS, user_id="u", user_email="u@example.org", username="u")
CAT = ev.ExportCataloged(**IDS, snapshot_key="s", snapshot_sha256="0", archive_key=KEY, member_count=3,
                         total_bytes=100, item_counts={"posts": 1}, error_count=1)
UP = ev.UploadStarted(**IDS, upload_id="up1", archive_key=KEY, part_size=8, fingerprint="f")
PART = ev.PartUploaded(**IDS, part_number=1, etag="e", md5="m", byte_start=0, byte_end=8, records_key="r1",
                       records_count=1, members_done=1, source_bytes_done=40)
ASSEMBLED = ev.ArchiveAssembled(**IDS, archive_key=KEY, upload_id="up1", size_bytes=9, part_count=1,
                                member_count=3, error_count=2)
FAILED = ev.ExportFailed(**IDS, step="assemble", reason="boom")
STEPFAIL = ev.StepFailed(**IDS, step="assemble", attempt=3, reason="x")
DONE = ev.ExportCompleted(**IDS, archive_key=KEY, size_bytes=9, sha256="a" * 64, item_counts={}, error_count=0,
                          expires_at=T0)
COMPLETE = [ASSEMBLED, ev.FinalizeStarted(**IDS), DONE]  # an ExportCompleted counts only after these


def retried(step: str, upload_id: str | None = None, errors: int = 0) -> ev.ExportRetried:
    return ev.ExportRetried(**IDS, operator="op", reason="r", from_step=step, upload_id=upload_id,  # type: ignore[arg-type]
                            attempt=2, error_count=errors)


def test_a_retry_from_assemble_keeping_the_upload_resumes_after_the_logged_parts():
    s = fold([REQ, CAT, UP, PART, STEPFAIL, FAILED, retried("assemble", "up1", 1)])
    assert (s.status, s.failure, s.attempts, s.attempt) == ("assembling", None, (), 2)
    assert s.upload is not None and s.parts and s.cataloged is not None and s.progress > 10
    assert s.error_count == 1 and not s.terminal


def test_a_retry_from_assemble_with_a_new_upload_starts_at_part_one():
    s = fold([REQ, CAT, UP, PART, FAILED, retried("assemble", None, 1)])
    assert (s.status, s.upload, s.parts, s.progress) == ("assembling", None, (), 10)
    s = fold([REQ, CAT, UP, PART, FAILED, retried("assemble", None, 1),
              ev.UploadStarted(**IDS, upload_id="up2", archive_key=KEY, part_size=8, fingerprint="f")])
    assert s.upload is not None and s.upload.upload_id == "up2" and s.parts == ()


def test_a_retry_from_catalog_forgets_everything_but_the_request():
    s = fold([REQ, CAT, UP, PART, ASSEMBLED, FAILED, retried("catalog")])
    assert (s.status, s.progress, s.cataloged, s.upload, s.assembled, s.error_count) == ("pending", 0, None, None,
                                                                                        None, 0)


def test_a_retry_from_finalize_keeps_the_parts_and_waits_for_the_finalizer():
    s = fold([REQ, CAT, UP, PART, ASSEMBLED, ev.FinalizeStarted(**IDS), FAILED, retried("finalize")])
    assert (s.status, s.progress, s.assembled, s.finalize_started) == ("uploading", 90, ASSEMBLED, True)


def test_a_retry_moves_nothing_but_a_failed_export():
    for done in (COMPLETE, [ev.CancelRequested(**IDS), ev.ExportCancelled(**IDS)], [ev.CancelRequested(**IDS), FAILED]):
        before = fold([REQ, CAT, *done])
        after = fold([REQ, CAT, *done, retried("catalog")])
        assert (after.status, after.attempt) == (before.status, 1)


def test_a_resend_rearms_the_email_of_a_complete_or_failed_export_only():
    sent = ev.NotificationSent(**IDS, channel="outbox")
    assert fold([REQ, *COMPLETE, sent, ev.ResendRequested(**IDS)]).notification is None
    assert fold([REQ, FAILED, sent, ev.ResendRequested(**IDS)]).notification is None
    assert fold([REQ, CAT, ev.ResendRequested(**IDS)]).status == "assembling"
    # each resend that re-armed the email is counted: the email it sends is a new one (its own key)
    assert fold([REQ, *COMPLETE, sent, ev.ResendRequested(**IDS), sent, ev.ResendRequested(**IDS)]).resends == 2
    assert fold([REQ, CAT, ev.ResendRequested(**IDS)]).resends == 0


def test_retry_goes_on_from_the_furthest_step_the_store_still_allows():
    failed_late = fold([REQ, CAT, UP, PART, ASSEMBLED, FAILED])
    assert decide.plan_retry(failed_late, snapshot_present=True, upload_open=True, records_present=True) == \
        decide.RetryPlan("finalize", "up1", 2)
    assert decide.plan_retry(failed_late, snapshot_present=True, upload_open=False, records_present=True) == \
        decide.RetryPlan("assemble", None, 1)
    failed_mid = fold([REQ, CAT, UP, PART, FAILED])
    assert decide.plan_retry(failed_mid, snapshot_present=True, upload_open=True, records_present=True) == \
        decide.RetryPlan("assemble", "up1", 1)
    assert decide.plan_retry(failed_mid, snapshot_present=True, upload_open=True, records_present=False) == \
        decide.RetryPlan("assemble", None, 1)
    assert decide.plan_retry(failed_mid, snapshot_present=False, upload_open=True, records_present=True) == \
        decide.RetryPlan("catalog", None, 0)


def test_retry_and_the_assembler_share_one_rule_for_a_gone_upload():
    """plan_retry keeps the logged upload exactly when the lifecycle's logged_upload_usable does (and a
    part is logged): the assembler asks the same rule before it resumes."""
    from shared.core.lifecycle import logged_upload_usable

    failed_mid = fold([REQ, CAT, UP, PART, FAILED])
    for upload_open in (True, False):
        for records in (True, False):
            plan = decide.plan_retry(failed_mid, snapshot_present=True, upload_open=upload_open,
                                     records_present=records)
            usable = logged_upload_usable(failed_mid, upload_open=upload_open, records_present=records)
            assert plan == decide.RetryPlan("assemble", "up1" if usable else None, 1)


def test_retry_is_refused_unless_the_log_says_failed():
    assert "complete" in decide.plan_retry(fold([REQ, *COMPLETE])).why  # type: ignore[union-attr]
    assert "assembling" in decide.plan_retry(fold([REQ, CAT])).why  # type: ignore[union-attr]
    assert "cancelled" in decide.plan_retry(fold([REQ, ev.CancelRequested(**IDS), FAILED])).why  # type: ignore[union-attr]


def test_a_retried_export_takes_the_slot_back_unless_another_export_holds_it():
    slot = Slot("exp_other", T0, None, None)
    assert isinstance(decide.slot_for_retry(slot, "assembling", T0, "exp_1", 30), decide.Refused)
    assert isinstance(decide.slot_for_retry(slot, None, T0 + timedelta(seconds=5), "exp_1", 30), decide.Refused)
    taken = decide.slot_for_retry(slot, "complete", T0 + timedelta(minutes=5), "exp_1", 30)
    assert taken == Slot("exp_1", T0 + timedelta(minutes=5), T0, "exp_other")  # the complete one still counts
    assert decide.slot_for_retry(Slot("exp_1", T0), "failed", T0, "exp_1", 30) == Slot("exp_1", T0)


def test_resend_is_refused_without_an_outcome_an_email_or_an_archive():
    sent = ev.NotificationSent(**IDS, channel="outbox")
    assert decide.resend_refusal(fold([REQ, *COMPLETE, sent]), T0 - timedelta(days=1)) is None
    assert decide.resend_refusal(fold([REQ, *COMPLETE]), T0 - timedelta(days=1)) is not None  # the first email is still due
    assert "expired" in decide.resend_refusal(fold([REQ, *COMPLETE, sent, ev.ExportExpired(**IDS)]), T0).why  # type: ignore[union-attr]
    download = REQ.model_copy(update={"delivery_method": "download"})
    assert "download" in decide.resend_refusal(fold([download, *COMPLETE]), T0).why  # type: ignore[union-attr]
    assert "assembling" in decide.resend_refusal(fold([REQ, CAT]), T0).why  # type: ignore[union-attr]
    # past its expiry, a complete export is expired before the janitor records it
    assert "expired" in decide.resend_refusal(fold([REQ, *COMPLETE, sent]), T0).why  # type: ignore[union-attr]


def test_a_resend_of_a_cancelled_export_says_a_cancel_sends_no_email():
    """Seen: "the export is cancelled; there is no outcome to email yet" — as if one would come."""
    cancelled = fold([REQ, CAT, ev.CancelRequested(**IDS), ev.ExportCancelled(**IDS)])
    why = decide.resend_refusal(cancelled, T0).why  # type: ignore[union-attr]
    assert "cancelled" in why and "no email" in why and "yet" not in why
    assert "yet" in decide.resend_refusal(fold([REQ, CAT]), T0).why  # type: ignore[union-attr]  # still running


def test_unlock_is_refused_while_any_export_of_the_tenant_is_active_or_when_nothing_holds_it_back():
    held = adm_decide(Slot("exp_1", T0), "complete")
    assert "cancel it first" in decide.unlock_refusal([fold([REQ, *COMPLETE]), fold([REQ, CAT])], held).why  # type: ignore[union-attr]
    assert decide.unlock_refusal([fold([REQ, *COMPLETE])], held) is None
    assert "already free" in decide.unlock_refusal([fold([REQ, FAILED])], adm_decide(Slot("exp_1", T0), "failed")).why  # type: ignore[union-attr]
    assert decide.unlock_refusal([], adm_decide(Slot("exp_1", T0), None)) is None  # a reservation, no events yet


def adm_decide(slot: Slot, status: str | None):
    from services.gateway.admission import decide as admit

    return admit(T0 + timedelta(seconds=5), slot, status, new_export_id="probe", window_s=3600,
                 reservation_timeout_s=30)


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("2h", 7200), ("1.5d", 129600)])
def test_ages_read_like_a_person_writes_them(text: str, seconds: float):
    assert decide.parse_age(text).total_seconds() == seconds


def test_a_bad_age_says_what_it_should_look_like():
    with pytest.raises(ValueError, match="like 90s"):
        decide.parse_age("soon")


@pytest.mark.parametrize("text", ["99999999999999d", "36501d", "9" * 400 + "s"])
def test_an_age_beyond_a_hundred_years_is_a_bad_age_not_an_overflow(text: str):
    # seen: `exports --older-than 99999999999999d` printed an OverflowError traceback
    with pytest.raises(ValueError, match="more than 36500 days"):
        decide.parse_age(text)
    assert decide.parse_age("36500d").days == 36500


def test_the_lifecycle_names_the_step_where_an_export_is_or_failed():
    assert fold([REQ]).step == "catalog"
    assert fold([REQ, CAT]).step == "assemble"
    assert fold([REQ, CAT, ASSEMBLED]).step == "finalize"
    assert fold([REQ, FAILED]).step == "assemble"
    assert fold([REQ, CAT, ev.CancelRequested(**IDS)]).step == "cancel"
    assert fold([REQ, *COMPLETE]).step is None
