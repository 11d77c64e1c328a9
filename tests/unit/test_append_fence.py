"""One rule for every writer of the log (shared/eventlog/fence.py): a fenced append that lost only to
messages which moved nothing — an event the fold ignores, stored by anyone who may publish on the
export's subjects — goes in after them; one that lost to a real event is a Conflict. On the in-memory
twin (the JetStream case, with garbage the readers drop, is tests/integration/test_fence_and_foreign_messages.py)."""

from __future__ import annotations

import pytest

from shared.cancel import request_cancel
from shared.core import events as ev
from shared.eventlog.fence import append_folded
from shared.eventlog.jetstream import Conflict
from shared.eventlog.memory import InMemoryEventLog
from tests.unit.test_state_fold import E, requested


class Interloper(InMemoryEventLog):
    """Stores ``foreign`` on the export just before the first append a writer makes (as if it had
    been published while that writer decided)."""

    def __init__(self, foreign: ev.Event) -> None:
        super().__init__()
        self.foreign: ev.Event | None = foreign

    async def append(self, event: ev.Event, expected_seq: int, msg_id: str | None = None) -> int:
        foreign, self.foreign = self.foreign, None
        if foreign is not None:
            await super().append(foreign, await self.last_seq(foreign.tenant_id, foreign.export_id))
        return await super().append(event, expected_seq, msg_id)


SECOND_REQUEST = requested().model_copy(update={"event_id": "f" * 32, "user_email": "other@example.org"})


async def _log(foreign: ev.Event) -> Interloper:
    log = Interloper(foreign)
    log.foreign = None  # the first request goes in as it is
    await log.append(requested(), 0)
    log.foreign = foreign
    return log


async def test_an_append_goes_in_after_an_event_the_fold_ignores() -> None:
    log = await _log(SECOND_REQUEST)
    loaded = await log.load(E["tenant_id"], E["export_id"])
    after = await append_folded(log, ev.CatalogStarted(**E), loaded)
    assert after.last_seq == 3 == await log.last_seq(E["tenant_id"], E["export_id"])
    assert after.state.status == "cataloging"
    assert after.state.request is not None and after.state.request.user_email == requested().user_email
    assert after.state == (await log.load(E["tenant_id"], E["export_id"])).state


async def test_an_append_after_an_event_that_moved_the_export_is_a_conflict() -> None:
    log = await _log(ev.CancelRequested(**E, requested_by="u1"))
    loaded = await log.load(E["tenant_id"], E["export_id"])
    with pytest.raises(Conflict):
        await append_folded(log, ev.CatalogStarted(**E), loaded)
    assert [e.name() async for _, e in log.history(E["tenant_id"], E["export_id"])] == [
        "ExportRequested", "CancelRequested"]


async def test_a_cancel_is_not_lost_to_an_event_the_fold_ignores() -> None:
    """The gateway's cancel (and the operator's) had one re-read per such event: a steady stream of
    them made it a 503 (CancelContended) — here one round is enough."""
    log = await _log(SECOND_REQUEST)
    seq = await request_cancel(log, E["tenant_id"], E["export_id"], "u1", rounds=1)
    assert seq == 3
    assert (await log.load(E["tenant_id"], E["export_id"])).state.cancel_requested


class LostReply(InMemoryEventLog):
    """Stores an append, then answers Conflict, the first ``times`` times (a publish whose reply was
    lost and was sent again: the retry meets its own message already in)."""

    def __init__(self, times: int = 1) -> None:
        super().__init__()
        self.times = times

    async def append(self, event: ev.Event, expected_seq: int, msg_id: str | None = None) -> int:
        seq = await super().append(event, expected_seq, msg_id)
        if self.times and not isinstance(event, ev.ExportRequested):
            self.times -= 1
            raise Conflict(f"{event.export_id}: log moved past {expected_seq}")
        return seq


async def test_an_event_already_in_is_not_appended_again() -> None:
    """Only messages that are not this very event may be stepped over: an operator's note (it moves
    no fold) whose first append went in is a Conflict for the writer to re-read, never a second copy."""
    log = LostReply()
    await log.append(requested(), 0)
    loaded = await log.load(E["tenant_id"], E["export_id"])
    with pytest.raises(Conflict):
        await append_folded(log, ev.AdmissionUnlocked(**E, operator="ada", reason="x"), loaded)
    assert [e.name() async for _, e in log.history(E["tenant_id"], E["export_id"])] == [
        "ExportRequested", "AdmissionUnlocked"]


async def test_a_stream_of_events_the_fold_ignores_ends_in_a_conflict_after_the_last_round() -> None:
    """Bounded: one ignored event before every try, ROUNDS tries, then Conflict (the caller's to count
    or re-decide), not an endless loop nor another error."""
    from shared.eventlog.fence import ROUNDS

    class Flood(InMemoryEventLog):
        tries = 0

        async def append(self, event: ev.Event, expected_seq: int, msg_id: str | None = None) -> int:
            if not isinstance(event, ev.ExportRequested):
                self.tries += 1
                ignored = SECOND_REQUEST.model_copy(update={"event_id": f"{self.tries:032x}"})
                await super().append(ignored, await self.last_seq(E["tenant_id"], E["export_id"]))
            return await super().append(event, expected_seq, msg_id)

    log = Flood()
    await log.append(requested(), 0)
    loaded = await log.load(E["tenant_id"], E["export_id"])
    with pytest.raises(Conflict):
        await append_folded(log, ev.CatalogStarted(**E), loaded)
    assert log.tries == ROUNDS
    assert "CatalogStarted" not in [e.name() async for _, e in log.history(E["tenant_id"], E["export_id"])]


async def test_a_cancel_that_lost_to_a_moving_export_reads_again_and_goes_in() -> None:
    """A step's event logged while the cancel decided moves the export: a Conflict for the fenced
    append, so the cancel reads the log again and appends after it (the gateway's cancel catches
    only the CancelError family: a Conflict out of request_cancel would be a 500)."""
    log = Interloper(ev.CatalogStarted(**E))
    log.foreign = None
    await log.append(requested(), 0)
    log.foreign = ev.CatalogStarted(**E)
    seq = await request_cancel(log, E["tenant_id"], E["export_id"], "u1")
    assert seq == 3
    assert [e.name() async for _, e in log.history(E["tenant_id"], E["export_id"])] == [
        "ExportRequested", "CatalogStarted", "CancelRequested"]


async def test_an_erased_log_with_a_message_stored_after_the_erasure_is_no_log_that_moved_nothing() -> None:
    """erase-tenant deletes an export's events while a writer is paused; a message stored on the
    export's subjects after that (here one the writer's fold ignores: a second request) left the
    log's last sequence above the writer's fold, the messages after the fold read as 'moved
    nothing', and the writer appended into the erased export (the review of 736f3a8)."""
    log = InMemoryEventLog()
    await log.append(requested(), 0)
    loaded = await log.load(E["tenant_id"], E["export_id"])
    log.messages = [("erased", e) for _, e in log.messages]  # message deletes: the sequences stay taken
    await log.append(SECOND_REQUEST, 0)
    with pytest.raises(Conflict):
        await append_folded(log, ev.CatalogStarted(**E), loaded)
    assert [e.name() async for _, e in log.history(E["tenant_id"], E["export_id"])] == ["ExportRequested"]

