"""The read model's row is the shared fold (ExportState) copied into columns, on every sequence;
the projector's per-export folds give the same rows however often an export is pushed out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.gateway.projection import Row, advance, fold_rows, ms, row_from_state
from services.gateway.projector import Folds
from shared.core import events as ev
from shared.core.lifecycle import ExportState, fold

T0 = datetime(2026, 2, 22, 10, 0, tzinfo=UTC)
IDS = dict(tenant_id="tenant_a", export_id="exp_1")
KEY = "exports/tenant_a/exp_1/grove-export-u-2026-02-22.zip"


def part(n: int, done: int, upload: str = "up1") -> ev.PartUploaded:
    return ev.PartUploaded(**IDS, part_number=n, etag="e", md5="m", byte_start=0, byte_end=n, records_key="r",
                           records_count=1, members_done=n * 2, source_bytes_done=done)


POOL: list[ev.Event] = [
    ev.CatalogStarted(**IDS),
    ev.ExportCataloged(**IDS, snapshot_key="s", snapshot_sha256="0", archive_key=KEY, member_count=9,
                       total_bytes=1000, item_counts={"posts": 3}, error_count=2),
    ev.UploadStarted(**IDS, upload_id="up1", archive_key=KEY, part_size=8, fingerprint="f"),
    ev.UploadStarted(**IDS, upload_id="up2", archive_key=KEY, part_size=8, fingerprint="f"),
    part(1, 300), part(2, 700), part(1, 250),
    ev.StepFailed(**IDS, step="assemble", attempt=1, reason="boom"),
    ev.ArchiveAssembled(**IDS, archive_key=KEY, upload_id="up1", size_bytes=900, part_count=2, member_count=9,
                        error_count=3),
    ev.FinalizeStarted(**IDS),
    ev.ExportCompleted(**IDS, archive_key=KEY, size_bytes=900, sha256="a" * 64, item_counts={"posts": 3},
                       error_count=3, expires_at=T0 + timedelta(days=7)),
    ev.ExportFailed(**IDS, step="assemble", reason="gave up"),
    ev.CancelRequested(**IDS),
    ev.ExportCancelled(**IDS),
    ev.ExportExpired(**IDS),
    ev.NotificationSent(**IDS, channel="outbox"),
    ev.NotificationFailed(**IDS, channel="smtp", reason="refused"),
    # operator actions (issue 20): retries from each step, with and without the logged upload
    ev.ExportRetried(**IDS, operator="op", reason="r", from_step="catalog", attempt=2),
    ev.ExportRetried(**IDS, operator="op", reason="r", from_step="assemble", upload_id="up1", error_count=2),
    ev.ExportRetried(**IDS, operator="op", reason="r", from_step="assemble", upload_id=None, error_count=1),
    ev.ExportRetried(**IDS, operator="op", reason="r", from_step="finalize", attempt=3),
    ev.ResendRequested(**IDS, operator="op", reason="r"),
    ev.AdmissionUnlocked(**IDS, operator="op", reason="r"),
]
REQUEST = ev.ExportRequested(**IDS, user_id="u", user_email="u@example.org", username="u", mode="storage",
                             include_images=False, delivery_method="download")


def timed(events: list[ev.Event]) -> list[ev.Event]:
    return [e.model_copy(update={"occurred_at": T0 + timedelta(seconds=7 * i)}) for i, e in enumerate(events)]


def test_sequences_through_operator_retries_project_like_the_fold():
    """Explicit, so the retry rules are exercised on every run (not only when hypothesis draws them)."""
    failed = ev.ExportFailed(**IDS, step="assemble", reason="gave up")
    for retry in POOL[17:21]:
        for head in ([], POOL[:3], [*POOL[:3], part(1, 300), part(2, 700)], [*POOL[:6], POOL[8], POOL[9]]):
            events = timed([REQUEST, *head, failed, retry, part(3, 900), POOL[15]])
            row = row_of(events)
            assert row is not None
            assert_agrees(row, fold(events))


def row_of(events: list[ev.Event]) -> Row | None:
    return fold_rows(enumerate(events, start=1))


def assert_agrees(row: Row, state: ExportState) -> None:
    assert row.status == state.status
    assert row.progress == state.progress
    assert row.bytes_done == state.bytes_done
    assert row.items_done == state.items_done
    assert row.error_count == state.error_count
    assert row.counts() == state.item_counts()
    assert row.notification == state.notification
    assert row.notification_reason == state.notification_reason
    assert bool(row.finalize_started) == state.finalize_started
    assert bool(row.cancel_requested) == state.cancel_requested
    assert row.events == state.events
    assert row.created_at == ms(state.created_at) and row.updated_at == ms(state.updated_at)
    assert row.eta_seconds == state.eta_seconds()
    if state.failure:
        assert row.error_message == state.failure.reason


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(POOL), max_size=16))
def test_any_sequence_projects_to_the_same_status_progress_and_counts_as_the_fold(tail):
    events = timed([REQUEST, *tail])
    row = row_of(events)
    assert row is not None
    assert_agrees(row, fold(events))


def test_a_happy_path_fills_every_column_of_a_complete_export():
    events = timed([REQUEST, *POOL[:3], part(1, 400), part(2, 1000), POOL[8], POOL[9], POOL[10], POOL[15]])
    row = row_of(events)
    assert row is not None
    assert (row.status, row.progress, row.r2_key, row.file_size_bytes, row.sha256) == (
        "complete", 100, KEY, 900, "a" * 64)
    assert (row.mode, row.include_images, row.delivery_method, row.user_email) == (
        "storage", 0, "download", "u@example.org")
    assert row.expires_at == ms(T0 + timedelta(days=7)) and row.completed_at == ms(events[-2].occurred_at)
    assert (row.requested_seq, row.last_seq, row.notification) == (1, len(events), "sent")
    assert_agrees(row, fold(events))


def test_the_eta_comes_from_the_rate_since_assembly_began():
    events = timed([REQUEST, *POOL[:3], part(1, 250)])  # 250 of 1000 bytes in 7 s
    row = row_of(events)
    assert row is not None and row.eta_seconds == 21.0 == fold(events).eta_seconds()


def test_expiry_clears_the_key_and_events_before_a_request_are_ignored():
    events = timed([REQUEST, *POOL[:3], *POOL[8:11], POOL[14]])
    row = row_of(events)
    assert row is not None and row.status == "expired" and row.r2_key is None
    assert advance(None, 1, POOL[0]) is None
    assert row_from_state(fold([POOL[0]]), 0, 1) is None


def test_the_status_progress_and_counts_are_the_folds_answers_not_a_copy_of_its_rules():
    """A row computed from a fold whose answers differ from the events' shows the fold's answers:
    the row copies ExportState, it does not re-derive status, progress, ETA or the error count."""
    events = timed([REQUEST, *POOL[:3], part(1, 250)])
    state = fold(events)
    odd = state.__class__(**{**state.__dict__, "status": "uploading", "progress": 42, "base_error_count": 9})
    row = row_from_state(odd, 1, 5)
    assert row is not None and (row.status, row.progress, row.error_count) == ("uploading", 42, 9)
    assert row.eta_seconds is None  # the fold's ETA is only for an export that is assembling


async def test_the_projectors_folds_give_the_same_rows_when_exports_are_pushed_out_and_refolded():
    """A restart or an export pushed out of memory re-folds from the log: the rows do not change."""
    logs: dict[tuple[str, str], list[tuple[int, ev.Event]]] = {}
    stream: list[tuple[int, ev.Event]] = []
    for n in range(3):
        ids = dict(tenant_id="tenant_a", export_id=f"exp_{n}")
        for e in timed([REQUEST, *POOL[:3], part(1, 300), part(2, 700), *POOL[8:11], POOL[15]]):
            stream.append((0, e.model_copy(update=ids)))
    stream = [(seq, e) for seq, (_, e) in enumerate(sorted(stream, key=lambda x: x[1].occurred_at), start=1)]
    for seq, e in stream:
        logs.setdefault((e.tenant_id, e.export_id), []).append((seq, e))
    refolds = []

    async def miss(tenant_id: str, export_id: str, seq: int):
        refolds.append(export_id)
        f = None
        for at, e in logs.get((tenant_id, export_id), []):
            if at < seq:
                f = advance(f, at, e)
        return f

    kept, pushed = Folds(limit=None), Folds(miss, limit=1)
    for seq, e in stream:
        a, b = await kept.apply(seq, e), await pushed.apply(seq, e)
        assert a is not None and b is not None and a.row(seq) == b.row(seq)
    assert len(pushed) == 1 and refolds  # exports really were pushed out and re-folded
    assert {f"exp_{n}" for n in range(3)} == {e for e in refolds}


async def test_a_restarted_projector_refolds_an_export_from_the_log_and_ends_with_the_same_row() -> None:
    from types import SimpleNamespace

    from services.gateway.projector import Projector
    from services.gateway.readmodel import ReadModel
    from shared.eventlog.directget import Stored
    from shared.eventlog.memory import InMemoryEventLog

    log = InMemoryEventLog()
    seq = 0
    for e in timed([REQUEST, *POOL[:3], part(1, 400), part(2, 1000), POOL[8], POOL[9], POOL[10], POOL[15]]):
        seq = await log.append(e, seq)
    stored = [Stored(n, subject, e.to_json()) for n, (subject, e) in enumerate(log.messages, start=1)]
    model = await ReadModel.open(":memory:")
    try:
        first = Projector(SimpleNamespace(log=log), model)  # type: ignore[arg-type]
        for s in stored[:5]:
            await first.apply(s)
        restarted = Projector(SimpleNamespace(log=log), model)  # type: ignore[arg-type]
        for s in stored[5:]:
            await restarted.apply(s)
        assert await model.get("tenant_a", "exp_1") == row_of([e for _, e in log.messages])
        assert len(restarted.folds) == 1  # it did fold the export again (from the log, before sequence 6)
    finally:
        await model.close()
