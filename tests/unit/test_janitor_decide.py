"""The janitor's pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.janitor.decide import is_dead, is_expired, is_forgotten, is_orphan_upload, is_swept, is_unaccounted
from shared.core import events as ev
from shared.core.lifecycle import fold, retry_may_use_stored
from tests.unit.test_state_fold import ASSEMBLED, CATALOGED, COMPLETED, FINALIZED, UPLOAD, requested

NOW = datetime(2031, 1, 1, tzinfo=UTC)
E = {"export_id": "exp_1", "tenant_id": "t1"}


def test_only_complete_exports_past_their_expiry_expire() -> None:
    done = fold([requested(), CATALOGED, UPLOAD, ASSEMBLED, FINALIZED, COMPLETED])
    assert is_expired(done, NOW)
    assert not is_expired(done, datetime(2029, 1, 1, tzinfo=UTC))
    assert not is_expired(fold([requested()]), NOW)


def test_dead_means_in_a_step_without_heartbeat_for_a_whole_ttl() -> None:
    s = fold([requested(), CATALOGED, UPLOAD])
    old = NOW - timedelta(seconds=301)
    assert is_dead(s, "PartUploaded", old, heartbeat_alive=False, ttl_s=300, now=NOW)
    assert not is_dead(s, "PartUploaded", old, heartbeat_alive=True, ttl_s=300, now=NOW)
    assert not is_dead(s, "PartUploaded", NOW - timedelta(seconds=10), heartbeat_alive=False, ttl_s=300, now=NOW)
    assert not is_dead(s, "ExportCataloged", old, heartbeat_alive=False, ttl_s=300, now=NOW)  # queued, not stuck


def test_orphan_uploads_belong_to_finished_or_unknown_exports_and_are_old_enough() -> None:
    old, young = NOW - timedelta(days=2), NOW - timedelta(minutes=5)
    done = fold([requested(), CATALOGED, UPLOAD, ASSEMBLED, FINALIZED, COMPLETED])
    running = fold([requested(), CATALOGED, UPLOAD])
    assert is_orphan_upload(None, "u9", old, 86400, NOW)
    assert is_orphan_upload(done, "u1", old, 86400, NOW)
    assert not is_orphan_upload(done, "u1", young, 86400, NOW)
    assert not is_orphan_upload(running, "u1", old, 86400, NOW)
    assert not is_orphan_upload(running, "u2", old, 86400, NOW)  # maybe the upload about to be logged
    cancelled = fold([requested(), ev.CancelRequested(**E), ev.ExportCancelled(**E)])
    assert is_orphan_upload(cancelled, "u1", old, 86400, NOW)


def test_a_texts_upload_a_killed_catalog_left_is_an_orphan_once_the_export_ends_never_while_it_catalogs() -> None:
    # The catalog uploads a big texts object in parts and aborts the upload when it fails; a killed
    # one leaves it open, under the export's work/ prefix, with no event naming it.
    old = NOW - timedelta(days=2)
    cataloging = fold([requested(), ev.CatalogStarted(**E)])
    assert not is_orphan_upload(cataloging, "texts", old, 86400, NOW)  # a rerun may be uploading it
    assert not is_orphan_upload(fold([requested(), CATALOGED, UPLOAD]), "texts", old, 86400, NOW)
    assert is_orphan_upload(fold([requested(), CATALOGED, UPLOAD, ASSEMBLED]), "texts", old, 86400, NOW)
    assert is_orphan_upload(fold([requested(), CATALOGED, UPLOAD, ASSEMBLED, FINALIZED, COMPLETED]), "texts", old, 86400, NOW)
    failed = ev.ExportFailed(**E, step="catalog", reason="x", occurred_at=NOW - timedelta(days=1))  # type: ignore[arg-type]
    assert is_orphan_upload(fold([requested(), failed]), "texts", old, 86400, NOW)


def test_a_cancel_nobody_finishes_is_completed_after_a_ttl_without_heartbeat() -> None:
    from services.janitor.decide import is_abandoned_cancel

    cancel = ev.CancelRequested(**E, requested_by="u1")
    s = fold([requested(), CATALOGED, UPLOAD, cancel])
    old = NOW - timedelta(seconds=301)
    assert is_abandoned_cancel(s, old, heartbeat_alive=False, ttl_s=300, now=NOW)
    assert not is_abandoned_cancel(s, old, heartbeat_alive=True, ttl_s=300, now=NOW)  # a canceller is on it
    assert not is_abandoned_cancel(s, NOW - timedelta(seconds=10), heartbeat_alive=False, ttl_s=300, now=NOW)
    assert not is_abandoned_cancel(fold([requested(), CATALOGED, UPLOAD]), old, False, 300, NOW)  # no cancel
    finalizing = fold([requested(), CATALOGED, UPLOAD, ASSEMBLED, ev.FinalizeStarted(**E), cancel])
    assert not is_abandoned_cancel(finalizing, old, False, 300, NOW)  # the finalizer won: not the cancel's
    done = fold([requested(), CATALOGED, UPLOAD, cancel, ev.ExportCancelled(**E)])
    assert not is_abandoned_cancel(done, old, False, 300, NOW)


def test_the_upload_an_assembled_export_names_is_never_an_orphan_but_another_one_is() -> None:
    """Between ArchiveAssembled and ExportCompleted the logged upload is the one the finalizer is
    about to complete: aborting it would lose the archive. Only a different upload is stale."""
    old = NOW - timedelta(days=2)
    assembled = fold([requested(), CATALOGED, UPLOAD, ASSEMBLED])
    assert not assembled.terminal
    assert not is_orphan_upload(assembled, "u1", old, 86400, NOW)  # the finalizer's to complete
    assert is_orphan_upload(assembled, "u2", old, 86400, NOW)  # superseded by the logged u1
    finalizing = fold([requested(), CATALOGED, UPLOAD, ASSEMBLED, ev.FinalizeStarted(**E)])
    assert not is_orphan_upload(finalizing, "u1", old, 86400, NOW)


def test_a_step_waiting_for_its_retry_is_dead_only_a_ttl_after_that_wait() -> None:
    """The retry after failed attempt n waits base * 2**(n-1); a StepFailed may say any count (a
    step's user may append one with attempt 2**62): the wait is held to the last retry's."""
    s = fold([requested(), CATALOGED, UPLOAD, ev.StepFailed(**E, step="assemble", attempt=3, reason="x")])
    kw = {"retry_base_delay_s": 120.0, "max_attempts": 4}  # the retry waits 480 s
    assert not is_dead(s, "StepFailed", NOW - timedelta(seconds=700), False, 300, NOW, **kw)
    assert is_dead(s, "StepFailed", NOW - timedelta(seconds=781), False, 300, NOW, **kw)
    huge = fold([requested(), CATALOGED, UPLOAD, ev.StepFailed(**E, step="assemble", attempt=2**62, reason="x")])
    assert is_dead(huge, "StepFailed", NOW - timedelta(seconds=300 + 120 * 8 + 1), False, 300, NOW, **kw)


def test_only_an_object_older_than_the_logs_oldest_message_and_its_age_is_forgotten() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    written, day = now - timedelta(days=10), 86400
    assert is_forgotten(False, written, written + timedelta(hours=1), 7 * day, now)
    assert not is_forgotten(True, written, written + timedelta(hours=1), 7 * day, now)  # the log judges it
    assert not is_forgotten(False, written, None, 7 * day, now)  # a log that holds nothing
    assert not is_forgotten(False, written, written, 7 * day, now)  # not before the oldest message: made up
    assert not is_forgotten(False, written, written + timedelta(hours=1), 11 * day, now)  # younger than its age
    assert not is_forgotten(False, None, written, 7 * day, now)  # no time


def test_an_object_of_an_export_the_log_does_not_hold_written_since_its_oldest_message_is_unaccounted() -> None:
    """What is_forgotten leaves because it did not age out of the log (a restore from an older backup:
    the exports requested since; a key no export made): said in the summary, never deleted."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    begins = now - timedelta(days=10)
    assert is_unaccounted(False, begins, begins) and is_unaccounted(False, now, begins)
    assert not is_unaccounted(True, now, begins)  # the log holds it: the log judges it
    assert not is_unaccounted(False, begins - timedelta(seconds=1), begins)  # aged out: is_forgotten's
    assert not is_unaccounted(False, now, None)  # a log that holds nothing says nothing
    assert not is_unaccounted(False, None, begins)  # no time: nothing to judge by


def test_an_ended_exports_objects_are_swept_but_a_failed_ones_only_past_the_retry_window() -> None:
    keep = timedelta(days=7)
    failed_at = NOW - timedelta(days=8)
    failed = fold([requested(), CATALOGED, UPLOAD, ASSEMBLED,
                   ev.ExportFailed(**E, step="janitor", reason="stopped", occurred_at=failed_at)])  # type: ignore[arg-type]
    before = failed_at - timedelta(seconds=5)
    for archive in (False, True):
        assert is_swept(failed, archive, before, NOW, keep)
        # a stopped replica's part record or archive, stored just after the failure: swept past the window
        # (review of e68b604: it was left until the log aged out); a retry's, stored after the window, is not
        assert is_swept(failed, archive, failed_at + timedelta(seconds=2), NOW, keep)
        assert not is_swept(failed, archive, failed_at + keep, NOW, keep)
        assert not is_swept(failed, archive, None, NOW, keep)
        assert not is_swept(failed, archive, before, failed_at + timedelta(days=6), keep)  # a retry may go on from it
    # its open upload (a retry may go on from finalize with it) the same way
    assert not is_orphan_upload(failed, "u", before, 60, failed_at + timedelta(days=6), keep)
    assert is_orphan_upload(failed, "u", before, 60, NOW, keep)
    assert is_orphan_upload(failed, "u", failed_at + timedelta(seconds=1), 60, NOW, keep)
    assert not is_orphan_upload(failed, "u", failed_at + keep, 60, NOW, keep)
    assert retry_may_use_stored(failed, failed_at + timedelta(days=6), keep)
    assert not retry_may_use_stored(failed, failed_at + keep - timedelta(minutes=59), keep)  # an hour short
    done = fold([requested(), CATALOGED, UPLOAD, ASSEMBLED, FINALIZED, COMPLETED])
    assert is_swept(done, False, NOW, NOW, keep)  # nothing retries a complete export: at once, whenever stored
    assert not is_swept(done, True, before, NOW, keep)  # its download: deleted at expiry
    assert not is_swept(fold([requested(), CATALOGED, UPLOAD, ASSEMBLED]), False, before, NOW, keep)


def test_a_beat_only_ever_spares_an_export_so_it_is_asked_only_of_one_that_would_be_judged() -> None:
    """The janitor reads a heartbeat (and, for a key holding a value no worker put, listens for two
    beat intervals) only when the verdict without a beat is not None: that is sound only if a beat,
    or an unreadable one, never makes a verdict where there was none."""
    from services.janitor.decide import verdict

    cancel = ev.CancelRequested(**E, requested_by="u1")
    histories = {
        "catalog": [requested(), ev.CatalogStarted(**E)], "assembling": [requested(), CATALOGED, UPLOAD],
        "queued": [requested(), CATALOGED], "cancel": [requested(), CATALOGED, UPLOAD, cancel],
        "retrying": [requested(), CATALOGED, UPLOAD, ev.StepFailed(**E, step="assemble", attempt=1, reason="x")],
        "done": [requested(), CATALOGED, UPLOAD, ASSEMBLED, FINALIZED, COMPLETED],
    }
    seen = set()
    for name, history in histories.items():
        s = fold(history)
        last_event = type(history[-1]).__name__
        for age in (0, 10, 299, 301, 400, 10_000):
            at = NOW - timedelta(seconds=age)
            without = verdict(s, last_event, at, False, 300, NOW, retry_base_delay_s=2.0, max_attempts=4)
            seen.add((name, without))
            for alive in (True, None):
                assert verdict(s, last_event, at, alive, 300, NOW, retry_base_delay_s=2.0, max_attempts=4) is None
    assert {("assembling", "fail"), ("catalog", "fail"), ("cancel", "cancel"), ("retrying", "fail")} <= seen
    assert ("queued", "fail") not in seen and ("done", "fail") not in seen and ("done", "cancel") not in seen


def test_a_request_subject_holds_no_export_only_when_none_of_its_messages_is_the_request() -> None:
    from services.janitor.decide import no_request

    subject = "exports.t1.exp_1.ExportRequested"
    request = ev.ExportRequested(**E, user_id="u", user_email="a@b.c", username="u").to_json()
    puback = b'{"stream": "EXPORTS", "seq": 7}'
    other = ev.ExportRequested(export_id="exp_2", tenant_id="t1", user_id="u", user_email="a@b.c",
                               username="u").to_json()
    assert no_request("exports", [(subject, puback, False)]) == "malformed"
    assert no_request("exports", [(subject, b"\xff not json", False)]) == "malformed"
    assert no_request("exports", [(subject, other, False)]) == "forged"  # another export's request
    assert no_request("exports", [(subject, request, True)]) == "forged"  # a copy the server stored as its answer
    assert no_request("exports", [(subject, request, False)]) is None
    assert no_request("exports", [(subject, puback, False), (subject, request, False)]) is None  # junk first
    assert no_request("exports", [(subject, request, False), (subject, puback, False)]) is None  # junk after
    assert no_request("exports", []) is None  # nothing read: nothing judged, read as an export


def test_a_key_is_an_exports_only_under_its_prefix_with_ids_an_export_can_have() -> None:
    from services.janitor.decide import export_of

    assert export_of("exports/t1/exp_1/work/snapshot.jsonl") == ("t1", "exp_1")
    assert export_of("exports/t1/exp_1/grove-export-u-2026-01-01.zip") == ("t1", "exp_1")
    assert export_of("exports/*/exp_1/x.zip") is None  # a '*' read every tenant's export of that id
    assert export_of("exports/t1/*/x.zip") is None
    assert export_of("exports/t1/exp_1") is None  # no object under the export's prefix
    assert export_of("other/t1/exp_1/x.zip") is None
