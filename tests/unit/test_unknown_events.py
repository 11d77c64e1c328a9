"""Every consumer tolerates an event type it does not know: it skips it, logs it, counts it, and
never crashes or retries it — step workers, the projector, admission, the janitor, the fold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from services.gateway.admission_kv import AdmissionStore
from services.gateway.projector import Projector
from services.gateway.readmodel import ReadModel
from services.janitor.alive import check_alive
from services.janitor.run import Janitor
from services.janitor.summary import Summary
from shared.core import events as ev
from shared.core.lifecycle import step_running_after
from shared.eventlog.directget import Stored
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime import metrics
from shared.runtime.settings import Settings
from shared.runtime.worker import StepWorker
from tests.unit.test_state_fold import CATALOGED, E, requested

FUTURE = json.dumps({"type": "FutureEvent", "schema_version": 9, **E, "shiny": True}).encode()
SUBJECT = "exports.t1.exp_1.FutureEvent"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rejected(consumer: str) -> float:
    return metrics.EVENTS_REJECTED.labels(consumer, "unknown")._value.get()


class Msg:
    subject = SUBJECT
    data = FUTURE
    headers = None

    def __init__(self) -> None:
        self.acked = self.naked = 0

    async def ack(self) -> None:
        self.acked += 1

    async def nak(self, delay: float | None = None) -> None:
        self.naked += 1


async def test_a_step_worker_acks_counts_and_skips_an_unknown_type(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[object] = []

    async def work(ctx: object) -> None:
        ran.append(ctx)

    bus = SimpleNamespace(log=InMemoryEventLog())
    worker = StepWorker("assemble", bus, Settings(), work, lambda loaded: True)  # type: ignore[arg-type]
    before, msg = rejected("assemble"), Msg()
    await worker.handle(msg)  # type: ignore[arg-type]
    assert (msg.acked, msg.naked, ran, worker.running) == (1, 0, [], {})
    assert rejected("assemble") == before + 1
    assert "FutureEvent" in caplog.text


def test_the_lifecycle_decides_nothing_from_an_unknown_type() -> None:
    assert not step_running_after("FutureEvent")
    with pytest.raises(ev.UnknownEvent):
        ev.decode("exports", SUBJECT, FUTURE)


async def test_the_projector_moves_past_an_unknown_type_and_keeps_projecting() -> None:
    log = InMemoryEventLog()
    model = await ReadModel.open(":memory:")
    try:
        projector = Projector(SimpleNamespace(log=log), model)  # type: ignore[arg-type]
        before = rejected("read-model")
        await projector.apply(Stored(1, "exports.t1.exp_1.ExportRequested", requested().to_json()))
        await projector.apply(Stored(2, SUBJECT, FUTURE))
        assert model.position == 2 and rejected("read-model") == before + 1
        await projector.apply(Stored(3, "exports.t1.exp_1.ExportCataloged", CATALOGED.to_json()))
        row = await model.get("t1", "exp_1")
        assert row is not None and (row.status, row.events, row.last_seq, model.position) == ("assembling", 2, 3, 3)
    finally:
        await model.close()


async def folded_log() -> InMemoryEventLog:
    log = InMemoryEventLog()
    seq = 0
    for event in (requested(), ev.CatalogStarted(**E), CATALOGED):
        seq = await log.append(event, seq)
    return log


async def test_admission_folds_the_log_when_the_last_event_is_unknown() -> None:
    log = await folded_log()

    async def get_last_msg(stream: str, subject: str, direct: bool = False) -> object:
        return SimpleNamespace(subject=SUBJECT, time=NOW)

    store = AdmissionStore.__new__(AdmissionStore)
    store.bus = SimpleNamespace(log=log, js=SimpleNamespace(get_last_msg=get_last_msg))  # type: ignore[assignment]
    store.settings = Settings()
    assert await store.active_status("t1", "exp_1") == "assembling"


async def test_the_janitor_judges_a_dead_step_by_the_last_event_it_knows() -> None:
    """CatalogStarted, then an unknown type, then silence and no heartbeat: the catalog died."""
    log = InMemoryEventLog()
    seq = 0
    for event in (requested(), ev.CatalogStarted(**E)):
        seq = await log.append(event, seq)

    async def get_last_msg(stream: str, subject: str, direct: bool = False) -> object:
        if stream.startswith("KV_"):  # no heartbeat key
            from nats.js.errors import NotFoundError

            raise NotFoundError
        return SimpleNamespace(subject=SUBJECT, time=NOW - timedelta(hours=1), headers={},
                               data=json.dumps({**E, "type": "FutureEvent"}).encode())

    bus = SimpleNamespace(log=log, js=SimpleNamespace(get_last_msg=get_last_msg))
    summary = Summary()
    await check_alive(Janitor(Settings(), bus, None), await log.load("t1", "exp_1"), NOW, summary)  # type: ignore[arg-type]
    assert summary.failed == 1 and isinstance(log.messages[-1][1], ev.ExportFailed)
