"""Every step's decisions, without a server: which step is due at each point of an export's life,
what a failure leads to, what the finalizer checks, and a lost fence — on the in-memory log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.assembler.service import should_run as assemble_due
from services.canceller.service import should_run as cancel_due
from services.catalog.service import should_run as catalog_due
from services.finalizer.service import check_parts
from services.finalizer.service import should_run as finalize_due
from services.notifier.service import should_run as notify_due
from shared.core import events as ev
from shared.core import keys
from shared.core.lifecycle import fold
from shared.core.retry import Drop, GiveUp, Retry, after_deaths, after_failure, deaths_before
from shared.eventlog.jetstream import Conflict, Loaded
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepError, is_due
from tests.unit.test_state_fold import ASSEMBLED, CATALOGED, COMPLETED, UPLOAD, ZIP, E, part, requested

DUE = {"catalog": catalog_due, "assemble": assemble_due, "finalize": finalize_due, "notify": notify_due,
       "cancel": cancel_due}
FAILED = ev.ExportFailed(**E, step="assemble", reason="Failed while building the archive after 4 attempts: x")
LIFE = [
    (requested(), {"catalog"}),
    (ev.CatalogStarted(**E), {"catalog"}),
    (ev.StepFailed(**E, step="catalog", attempt=1, reason="x"), {"catalog"}),
    (CATALOGED, {"assemble"}),
    (UPLOAD, {"assemble"}),
    (part(1, 500, 10), {"assemble"}),
    (ASSEMBLED, {"finalize"}),
    (ev.FinalizeStarted(**E), {"finalize"}),
    (COMPLETED, {"notify"}),
    (ev.NotificationSent(**E, channel="outbox", message_id="m"), set()),
    (ev.ExportExpired(**E, deleted_key=ZIP), set()),
]


def _due(events: list[ev.Event]) -> set[str]:
    loaded = Loaded(fold(events), len(events))
    return {step for step, due in DUE.items() if is_due(loaded, due)}


@pytest.mark.parametrize("n", range(1, len(LIFE) + 1))
def test_exactly_the_next_step_is_due_at_each_point_of_a_normal_life(n: int) -> None:
    events = [e for e, _ in LIFE[:n]]
    assert _due(events) == LIFE[n - 1][1]


@pytest.mark.parametrize("n", range(1, 8))
def test_after_a_cancel_only_the_canceller_is_due_until_finalize_started(n: int) -> None:
    events = [*(e for e, _ in LIFE[:n]), ev.CancelRequested(**E, requested_by="u")]
    assert _due(events) == {"cancel"}
    assert _due([*events, ev.ExportCancelled(**E)]) == set()


def test_a_failed_export_wants_its_failure_email_and_nothing_else() -> None:
    events = [requested(), CATALOGED, UPLOAD, FAILED]
    assert _due(events) == {"notify"}
    assert _due([requested(delivery_method="download"), CATALOGED, FAILED]) == set()
    assert _due([*events, ev.NotificationFailed(**E, channel="smtp", reason="down")]) == set()


def test_nothing_is_due_for_an_export_the_log_does_not_know() -> None:
    assert _due([]) == set()


@pytest.mark.parametrize(("failures", "expected"), [
    (0, Retry(1, 2.0)), (1, Retry(2, 4.0)), (2, Retry(3, 8.0)),
    (3, GiveUp(4, "Failed while building the archive after 4 attempts: disk on fire")),
])
def test_a_failure_is_retried_with_a_growing_delay_then_fails_the_export(failures: int, expected: object) -> None:
    events: list[ev.Event] = [requested(), CATALOGED]
    events += [ev.StepFailed(**E, step="assemble", attempt=i + 1, reason="x") for i in range(failures)]
    assert after_failure(fold(events), "assemble", "disk on fire", 4, 2.0) == expected


def test_attempts_are_counted_per_step() -> None:
    events = [requested(), *(ev.StepFailed(**E, step="catalog", attempt=i + 1, reason="x") for i in range(3)),
              CATALOGED]
    assert after_failure(fold(events), "assemble", "x", 4, 1.0) == Retry(1, 1.0)


def test_a_stopping_export_records_no_failure() -> None:
    cancelled = fold([requested(), CATALOGED, ev.CancelRequested(**E, requested_by="u")])
    assert after_failure(cancelled, "assemble", "x", 4, 1.0) == Drop()
    assert after_failure(fold([requested(), FAILED]), "assemble", "x", 4, 1.0) == Drop()


W = {"worker": "w1", "at": 1.5}


@pytest.mark.parametrize(("beat", "deaths"), [
    (None, 0),  # no heartbeat left: the run before ended on its own (or died before its first beat)
    ({"step": "assemble", **W}, 1),  # left by a run that died
    ({"step": "assemble", **W, "deaths": 3}, 4),  # that run had found 3
    ({"step": "assemble", **W, "deaths": -1}, 1), ({"step": "assemble", **W, "deaths": True}, 1),
    ({"step": "assemble", **W, "deaths": 10000}, 1), ({"step": "assemble", **W, "deaths": "9"}, 1),
])
def test_deaths_are_read_from_the_heartbeat_a_run_left(beat: dict[str, Any] | None, deaths: int) -> None:
    assert deaths_before(beat) == deaths


@pytest.mark.parametrize(("value", "beat"), [
    (b'{"step": "assemble", "worker": "w1", "at": 1.5, "deaths": 2}', True),
    (b'{"step": "assemble", "worker": "w1", "at": 2}', True),
    (b'{"step": "catalog", "worker": "w1", "at": 1.5}', False),  # another step's
    (b'{"stream": "KV_grove_heartbeats", "seq": 5}', False),  # a PubAck the server stored there
    (b'{"step": "assemble", "at": 1.5}', False), (b'{"step": "assemble", "worker": 7, "at": 1.5}', False),
    (b'{"step": "assemble", "worker": "w1"}', False), (b'{"step": "assemble", "worker": "w1", "at": "1"}', False),
    (b'{"step": "assemble", "worker": "w1", "at": true}', False),
    (b'{"step": "assemble", "worker": "w1", "at": 1e999}', False),
    # a whole number past every float: math.isfinite raised OverflowError (show, erase-tenant: a traceback)
    (b'{"step": "assemble", "worker": "w1", "at": 1' + b"0" * 400 + b"}", False),
    (b"not json", False), (b"[1, 2]", False), (b'"assemble"', False),
])
def test_a_beat_is_what_a_worker_of_the_step_puts(value: bytes, beat: bool) -> None:
    assert (keys.parse_beat(value, "assemble") is not None) is beat


def test_after_so_many_deaths_in_a_row_the_export_fails_with_a_readable_reason() -> None:
    state = fold([requested(), CATALOGED, ev.StepFailed(**E, step="assemble", attempt=1, reason="x")])
    assert after_deaths(state, "assemble", 4, 5) is None
    decision = after_deaths(state, "assemble", 5, 5)
    assert isinstance(decision, GiveUp) and decision.attempt == 2
    assert decision.reason.startswith("Failed while building the archive: the work stopped 5 times in a row")


@pytest.mark.parametrize(("listed", "problem"), [
    ({1: "e1", 2: "e2"}, None),
    ({1: "e1", 2: "e2", 3: "e3"}, None),  # an extra part past the logged ones is not completed
    ({1: "e1"}, "part 2 is missing from the upload"),
    ({1: "e1", 2: "other"}, "part 2 in the store is not the logged one"),
    ({}, "part 1 is missing from the upload"),
])
def test_the_finalizer_completes_only_the_logged_parts(listed: dict[int, str], problem: str | None) -> None:
    assert check_parts([(1, "e1"), (2, "e2")], listed) == problem


async def test_a_step_that_lost_its_fence_cannot_append() -> None:
    """The finalizer folded before the cancel landed: its FinalizeStarted is refused."""
    log = InMemoryEventLog(producer="finalizer")
    seq = 0
    for event in (requested(), CATALOGED, UPLOAD, part(1, 500, 10), ASSEMBLED):
        seq = await log.append(event, seq)
    ctx = StepContext(log, await log.load("t1", "exp_1"), Settings())
    assert finalize_due(ctx.loaded)
    await log.append(ev.CancelRequested(**E, requested_by="u"), seq)
    with pytest.raises(Conflict):
        await ctx.append(ev.FinalizeStarted(**E))
    reloaded = await ctx.reload()
    assert not finalize_due(reloaded) and cancel_due(reloaded)


async def test_a_step_context_tracks_its_own_appends() -> None:
    log = InMemoryEventLog(producer="catalog")
    ctx = StepContext(log, Loaded(fold([]), await log.append(requested(), 0)), Settings())
    ctx.loaded = await log.load("t1", "exp_1")
    await ctx.append(ev.CatalogStarted(**E))
    await ctx.append(CATALOGED)
    assert ctx.state.status == "assembling" and ctx.loaded.last_seq == 3
    assert [e.producer async for _, e in log.history("t1", "exp_1")] == ["catalog"] * 3
    assert datetime.now(UTC) >= ctx.state.updated_at


class _RecordsStore:
    def __init__(self) -> None:
        self.put_keys: list[str] = []

    async def put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self.put_keys.append(key)


async def _assembler_that_lost_its_fence(*, then: ev.Event) -> tuple[InMemoryEventLog, object]:
    """An assembler folded at UploadStarted; meanwhile ``then`` was logged by someone else."""
    from services.assembler.uploader import PartUploader

    log = InMemoryEventLog(producer="assembler")
    seq = 0
    for event in (requested(), CATALOGED, UPLOAD):
        seq = await log.append(event, seq)
    ctx = StepContext(log, await log.load("t1", "exp_1"), Settings())
    await log.append(then, seq)
    uploader = PartUploader(ctx, _RecordsStore(), "b", UPLOAD, 1, 0, 1)  # type: ignore[arg-type]
    return log, uploader


async def _log_part_one(uploader: object) -> None:
    async def uploaded() -> tuple[str, int]:
        return "e1", 7

    stored = asyncio.ensure_future(uploader._store_records(1, []))  # type: ignore[attr-defined]
    await uploader._log_part(None, asyncio.ensure_future(uploaded()), stored, 1, 0, 10, 0, (1, 500))  # type: ignore[attr-defined]


async def test_an_assembler_whose_part_another_worker_logged_stands_down_without_appending() -> None:
    from shared.runtime.worker import StandDown

    log, uploader = await _assembler_that_lost_its_fence(then=part(1, 500, 10))
    before = list(log.messages)
    with pytest.raises(StandDown, match="another worker logged part 1"):
        await _log_part_one(uploader)
    assert log.messages == before  # the stale writer appended nothing


@pytest.mark.parametrize(("kept", "said"), [
    (0, "the export's log no longer holds it (it was at sequence 3: the stream was replaced"),
    (2, "the export's log goes back to sequence 2, before the 3 this attempt decided from (the stream was "
        "replaced"),
])
async def test_an_assembler_whose_log_was_replaced_says_so_not_that_another_worker_logged_its_part(
        kept: int, said: str) -> None:
    """Seen: after `grove-export restore --replace` put back a backup taken before the export (or before
    its upload started), the assembler still running it lost the fence on its next part and logged
    "standing down: another worker logged part 1" — no worker had logged anything; the log it decided
    from was gone. The line says what the log now holds."""
    from shared.runtime.worker import StandDown

    log, uploader = await _assembler_that_lost_its_fence(then=part(1, 500, 10))
    log.messages = log.messages[:kept]  # the stream replaced by a backup holding the first `kept` of them
    with pytest.raises(StandDown) as lost:
        await _log_part_one(uploader)
    assert str(lost.value).startswith(said), str(lost.value)
    assert "another worker" not in str(lost.value)
    assert len(log.messages) == kept  # nothing appended to the restored log


@pytest.mark.parametrize(("then", "said"), [
    (part(2, 900, 20), "the export's log moved past sequence 4: another worker appended to it"),
    (part(1, 600, 10), "another worker logged part 1"),
])
async def test_an_assembler_redoing_a_logged_part_says_another_worker_logged_it_only_when_one_did(
        then: ev.PartUploaded, said: str) -> None:
    """A rewind (a member changed under the upload) redoes parts the log already holds: the fold this
    attempt decided from has part 1, logged before. When another worker then logged part 2 (resuming
    from that fold), the re-log of part 1 lost the fence and the line said "another worker logged
    part 1" because part 1 was in the log — the one logged before the decision, not another worker's.
    Only a part 1 that is not the one the attempt decided from is another worker's."""
    from services.assembler.uploader import PartUploader
    from shared.runtime.worker import StandDown

    log = InMemoryEventLog(producer="assembler")
    seq = 0
    for event in (requested(), CATALOGED, UPLOAD, part(1, 500, 10)):
        seq = await log.append(event, seq)
    ctx = StepContext(log, await log.load("t1", "exp_1"), Settings())
    await log.append(then, seq)  # another worker's part, after the fold this attempt decided from
    uploader = PartUploader(ctx, _RecordsStore(), "b", UPLOAD, 1, 0, 1)  # type: ignore[arg-type]
    before = list(log.messages)
    with pytest.raises(StandDown) as lost:
        await _log_part_one(uploader)  # redone after the rewind
    assert str(lost.value) == said
    assert log.messages == before  # the stale writer appended nothing


class _ReplicaBehind(InMemoryEventLog):
    """A log whose reads of a whole export are answered by a replica still behind the stream's leader
    (a stream of several replicas: each answers direct gets from its own copy), ``behind`` messages
    back; appends go to the leader."""

    behind = 0

    async def load(self, tenant_id: str, export_id: str) -> Loaded:
        kept, self.messages = self.messages, self.messages[:len(self.messages) - self.behind]
        try:
            return await super().load(tenant_id, export_id)
        finally:
            self.messages = kept


@pytest.mark.parametrize(("replicas", "said"), [
    (3, "the export's log as read goes back to sequence 3, before the 4 this attempt decided from (the stream "
        "was replaced, as `restore --replace` does, or the read was answered by a replica still behind)"),
    (1, "the export's log goes back to sequence 3, before the 4 this attempt decided from (the stream was "
        "replaced, as `restore --replace` does)"),
])
async def test_an_assembler_that_lost_its_fence_on_a_replicated_stream_does_not_say_it_was_replaced(
        replicas: int, said: str) -> None:
    """A stream of several replicas answers a direct get from any of them, a follower from its copy,
    which may not have the newest messages yet. The look after a lost fence read such a copy: it did
    not hold this attempt's own last part (acked at the leader with a quorum), and the line said "the
    stream was replaced, as `restore --replace` does" when another worker had logged part 2."""
    from services.assembler.uploader import PartUploader
    from shared.runtime.worker import StandDown

    log = _ReplicaBehind(producer="assembler")
    seq = 0
    for event in (requested(), CATALOGED, UPLOAD, part(1, 500, 10)):
        seq = await log.append(event, seq)
    ctx = StepContext(log, await log.load("t1", "exp_1"), Settings(stream_replicas=replicas))
    await log.append(part(2, 900, 20), seq)  # another worker's part 2
    log.behind = 2  # the replica answering the look has neither part yet
    uploader = PartUploader(ctx, _RecordsStore(), "b", UPLOAD, 2, 10, 1)  # type: ignore[arg-type]

    async def uploaded() -> tuple[str, int]:
        return "e2", 7

    stored = asyncio.ensure_future(uploader._store_records(2, []))
    with pytest.raises(StandDown) as lost:
        await uploader._log_part(None, asyncio.ensure_future(uploaded()), stored, 2, 10, 20, 0, (2, 900))
    assert str(lost.value) == said


async def test_an_assembler_that_lost_its_fence_to_a_cancel_stops_instead_of_standing_down() -> None:
    from services.assembler.encoder import Stopped

    log, uploader = await _assembler_that_lost_its_fence(then=ev.CancelRequested(**E, requested_by="u"))
    before = list(log.messages)
    with pytest.raises(Stopped):
        await _log_part_one(uploader)
    assert log.messages == before


async def _one_part_assembled(tmp_path, logged_size: int):  # type: ignore[no-untyped-def]
    """A filesystem store holding one uploaded 10-byte part, and an in-memory log up to
    ArchiveAssembled saying the archive is ``logged_size`` bytes."""
    from shared.objectstore.fs import FilesystemStore

    settings = Settings()
    store = FilesystemStore(tmp_path)
    bucket = settings.buckets.exports
    upload_id = await store.create_multipart(bucket, ZIP)
    etag = await store.upload_part(bucket, ZIP, upload_id, 1, b"0123456789")
    log = InMemoryEventLog(producer="finalizer")
    seq = 0
    logged_part = ev.PartUploaded(**E, part_number=1, etag=etag, byte_start=0, byte_end=10,
                                  records_key=keys.records_key("t1", "exp_1", 1), records_count=1, members_done=1,
                                  source_bytes_done=10)
    for event in (requested(), CATALOGED, UPLOAD.model_copy(update={"upload_id": upload_id}), logged_part,
                  ASSEMBLED.model_copy(update={"upload_id": upload_id, "size_bytes": logged_size, "part_count": 1})):
        seq = await log.append(event, seq)
    return settings, store, log


async def test_the_finalizer_completes_on_the_in_memory_log_and_dates_expiry_by_the_step_clock(tmp_path) -> None:
    """The whole finalize step without a server: the filesystem store (the zero-setup adapter), the
    in-memory log, and a clock that stands still — the expiry is that clock's now + the TTL."""
    from services.finalizer.service import Finalizer
    from shared.ports import FixedClock

    settings, store, log = await _one_part_assembled(tmp_path, logged_size=10)
    bucket = settings.buckets.exports
    at = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    ctx = StepContext(log, await log.load("t1", "exp_1"), settings, clock=FixedClock(at))
    await Finalizer(settings, store)(ctx)
    completed = ctx.state.completed
    assert completed is not None and ctx.state.status == "complete"
    assert completed.expires_at == at + timedelta(days=settings.archive_ttl_days)
    assert await store.read(bucket, ZIP) == b"0123456789"


async def test_the_finalizer_refuses_a_completed_archive_whose_size_is_not_the_logged_one(tmp_path) -> None:
    """The object the completion made must be as long as ArchiveAssembled says; otherwise no
    ExportCompleted (the person would get a link to an archive that is not the assembled one). The
    upload is spent: the step fails at once. The object is left at the key (it may be a newer
    archive a retry put there while this finalizer stalled; a retry's upload replaces it)."""
    from services.finalizer.service import Finalizer
    from shared.core.reasons import is_permanent

    settings, store, log = await _one_part_assembled(tmp_path, logged_size=11)
    ctx = StepContext(log, await log.load("t1", "exp_1"), settings)
    with pytest.raises(StepError, match=r"not the one assembled \(it is 10 bytes, 11 were written\)") as e:
        await Finalizer(settings, store)(ctx)
    assert is_permanent(e.value)
    assert (await store.head(settings.buckets.exports, ZIP)).size == 10
    state = (await log.load("t1", "exp_1")).state
    assert state.completed is None and state.status == "uploading"


@pytest.mark.parametrize(("beat", "last_seq", "deaths"), [
    ({"step": "assemble", **W, "deaths": 3, "since": 7}, 7, 4),  # the log did not move: a crash loop
    ({"step": "assemble", **W, "deaths": 3, "since": 7}, 9, 1),  # it moved after that run started: progress
    ({"step": "assemble", **W, "deaths": 3}, 9, 4),  # a beat that does not say: counted as before
    ({"step": "assemble", **W, "deaths": 3, "since": True}, 9, 4),
])
def test_a_death_after_progress_starts_a_new_row(beat: dict[str, Any], last_seq: int, deaths: int) -> None:
    assert deaths_before(beat, last_seq) == deaths
