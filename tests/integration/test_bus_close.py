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
