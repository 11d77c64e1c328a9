"""A batched direct get on a real nats-server: on our client the replies go from its read loop
straight into the get (no Msg, no queue, no callback task per message: most of a replay's time on
the event loop); on any other client, through the subscription's callback, with the same answer."""

from __future__ import annotations

import pytest

from shared.bus import connect as bus_connect
from shared.bus.connect import Bus
from shared.eventlog import directget
from shared.eventlog.directget import Stored, get_batch


async def stored_five(bus: Bus) -> list[Stored]:
    out = []
    for n in range(5):
        subject = f"{bus.log.prefix}.tenant_a.exp_{n}.CatalogStarted"
        ack = await bus.js.publish(subject, b'{"n": %d}' % n, stream=bus.log.stream)
        out.append(Stored(ack.seq, subject, b'{"n": %d}' % n))
    return out


def counting_callbacks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    called: list[str] = []
    deliver = directget._Replies._deliver

    async def counting(self, msg):  # type: ignore[no-untyped-def]
        called.append(msg.subject)
        await deliver(self, msg)

    monkeypatch.setattr(directget._Replies, "_deliver", counting)
    return called


async def test_our_client_hands_each_reply_to_the_get_from_its_read_loop(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    called = counting_callbacks(monkeypatch)
    want = await stored_five(bus)
    got = await get_batch(bus.js, bus.log.stream, seq=1, subject=f"{bus.log.prefix}.>", batch=3)
    assert got.messages == want[:3] and got.pending == 2
    got = await get_batch(bus.js, bus.log.stream, seq=want[3].seq, subject=f"{bus.log.prefix}.>")
    assert got.messages == want[3:] and got.pending == 0
    assert called == []  # not one reply went through the subscription's callback


async def test_another_client_gets_the_same_answer_through_the_callback(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(bus_connect._Client, "deliver_directly")  # as nats-py's own client
    called = counting_callbacks(monkeypatch)
    want = await stored_five(bus)
    got = await get_batch(bus.js, bus.log.stream, seq=1, subject=f"{bus.log.prefix}.>")
    assert got.messages == want and got.pending == 0
    assert len(called) == 6  # five stored messages and the end of the batch
