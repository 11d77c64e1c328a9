"""The pure fold: statuses and progress as the brief's table, retries, cancel, rewinds."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared.core import events as ev
from shared.core import keys
from shared.core.lifecycle import ExportState, _with, fold

E = {"export_id": "exp_1", "tenant_id": "t1"}
ZIP = keys.archive_key("t1", "exp_1", "autumn", "2026-01-01")  # the export's own keys: others are forged


def requested(**kw: object) -> ev.ExportRequested:
    return ev.ExportRequested(**E, user_id="u", user_email="a@b.c", username="autumn", **kw)  # type: ignore[arg-type]


def part(n: int, done: int, end: int, at: datetime | None = None) -> ev.PartUploaded:
    extra = {"occurred_at": at} if at else {}
    return ev.PartUploaded(**E, part_number=n, etag=f"e{n}", md5=f"m{n}", byte_start=(n - 1) * 10, byte_end=end,
                           records_key=keys.records_key("t1", "exp_1", n), records_count=1, members_done=n, source_bytes_done=done, **extra)


CATALOGED = ev.ExportCataloged(**E, snapshot_key=keys.snapshot_key("t1", "exp_1"), snapshot_sha256="x", archive_key=ZIP, member_count=3,
                               total_bytes=1000, item_counts={"posts": 2, "pages": 1, "images": 0})
UPLOAD = ev.UploadStarted(**E, upload_id="u1", archive_key=ZIP, part_size=10, fingerprint="f")
ASSEMBLED = ev.ArchiveAssembled(**E, archive_key=ZIP, upload_id="u1", size_bytes=30, part_count=3,
                                member_count=4, error_count=0, sha256="abc")
FINALIZED = ev.FinalizeStarted(**E)  # an ExportCompleted counts only after it (the fold ignores a bare one)
COMPLETED = ev.ExportCompleted(**E, archive_key=ZIP, size_bytes=30, sha256="abc",
                               item_counts={"posts": 2, "pages": 1, "images": 0}, error_count=0,
                               expires_at=datetime(2030, 1, 1, tzinfo=UTC))


def test_each_event_moves_status_and_progress_as_the_table_says() -> None:
    steps = [
        (requested(), "pending", 0),
        (ev.CatalogStarted(**E), "cataloging", 5),
        (CATALOGED, "assembling", 10),
        (UPLOAD, "assembling", 10),
        (part(1, 500, 10), "assembling", 47),
        (part(2, 1000, 20), "assembling", 85),
        (ASSEMBLED, "uploading", 90),
        (ev.FinalizeStarted(**E), "uploading", 90),
        (COMPLETED, "complete", 100),
    ]
    events: list[ev.Event] = []
    for event, status, progress in steps:
        events.append(event)
        s = fold(events)
        assert (s.status, s.progress) == (status, progress), event.name()


def test_terminal_events_keep_progress_and_stop_everything_else() -> None:
    s = fold([requested(), ev.CatalogStarted(**E), ev.ExportFailed(**E, step="catalog", reason="boom")])
    assert (s.status, s.progress, s.failure and s.failure.reason) == ("failed", 5, "boom")
    s2 = fold([requested(), ev.CatalogStarted(**E), ev.CancelRequested(**E), ev.ExportCancelled(**E), CATALOGED])
    assert s2.status == "cancelled" and s2.cataloged is None


def test_a_complete_export_expires_and_still_records_its_email() -> None:
    s = fold([requested(), CATALOGED, UPLOAD, ASSEMBLED, FINALIZED, COMPLETED, ev.NotificationSent(**E, channel="smtp"),
              ev.ExportExpired(**E, deleted_key=ZIP)])
    assert (s.status, s.progress, s.notification) == ("expired", 100, "sent")


def test_step_failures_count_attempts_per_step() -> None:
    s = fold([requested(), ev.StepFailed(**E, step="catalog", attempt=1, reason="x"),
              ev.StepFailed(**E, step="catalog", attempt=2, reason="y"),
              ev.StepFailed(**E, step="assemble", attempt=1, reason="z")])
    assert s.attempts_of("catalog") == 2 and s.attempts_of("assemble") == 1 and s.attempts_of("finalize") == 0
    assert s.last_step_error == "z" and s.status == "pending"


def test_relogging_a_part_voids_the_parts_after_it() -> None:
    s = fold([requested(), CATALOGED, UPLOAD, part(1, 1, 10), part(2, 2, 20), part(3, 3, 30), part(2, 2, 20)])
    assert [p.number for p in s.parts] == [1, 2]


def test_a_new_upload_drops_the_gone_uploads_parts_and_its_pace() -> None:
    """The logged upload was gone from the store: the assembler's new UploadStarted (another upload id)
    starts the archive over — no part of the old upload counts, the progress and ETA start afresh."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    old = fold([requested(), CATALOGED, UPLOAD.model_copy(update={"occurred_at": t0}), part(1, 250, 10, t0),
                part(2, 500, 20, t0 + timedelta(seconds=10))])
    assert old.progress > 10 and old.parts
    later = t0 + timedelta(days=3)
    fresh = UPLOAD.model_copy(update={"upload_id": "u2", "occurred_at": later})
    s = fold([fresh], old)
    assert s.upload == fresh and s.parts == () and s.status == "assembling" and s.progress == 10
    assert (s.assembling_since, s.last_part_at, s.bytes_done, s.archive_bytes_uploaded) == (later, None, 0, 0)
    s = fold([part(1, 250, 10, later + timedelta(seconds=10))], s)
    assert [p.number for p in s.parts] == [1] and s.eta_seconds() == 30.0
    # the same upload again (a new encoder fingerprint): its parts stay
    same = fold([UPLOAD.model_copy(update={"fingerprint": "g", "occurred_at": later})], old)
    assert same.parts == old.parts and same.assembling_since == t0 and same.progress == old.progress


def test_cancel_requested_marks_stopping_without_changing_status() -> None:
    s = fold([requested(), CATALOGED, ev.CancelRequested(**E)])
    assert s.status == "assembling" and s.cancel_requested and s.stopping


def test_eta_comes_from_the_rate_seen_so_far() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    up = UPLOAD.model_copy(update={"occurred_at": t0})
    s = fold([requested(), CATALOGED, up, part(1, 250, 10, t0 + timedelta(seconds=10))])
    assert s.eta_seconds() == 30.0
    assert s.bytes_done == 250 and s.items_done == 1


def test_the_fold_copies_state_as_replace_would_and_refuses_unknown_fields() -> None:
    before = fold([requested(), CATALOGED])
    after = _with(before, status="failed", progress=7)
    assert after == dataclasses.replace(before, status="failed", progress=7)
    assert before.status == "assembling" and before.progress == 10  # the old state is untouched
    assert isinstance(after, ExportState)
    with pytest.raises(TypeError, match="no_such_field"):
        _with(before, no_such_field=1)


def test_applying_an_event_never_changes_the_state_it_was_applied_to() -> None:
    # apply sets the event's fields on its own fresh copy (one copy per event): every earlier
    # state must stay exactly as it was, whichever event came next.
    from shared.core.lifecycle import apply

    history: list[ev.Event] = [
        requested(), ev.CatalogStarted(**E), CATALOGED, UPLOAD, part(1, 10, 10), part(2, 20, 20),
        ev.StepFailed(**E, step="assemble", attempt=1, reason="r"), part(2, 20, 20), ev.CancelRequested(**E),
        ASSEMBLED, ev.FinalizeStarted(**E), COMPLETED, ev.NotificationFailed(**E, channel="smtp", reason="x"),
        ev.ResendRequested(**E, by="op", reason="again"), ev.NotificationSent(**E, channel="smtp"),
        ev.ExportExpired(**E), ev.ExportFailed(**E, step="finalize", reason="late"), ev.ExportCancelled(**E),
    ]
    states = [ExportState()]
    snapshots = [dataclasses.asdict(states[0])]
    for event in history:
        new = apply(states[-1], event)
        assert new is not states[-1]
        states.append(new)
        snapshots.append(dataclasses.asdict(new))
        assert [dataclasses.asdict(s) for s in states] == snapshots  # none of the earlier ones moved


def test_only_a_complete_export_expires() -> None:
    """An ExportExpired that reaches an export that is not complete (a failed or cancelled one, or
    one still running) moves nothing: "expired" counts toward the tenant's hourly limit, "failed"
    does not, and a running export must not be shown ended."""
    expired = ev.ExportExpired(**E)
    failed = fold([requested(), ev.CatalogStarted(**E), ev.ExportFailed(**E, step="catalog", reason="boom"), expired])
    assert failed.status == "failed" and not failed.counts_toward_limit
    cancelled = fold([requested(), ev.CancelRequested(**E), ev.ExportCancelled(**E), expired])
    assert cancelled.status == "cancelled"
    running = fold([requested(), CATALOGED, UPLOAD, expired])
    assert running.status == "assembling" and not running.terminal


def test_a_redelivered_earlier_step_failure_does_not_lower_the_attempt_count() -> None:
    s = fold([requested(), ev.StepFailed(**E, step="catalog", attempt=2, reason="y"),
              ev.StepFailed(**E, step="catalog", attempt=1, reason="x")])
    assert s.attempts_of("catalog") == 2


def test_a_fold_of_the_most_parts_an_archive_has_takes_a_fraction_of_a_second() -> None:
    """Each PartUploaded kept the parts before it by walking them all in Python: a fold of 9,000 parts
    (an archive of 72 GiB and more: part size max(8 MiB, total/9000)) took 2.1 s of CPU — every read of
    that export, every step's, every janitor run's. The parts are in number order: a slice keeps them."""
    import time

    events = [requested(), CATALOGED, UPLOAD, *(part(n, n * 10, n * 100) for n in range(1, 9001))]
    started = time.process_time()
    s = fold(events)
    took = time.process_time() - started
    assert [p.number for p in s.parts] == list(range(1, 9001))
    assert took < 1.0, f"{took:.2f} s of CPU"
    rewound = fold([*events, part(4000, 40_000, 400_000)])  # a re-logged part still voids those after it
    assert [p.number for p in rewound.parts] == list(range(1, 4001))
