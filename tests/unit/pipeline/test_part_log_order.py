"""Parts upload up to N at once but are logged strictly in order: a part whose upload finishes
first still waits for every earlier part's PartUploaded (a later part logged first would be voided
by the earlier one's event in the fold, and the archive's parts would not be contiguous).
On the in-memory event log; no server."""

from __future__ import annotations

import asyncio

import pytest

from services.assembler.uploader import BufferPool, PartUploader
from shared.core import events as ev
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext
from tests.unit.test_state_fold import CATALOGED, UPLOAD, requested


class _OutOfOrderStore:
    """Part 1's upload finishes only after part 3's has: the uploads end in the order 2, 3, 1."""

    def __init__(self) -> None:
        self.finished: list[int] = []
        self.last_done = asyncio.Event()

    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, data: object) -> str:
        if number == 1:
            await asyncio.wait_for(self.last_done.wait(), 5)  # loud if part 3 never finishes
        self.finished.append(number)
        if number == 3:
            self.last_done.set()
        return f"e{number}"

    async def put(self, bucket: str, key: str, body: bytes, content_type: str) -> str:
        return "r"


async def test_parts_that_finish_uploading_out_of_order_are_logged_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BufferPool, "_free", {})  # not the shared pool
    log = InMemoryEventLog(producer="assembler")
    seq = 0
    for event in (requested(), CATALOGED, UPLOAD):
        seq = await log.append(event, seq)
    ctx = StepContext(log, await log.load("t1", "exp_1"), Settings())
    store = _OutOfOrderStore()
    uploader = PartUploader(ctx, store, "b", UPLOAD, 1, 0, 3)  # type: ignore[arg-type]
    for n in (1, 2, 3):
        buf = uploader.pool.take()
        await uploader.submit(buf, 10, [], (n, n * 10))
    assert await asyncio.wait_for(uploader.finish(), 10) == (30, 3)

    assert store.finished == [2, 3, 1]  # the uploads did end out of order
    logged = [e.part_number async for _, e in log.history("t1", "exp_1") if isinstance(e, ev.PartUploaded)]
    assert logged == [1, 2, 3]
    state = (await log.load("t1", "exp_1")).state
    assert [p.number for p in state.parts] == [1, 2, 3] and state.archive_bytes_uploaded == 30


class _StoreWithAVisitor(_OutOfOrderStore):
    """Uploads in order; while part 2 uploads, the gateway's user appends a second ExportRequested to
    the export (the fold ignores it; its sequence moves the fence all the same)."""

    def __init__(self, log: InMemoryEventLog) -> None:
        super().__init__()
        self.log = log

    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, data: object) -> str:
        if number == 2:
            await self.log.append(requested(event_id="f" * 32, mode="storage"),
                                  await self.log.last_seq("t1", "exp_1"))
        return f"e{number}"


async def test_an_event_the_fold_ignores_does_not_make_the_assembler_stand_down(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the part logged after it lost the fence and the attempt stood down (StandDown: no ack,
    the message back only after AckWait, the straddling member encoded again)."""
    monkeypatch.setattr(BufferPool, "_free", {})
    log = InMemoryEventLog(producer="assembler")
    seq = 0
    for event in (requested(), CATALOGED, UPLOAD):
        seq = await log.append(event, seq)
    ctx = StepContext(log, await log.load("t1", "exp_1"), Settings())
    uploader = PartUploader(ctx, _StoreWithAVisitor(log), "b", UPLOAD, 1, 0, 1)  # type: ignore[arg-type]
    for n in (1, 2, 3):
        await uploader.submit(uploader.pool.take(), 10, [], (n, n * 10))
    assert await asyncio.wait_for(uploader.finish(), 10) == (30, 3)
    state = (await log.load("t1", "exp_1")).state
    assert [p.number for p in state.parts] == [1, 2, 3]
    assert state.request is not None and state.request.mode == "blog"
