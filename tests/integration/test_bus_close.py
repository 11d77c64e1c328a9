"""A service's NATS connection told to stop: its close ends when cancelled, and a flush given up on
leaves the connection reading."""

from __future__ import annotations

import asyncio

import pytest

from shared.bus.connect import Bus, connect
from shared.runtime.settings import Settings


async def test_a_flush_given_up_on_leaves_the_connection_reading_its_next_pong(settings: Settings) -> None:
    """nats-py set each PONG's future without looking: a flush cancelled (a caller's timeout, a drain
    cancelled) or timed out left its future done in the queue, the PONG for it raised InvalidStateError,
    and that ended the connection's read loop for good: every later flush waited out its timeout, every
    request timed out, and a bus closed after it took 10 s more."""
    bus = await connect(settings, "test", ensure=True)
    try:
        given_up = asyncio.create_task(bus.nc.flush())
        await asyncio.sleep(0)  # its PING is sent and its future queued: the PONG comes later
        given_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await given_up

        await bus.nc.flush(timeout=5)  # answered: the read loop read the PONG of the flush given up on

        assert bus.nc._reading_task is not None and not bus.nc._reading_task.done()
        assert (await bus.js.stream_info(settings.stream_name)).config.name == settings.stream_name
    finally:
        await bus.close()


async def test_a_flush_answered_in_time_is_answered(settings: Settings) -> None:
    """The other outcome: a flush nobody gave up on gets its own PONG, one after the other."""
    bus: Bus = await connect(settings, "test", ensure=True)
    try:
        await asyncio.gather(*(bus.nc.flush(timeout=5) for _ in range(3)))
        assert bus.nc._pongs == []
    finally:
        await bus.close()


async def _draining_subscriptions(bus: Bus) -> None:
    """Until ``bus.close()`` waits on its subscriptions' drains (nats-py's DRAINING_SUBS)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not (bus.nc.is_draining and not bus.nc.is_draining_pubs):
        assert loop.time() < deadline, "the close never drained its subscriptions"
        await asyncio.sleep(0)


async def test_a_close_cancelled_while_it_drains_ends_cancelled_with_the_connection_closed(
        settings: Settings) -> None:
    """nats-py's drain() caught a CancelledError that came while its subscriptions drained and returned:
    the close "succeeded" and its caller went on as if never told to stop. `grove-export run janitor`
    cancelled as its run closed the bus (SIGTERM; a test's event loop closing) took its next run, and
    the next, for good."""
    bus = await connect(settings, "test", ensure=True)
    await bus.nc.subscribe(f"{settings.subject_prefix}.x")  # a subscription for the drain to wait on
    closing = asyncio.create_task(bus.close())
    await _draining_subscriptions(bus)

    closing.cancel()
    done, _ = await asyncio.wait([closing], timeout=5)

    assert closing in done, "the close did not end within 5 s of its cancel"
    assert closing.cancelled(), closing
    assert bus.nc.is_closed


async def test_a_close_cancelled_as_it_flushes_after_the_drain_ends_cancelled_with_the_connection_closed(
        settings: Settings) -> None:
    """Cancelled in its last flush, nats-py's drain() raised the CancelledError before its own close:
    the connection was left open, reading, its pings going, for as long as the process lived."""
    bus = await connect(settings, "test", ensure=True)
    closing = asyncio.create_task(bus.close())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not bus.nc.is_draining_pubs:
        assert loop.time() < deadline, "the close never reached its last flush"
        await asyncio.sleep(0)

    closing.cancel()
    done, _ = await asyncio.wait([closing], timeout=5)

    assert closing in done and closing.cancelled(), closing
    assert bus.nc.is_closed


async def test_a_close_nobody_cancels_drains_and_returns(settings: Settings) -> None:
    bus = await connect(settings, "test", ensure=True)
    await bus.nc.subscribe(f"{settings.subject_prefix}.x")
    closing = asyncio.create_task(bus.close())
    await _draining_subscriptions(bus)

    await asyncio.wait_for(closing, 5)
    assert bus.nc.is_closed


async def test_a_drain_that_fails_as_its_caller_is_cancelled_ends_cancelled_with_the_connection_closed(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A close in a ``finally:`` as a cancellation unwinds, whose drain raises (its last flush timed
    out): its error took the CancelledError's place, and `run janitor`'s loop logged "janitor run
    failed" and went on. The connection was left open, its tasks running."""
    import nats.errors

    bus = await connect(settings, "test", ensure=True)

    async def drain() -> None:
        raise nats.errors.FlushTimeoutError

    monkeypatch.setattr(bus.nc, "drain", drain)
    entered = asyncio.Event()

    async def service() -> None:
        try:
            entered.set()
            await asyncio.Event().wait()
        finally:
            await bus.close()

    task = asyncio.create_task(service())
    await entered.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)

    assert task in done and task.cancelled(), task
    assert bus.nc.is_closed


async def test_a_drain_that_fails_uncancelled_raises_its_error_with_the_connection_closed(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import nats.errors

    bus = await connect(settings, "test", ensure=True)

    async def drain() -> None:
        raise nats.errors.FlushTimeoutError

    monkeypatch.setattr(bus.nc, "drain", drain)

    with pytest.raises(nats.errors.FlushTimeoutError):
        await bus.close()
    assert bus.nc.is_closed
