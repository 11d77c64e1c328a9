"""Loops that run out of tries say so: the canceller's rounds, the abort that never empties the
upload, and a heartbeat the janitor could not read — on the in-memory log, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from nats.js.errors import KeyNotFoundError

from services.canceller import service as canceller
from services.canceller.service import Canceller
from services.janitor.alive import check_alive
from services.janitor.decide import is_abandoned_cancel, is_dead
from services.janitor.run import Janitor
from services.janitor.summary import Summary
from shared.core import events as ev
from shared.core.lifecycle import fold
from shared.eventlog.memory import InMemoryEventLog
from shared.objectstore import NoSuchUpload
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepError
from tests.unit.test_state_fold import CATALOGED, UPLOAD, E, part, requested

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Store:
    """Just what the canceller calls; ``parts_left`` is what list_parts keeps answering."""

    def __init__(self, parts_left: bool) -> None:
        self.parts_left = parts_left
        self.aborts = 0

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        self.aborts += 1

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[object]:
        if self.parts_left:
            return [SimpleNamespace(number=1)]
        raise NoSuchUpload(upload_id)

    async def list_keys(self, bucket: str, prefix: str) -> list[object]:
        return []


async def cancelling(log: InMemoryEventLog, *failed_attempts: int) -> StepContext:
    seq = 0
    for event in (requested(), CATALOGED, UPLOAD, part(1, 500, 10), ev.CancelRequested(**E, requested_by="u"),
                  *(ev.StepFailed(**E, step="cancel", attempt=n, reason="x") for n in failed_attempts)):
        seq = await log.append(event, seq)
    return StepContext(log, await log.load("t1", "exp_1"), Settings())


def cancelled(log: InMemoryEventLog) -> list[ev.ExportCancelled]:
    return [e for _, e in log.messages if isinstance(e, ev.ExportCancelled)]


class MovingLog(InMemoryEventLog):
    """An assembler logs a part just before every ExportCancelled: each fenced try loses."""

    async def append(self, event: ev.Event, expected_seq: int, msg_id: str | None = None) -> int:
        if isinstance(event, ev.ExportCancelled):
            n = len(self.messages) + 2
            await super().append(part(n, 500, n * 10), await self.last_seq(event.tenant_id, event.export_id))
        return await super().append(event, expected_seq, msg_id)


async def test_cancel_rounds_that_all_lose_raise_a_step_error_instead_of_returning() -> None:
    log = MovingLog(producer="canceller")
    ctx = await cancelling(log)
    with pytest.raises(StepError, match="kept changing"):
        await Canceller(Settings(), Store(parts_left=False))(ctx)  # type: ignore[arg-type]
    assert cancelled(log) == []
    assert sum(isinstance(e, ev.PartUploaded) for _, e in log.messages) == canceller.ROUNDS + 1


async def test_an_upload_that_never_empties_is_a_retried_failure_and_never_aborted_upload_true(monkeypatch) -> None:
    monkeypatch.setattr(canceller, "ABORT_TRIES", 3)
    monkeypatch.setattr(canceller, "ABORT_DELAY_S", 0.0)
    store = Store(parts_left=True)
    log = InMemoryEventLog(producer="canceller")
    with pytest.raises(StepError, match="partial upload"):
        await Canceller(Settings(), store)(await cancelling(log))  # type: ignore[arg-type]
    assert store.aborts == 3 and cancelled(log) == []

    last = InMemoryEventLog(producer="canceller")  # the last allowed attempt: cancelled, and says what happened
    await Canceller(Settings(), store)(await cancelling(last, 1, 2, 3))  # type: ignore[arg-type]
    assert [e.aborted_upload for e in cancelled(last)] == [False]


async def test_an_upload_the_store_really_emptied_is_reported_aborted() -> None:
    log = InMemoryEventLog(producer="canceller")
    await Canceller(Settings(), Store(parts_left=False))(await cancelling(log))  # type: ignore[arg-type]
    assert [e.aborted_upload for e in cancelled(log)] == [True]


def test_an_unreadable_heartbeat_is_neither_dead_nor_an_abandoned_cancel() -> None:
    running = fold([requested(), ev.CatalogStarted(**E)])
    late = NOW - timedelta(minutes=10)
    assert is_dead(running, "CatalogStarted", late, False, 60, NOW)  # missing: dead
    assert not is_dead(running, "CatalogStarted", late, None, 60, NOW)  # unknown: not dead
    stopping = fold([requested(), ev.CancelRequested(**E, requested_by="u")])
    assert is_abandoned_cancel(stopping, late, False, 60, NOW)
    assert not is_abandoned_cancel(stopping, late, None, 60, NOW)


@pytest.mark.parametrize(("error", "fails"), [(KeyNotFoundError(), True), (TimeoutError(), False),
                                              (ConnectionError("kv"), False)])
async def test_the_janitor_fails_an_export_only_when_its_heartbeat_is_known_to_be_gone(error, fails) -> None:
    log = InMemoryEventLog(producer="janitor")
    seq = 0
    for event in (requested(), ev.CatalogStarted(**E)):
        seq = await log.append(event, seq)

    async def get_last_msg(stream: str, subject: str, direct: bool = False) -> object:
        if stream.startswith("KV_"):  # the heartbeat's read
            raise error
        return SimpleNamespace(subject="exports.t1.exp_1.CatalogStarted", time=NOW - timedelta(hours=1),
                               data=ev.CatalogStarted(**E).to_json(), headers={}, seq=2)

    bus = SimpleNamespace(log=log, js=SimpleNamespace(get_last_msg=get_last_msg))
    summary = Summary()
    await check_alive(Janitor(Settings(), bus, Store(parts_left=False)),  # type: ignore[arg-type]
                      await log.load("t1", "exp_1"), NOW, summary)
    assert summary.failed == int(fails)
    assert [type(e).__name__ for _, e in log.messages][-1] == ("ExportFailedByJanitor" if fails else "CatalogStarted")


async def test_a_store_that_refuses_the_abort_cancels_at_once_without_retrying() -> None:
    """A refusal (a 405 from a store without the call, a policy without s3:AbortMultipartUpload) will
    not change by retrying: the first attempt records the export cancelled with aborted_upload=False
    (the janitor's sweep keeps trying) instead of holding the tenant through every retry."""
    from shared.objectstore import StoreRefused

    class Refuses(Store):
        async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
            self.aborts += 1
            raise StoreRefused("the storage service does not implement this operation")

    store = Refuses(parts_left=True)
    log = InMemoryEventLog(producer="canceller")
    await Canceller(Settings(), store)(await cancelling(log))  # type: ignore[arg-type]  # first attempt
    assert store.aborts == 1 and [e.aborted_upload for e in cancelled(log)] == [False]


async def test_a_cancel_whose_rounds_keep_losing_is_retried_and_never_fails_the_export() -> None:
    """"A cancel always ends cancelled": the canceller may append only ExportCancelled and StepFailed
    (the step table; NATS refuses it anything else). The worker gave up the cancel step like any
    other after its last attempt and appended ExportFailed(step=cancel) — refused on a secured bus
    (no PubAck: ~36 s of retried publishes per delivery, then a nak, for ever), and elsewhere the
    cancelled export ended 'failed' and its person was sent the failure email. A log that keeps
    moving (another user appending to the export) makes each attempt lose its rounds."""
    import asyncio

    from shared.bus.connect import Bus
    from shared.core import steps
    from shared.runtime.worker import StepWorker
    from tests.unit.test_worker_keepalive import Beats, FakeMsg

    log = MovingLog(producer="canceller")
    await cancelling(log)
    settings = Settings(progress_interval_s=60.0, ack_wait_s=120.0, retry_base_delay_s=0.0)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]
    worker = StepWorker("cancel", bus, settings, Canceller(settings, Store(parts_left=False)),  # type: ignore[arg-type]
                        canceller.should_run)
    trigger = ev.CancelRequested(**E, requested_by="u").to_json()
    before = len(log.messages)
    for _ in range(settings.step_attempts + 2):
        msg = FakeMsg("exports.t1.exp_1.CancelRequested", trigger)
        await worker.handle(msg)  # type: ignore[arg-type]
        await asyncio.gather(*worker.running.values())
        assert msg.calls[-1] == "nak", msg.calls  # retried later, as every attempt before it
    written = {e.name() for _, e in log.messages[before:] if not isinstance(e, ev.PartUploaded)}  # the canceller's
    assert written <= set(steps.appends_of("canceller")), written
    state = (await log.load("t1", "exp_1")).state
    assert state.status != "failed" and state.cancel_wins


class OtherReplicaFirst(InMemoryEventLog):
    """Another canceller replica's ExportCancelled lands just before this one's first try."""

    async def append(self, event: ev.Event, expected_seq: int, msg_id: str | None = None) -> int:
        if isinstance(event, ev.ExportCancelled) and not cancelled(self):
            other = ev.ExportCancelled(**E, aborted_upload=True)
            await super().append(other, await self.last_seq(event.tenant_id, event.export_id), msg_id)
        return await super().append(event, expected_seq, msg_id)


async def test_a_cancel_another_replica_finished_meanwhile_stands_down_quietly() -> None:
    """The fenced ExportCancelled loses to the other replica's: re-read, nothing left to do — no
    second abort, no second ExportCancelled, no StepError counted against the export."""
    log = OtherReplicaFirst(producer="canceller")
    store = Store(parts_left=False)
    await Canceller(Settings(), store)(await cancelling(log))  # type: ignore[arg-type]
    assert len(cancelled(log)) == 1 and cancelled(log)[0].aborted_upload
    assert store.aborts == 1
    assert (await log.load("t1", "exp_1")).state.status == "cancelled"
