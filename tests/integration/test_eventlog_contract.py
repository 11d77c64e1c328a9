"""One contract, two event logs: the JetStream log (a real nats-server) and its in-memory twin.

Step decisions are unit-tested on the twin; this is what makes those tests mean something for
the real log: fencing, dedupe of a retried append, per-export order and reads, the fold.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator

import pytest

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.eventlog.jetstream import Conflict, EventLogError, LogUnavailable
from shared.eventlog.memory import InMemoryEventLog
from shared.ports import EventLogPort


@pytest.fixture(params=["jetstream", "memory"])
async def log(request: pytest.FixtureRequest, bus: Bus) -> AsyncIterator[EventLogPort]:
    yield InMemoryEventLog(producer="test") if request.param == "memory" else bus.log


def _ids() -> tuple[str, str]:
    return f"t_{uuid.uuid4().hex[:8]}", ev.new_export_id()


def _requested(tenant: str, export_id: str) -> ev.ExportRequested:
    return ev.ExportRequested(export_id=export_id, tenant_id=tenant, user_id="u", user_email="a@b.c",
                              username="autumn")


async def test_appends_are_fenced_by_the_exports_last_sequence(log: EventLogPort) -> None:
    tenant, export_id = _ids()
    first = await log.append(_requested(tenant, export_id), 0)
    with pytest.raises(Conflict):  # a second "first event" of the same export
        await log.append(_requested(tenant, export_id), 0, msg_id=f"{export_id}:again")
    second = await log.append(ev.CatalogStarted(export_id=export_id, tenant_id=tenant), first)
    assert second > first
    with pytest.raises(Conflict):  # a writer that folded before `second`
        await log.append(ev.CatalogStarted(export_id=export_id, tenant_id=tenant), first, msg_id="stale")
    assert await log.last_seq(tenant, export_id) == second


async def test_other_exports_do_not_move_an_exports_fence(log: EventLogPort) -> None:
    tenant, a = _ids()
    b = ev.new_export_id()
    seq_a = await log.append(_requested(tenant, a), 0)
    await log.append(_requested(tenant, b), 0)
    await log.append(_requested("other_tenant", a), 0)  # same export id, another tenant: another history
    assert await log.append(ev.CatalogStarted(export_id=a, tenant_id=tenant), seq_a) > seq_a


async def test_a_retried_append_that_had_landed_is_a_conflict_not_a_second_event(log: EventLogPort) -> None:
    """The fence is checked before the message id: a publisher whose PubAck was lost re-reads."""
    tenant, export_id = _ids()
    event = _requested(tenant, export_id)
    await log.append(event, 0, msg_id=f"{export_id}:ExportRequested")
    with pytest.raises(Conflict):
        await log.append(event, 0, msg_id=f"{export_id}:ExportRequested")
    assert [e.event_id async for _, e in log.history(tenant, export_id)] == [event.event_id]


async def test_the_same_event_at_a_later_position_is_a_new_append(log: EventLogPort) -> None:
    tenant, export_id = _ids()
    s1 = await log.append(_requested(tenant, export_id), 0)
    s2 = await log.append(ev.StepFailed(export_id=export_id, tenant_id=tenant, step="catalog", attempt=1,
                                        reason="x"), s1, msg_id="same")
    s3 = await log.append(ev.StepFailed(export_id=export_id, tenant_id=tenant, step="catalog", attempt=1,
                                        reason="x"), s2, msg_id="same")
    assert s1 < s2 < s3


async def test_history_is_the_exports_events_in_order_and_load_folds_them(log: EventLogPort) -> None:
    tenant, export_id = _ids()
    assert await log.last_seq(tenant, export_id) == 0
    assert [x async for x in log.history(tenant, export_id)] == []
    empty = await log.load(tenant, export_id)
    assert (empty.state.exists, empty.last_seq) == (False, 0)
    seq = await log.append(_requested(tenant, export_id), 0)
    seq = await log.append(ev.CatalogStarted(export_id=export_id, tenant_id=tenant), seq)
    seq = await log.append(ev.CancelRequested(export_id=export_id, tenant_id=tenant, requested_by="u"), seq)
    got = [(s, e.name()) async for s, e in log.history(tenant, export_id)]
    assert [n for _, n in got] == ["ExportRequested", "CatalogStarted", "CancelRequested"]
    assert [s for s, _ in got] == sorted(s for s, _ in got) and got[-1][0] == seq
    loaded = await log.load(tenant, export_id)
    assert loaded.last_seq == seq
    assert (loaded.state.status, loaded.state.cancel_requested, loaded.state.events) == ("cataloging", True, 3)


async def test_load_folds_every_event_when_a_type_repeats(log: EventLogPort) -> None:
    """The JetStream log reads one message per subject from the stream's index when that is the
    whole history; a repeated event type (retries, parts) must still be folded once per event."""
    tenant, export_id = _ids()
    other = ev.new_export_id()
    seq = await log.append(_requested(tenant, export_id), 0)
    other_seq = await log.append(_requested(tenant, other), 0)
    for attempt in (1, 2):
        seq = await log.append(ev.StepFailed(export_id=export_id, tenant_id=tenant, step="catalog",
                                             attempt=attempt, reason="x"), seq)
        other_seq = await log.append(ev.CatalogStarted(export_id=other, tenant_id=tenant), other_seq,
                                     msg_id=f"other{attempt}")
    seq = await log.append(ev.CatalogStarted(export_id=export_id, tenant_id=tenant), seq)
    loaded = await log.load(tenant, export_id)
    assert (loaded.last_seq, loaded.state.events, loaded.state.attempts_of("catalog")) == (seq, 4, 2)
    assert (await log.load(tenant, other)).state.events == 3


async def test_appends_are_stamped_with_producer_and_worker_unless_given(log: EventLogPort) -> None:
    tenant, export_id = _ids()
    await log.append(_requested(tenant, export_id).model_copy(update={"producer": "my-gateway"}), 0)
    [(_, event)] = [x async for x in log.history(tenant, export_id)]
    assert event.producer == "my-gateway"
    assert event.worker.rsplit("-", 1)[1].isdigit()


async def test_an_event_over_256_kib_is_refused(log: EventLogPort) -> None:
    tenant, export_id = _ids()
    huge = ev.ExportFailed(export_id=export_id, tenant_id=tenant, step="catalog", reason="x" * 300_000)
    with pytest.raises(EventLogError):
        await log.append(huge, 0)
    assert await log.last_seq(tenant, export_id) == 0


async def test_the_index_read_and_the_walk_fold_the_same_history(bus: Bus) -> None:
    """A stream of several replicas is read by walking (its replicas may lag one another); one
    replica reads the per-subject index. Both give the same fold and the same fence."""
    from shared.eventlog.jetstream import EventLog

    walk = EventLog(bus.js, bus.log.stream, bus.log.prefix, "test", indexed_reads=False)
    assert bus.log.indexed_reads and not walk.indexed_reads
    tenant, export_id = _ids()
    seq = await bus.log.append(_requested(tenant, export_id), 0)
    seq = await bus.log.append(ev.CatalogStarted(export_id=export_id, tenant_id=tenant), seq)
    for _ in range(3):  # every subject once (twice), then a subject twice
        a, b = await bus.log.load(tenant, export_id), await walk.load(tenant, export_id)
        assert (a.last_seq, a.state.events, a.state.status) == (b.last_seq, b.state.events, b.state.status)
        assert a.last_seq == seq
        seq = await bus.log.append(ev.StepFailed(export_id=export_id, tenant_id=tenant, step="catalog",
                                                 attempt=1, reason="x"), seq, msg_id=f"f{seq}")
    assert (await walk.load(tenant, "exp_none")).last_seq == 0


async def test_loading_a_long_history_of_big_events_holds_one_batch_not_the_whole_history(bus: Bus) -> None:
    """Any service user may append its own events to any export, each up to 256 KiB (a step a
    StepFailed with a long reason, the notifier a NotificationFailed): load() and history() read every
    stored body of the export into one list and decoded them all before folding, so each read of
    such an export — every step's, the janitor's every run, the gateway's — held the whole history
    twice over. The fold keeps only the latest of each; a read now holds one batch at a time."""
    import tracemalloc

    tenant, export_id = _ids()
    seq = await bus.log.append(_requested(tenant, export_id), 0)
    reason = "r" * 200_000
    for n in range(150):  # 30 MB of bodies
        seq = await bus.log.append(ev.StepFailed(export_id=export_id, tenant_id=tenant, step="catalog", attempt=1,
                                                 reason=f"{n} {reason}"), seq, msg_id=f"n{n}")
    tracemalloc.start()
    try:
        loaded = await bus.log.load(tenant, export_id)
        _, load_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = 0
        async for _, _event in bus.log.history(tenant, export_id):
            read += 1
        _, history_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (loaded.state.events, loaded.last_seq, read) == (151, seq, 151)
    assert loaded.state.last_step_error == f"149 {reason}"
    assert load_peak < 16_000_000, f"load held {load_peak / 1e6:.0f} MB"
    assert history_peak < 16_000_000, f"history held {history_peak / 1e6:.0f} MB"


async def test_many_subjects_of_big_messages_on_one_export_are_read_a_batch_at_a_time(bus: Bus) -> None:
    """Any user can have the server store a message of its choosing (up to 256 KiB) on any subject of
    an export (a direct get's copy aimed there: shared/bus/answers.py), a new subject each time. The
    indexed read asked for the last message of every subject of the export in one answer with no
    byte limit, and held it whole: 100 such subjects of 200 KB, 20 MB for every read of the export."""
    import tracemalloc

    assert bus.log.indexed_reads
    tenant, export_id = _ids()
    seq = await bus.log.append(_requested(tenant, export_id), 0)
    junk = b"j" * 200_000
    for n in range(100):  # on this unsecured server a plain publish lands them as such a copy would
        await bus.js.publish(f"{bus.log.prefix}.{tenant}.{export_id}.Junk{n}", junk)
    tracemalloc.start()
    try:
        loaded = await bus.log.load(tenant, export_id)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.state.exists and loaded.state.events == 1
    assert loaded.last_seq == await bus.log.last_seq(tenant, export_id) > seq
    assert peak < 12_000_000, f"load held {peak / 1e6:.0f} MB"


async def test_a_dropped_message_is_logged_with_its_subjects_control_characters_escaped(
        bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    """A subject may hold any character but a space, a dot or a wildcard, and any user can have a
    message stored on one of an export's (a direct get's copy aimed there): the line each reader logs
    when it drops it named the subject as is — an escape sequence repainted the operator's terminal,
    a bidi control reordered the line (JSON logs escape neither U+202E nor C1 controls)."""
    tenant, export_id = _ids()
    seq = await bus.log.append(_requested(tenant, export_id), 0)
    for token in ("Evil\x1b[2J", "Junk\u202eenon", "Bad\x85x"):
        await bus.js.publish(f"{bus.log.prefix}.{tenant}.{export_id}.{token}", b"{}")
    with caplog.at_level("WARNING"):
        loaded = await bus.log.load(tenant, export_id)
    assert loaded.state.exists and loaded.last_seq > seq
    lines = [r.getMessage() for r in caplog.records if "drops" in r.getMessage()]
    assert len(lines) == 3, lines
    for line in lines:
        assert not set(line) & {"\x1b", "\u202e", "\x85"}, line
    assert any("Evil\\x1b[2J" in line for line in lines), lines


async def test_the_leaders_read_folds_the_same_history_as_the_direct_read(bus: Bus) -> None:
    """The look that decides a deletion reads the export at the stream's leader (``STREAM.MSG.GET``, a
    message at a time): the same fold, the same fence — messages it drops included — as the direct read."""
    tenant, export_id = _ids()
    seq = await bus.log.append(_requested(tenant, export_id), 0)
    seq = await bus.log.append(ev.CatalogStarted(export_id=export_id, tenant_id=tenant), seq)
    await bus.js.publish(f"{bus.log.prefix}.{tenant}.{export_id}.Junk", b"not an event")  # dropped, counted
    await bus.log.append(_requested(tenant, ev.new_export_id()), 0)  # another export's, in between
    seq = await bus.log.append(ev.StepFailed(export_id=export_id, tenant_id=tenant, step="catalog", attempt=1,
                                             reason="x"), await bus.log.last_seq(tenant, export_id))
    direct, leader = await bus.log.load(tenant, export_id), await bus.log.load(tenant, export_id, at_leader=True)
    assert (leader.last_seq, leader.state.events, leader.state.status, leader.state.last_step_error) == \
        (direct.last_seq, direct.state.events, direct.state.status, direct.state.last_step_error) == \
        (seq, 3, direct.state.status, "x")
    none = await bus.log.load(tenant, "exp_none", at_leader=True)
    assert (none.last_seq, none.state.exists) == (0, False)


async def test_the_leaders_read_of_a_stream_not_there_is_unavailable_as_the_direct_read(bus: Bus) -> None:
    """A stream the server does not have (deleted by ``restore --replace`` and not yet restored) says
    nothing of the export. Seen: the leader's read took the server's 404 "stream not found" for "no
    more messages" and folded an empty history — the export read as erased, and the catalog's refused
    run deleted every work object of it, the logged snapshot the restored log names among them. The
    direct read of the same server answers LogUnavailable (retried, nothing deleted); so does this."""
    tenant, export_id = _ids()
    await bus.log.append(_requested(tenant, export_id), 0)
    gone = copy.copy(bus.log)
    gone.stream = f"GONE_{uuid.uuid4().hex[:8]}"
    for at_leader in (False, True):
        with pytest.raises(LogUnavailable):
            await gone.load(tenant, export_id, at_leader=at_leader)
