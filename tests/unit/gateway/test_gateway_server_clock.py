"""Admission's server clock: one probe of the bus's time a second at most, counted on in between."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.gateway.admission_kv import ServerClock

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Fake:
    def __init__(self, *answers: datetime) -> None:
        self.answers = list(answers)
        self.probes = 0
        self.mono = 100.0
        self.gate: asyncio.Event | None = None
        self.probing = asyncio.Event()

    def monotonic(self) -> float:
        return self.mono

    async def probe(self) -> datetime:
        self.probes += 1
        self.probing.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.answers.pop(0)


async def test_one_probe_a_second_and_the_time_counted_on_from_it() -> None:
    f = Fake(T0, T0 + timedelta(seconds=5))
    clock = ServerClock(f.probe, refresh_s=1.0, monotonic=f.monotonic)
    assert await clock.now() == T0
    f.mono += 0.25
    assert await clock.now() == T0 + timedelta(seconds=0.25)
    f.mono += 0.5
    assert await clock.now() == T0 + timedelta(seconds=0.75)
    assert f.probes == 1
    f.mono += 0.25  # a second after the probe: the next reading probes again
    assert await clock.now() == T0 + timedelta(seconds=5)
    assert f.probes == 2


async def test_requests_waiting_for_a_probe_share_it() -> None:
    f = Fake(T0)
    f.gate = asyncio.Event()
    clock = ServerClock(f.probe, refresh_s=1.0, monotonic=f.monotonic)
    readers = [asyncio.create_task(clock.now()) for _ in range(5)]
    await asyncio.wait_for(f.probing.wait(), 5)  # the first reader is in its probe; the rest queue behind it
    for _ in range(10):
        await asyncio.sleep(0)
    assert not any(r.done() for r in readers)
    f.gate.set()
    assert await asyncio.gather(*readers) == [T0] * 5
    assert f.probes == 1


async def test_a_later_probe_never_takes_the_time_back() -> None:
    # the monotonic count ran a little ahead of the server (the probe's round trip): the next probe
    # answers earlier than the last time given, which stays the time until the server passes it
    f = Fake(T0, T0 + timedelta(seconds=0.9))
    clock = ServerClock(f.probe, refresh_s=1.0, monotonic=f.monotonic)
    await clock.now()
    f.mono += 0.99
    given = await clock.now()
    assert f.probes == 1 and given == T0 + timedelta(seconds=0.99)
    f.mono += 0.01
    assert await clock.now() == given  # probed again (0.9 s), and not before the time already given
    assert f.probes == 2
    f.mono += 0.05
    assert await clock.now() == given  # the server's 0.95 s
    f.mono += 0.1
    assert await clock.now() == T0 + timedelta(seconds=1.05)


async def test_a_failed_probe_is_taken_again_by_the_next_request() -> None:
    calls = 0

    async def probe() -> datetime:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("bus down")
        return T0

    clock = ServerClock(probe, refresh_s=1.0, monotonic=lambda: 5.0)
    try:
        await clock.now()
    except ConnectionError:
        pass
    else:
        raise AssertionError("the failed probe gave a time")
    assert await clock.now() == T0 and calls == 2


async def test_requests_waiting_for_a_probe_that_fails_share_its_failure() -> None:
    # each request behind a failing probe took its own, one after another: with the bus's 10 s
    # timeout the fifth create waited 50 s for its 503 (before this clock each waited its own 10 s)
    gate = asyncio.Event()
    probing = asyncio.Event()
    calls = 0

    async def probe() -> datetime:
        nonlocal calls
        calls += 1
        probing.set()
        await gate.wait()
        raise ConnectionError("bus down")

    clock = ServerClock(probe, refresh_s=1.0, monotonic=lambda: 5.0)
    readers = [asyncio.create_task(clock.now()) for _ in range(5)]
    await asyncio.wait_for(probing.wait(), 5)
    for _ in range(10):
        await asyncio.sleep(0)
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 5)
    assert all(isinstance(r, ConnectionError) for r in results), results
    assert calls == 1


async def test_a_reader_given_up_on_leaves_the_probe_to_the_others() -> None:
    gate = asyncio.Event()
    probing = asyncio.Event()

    async def probe() -> datetime:
        probing.set()
        await gate.wait()
        return T0

    clock = ServerClock(probe, refresh_s=1.0, monotonic=lambda: 5.0)
    first = asyncio.create_task(clock.now())
    await asyncio.wait_for(probing.wait(), 5)
    second = asyncio.create_task(clock.now())
    await asyncio.sleep(0)
    first.cancel()  # the request that started the probe is given up on (a client gone, a timeout)
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.wait_for(second, 5) == T0
