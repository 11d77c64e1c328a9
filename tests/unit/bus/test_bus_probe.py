"""The NATS probe of every /readyz (shared/bus/probe.py), on a stand-in client: how often it PINGs and
how long it may take are its own rules, whatever the server does (the server's side:
tests/integration/gateway/test_gateway_unavailable.py and tests/integration/observability)."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.bus import probe
from shared.bus.probe import BusProbe
from shared.runtime import probe as shared_probe


class Client:
    """What the probe asks of nats-py's client: is_connected, and rtt (a PING and its PONG)."""

    def __init__(self) -> None:
        self.is_connected = True
        self.pings = 0
        self.answer = asyncio.Event()  # the PONG arrives when set
        self.answer.set()
        self.asked = asyncio.Event()  # set once a PING is out

    async def rtt(self, timeout: float) -> float:
        self.pings += 1
        self.asked.set()
        await self.answer.wait()  # a frozen server: however long it takes, whatever the timeout given
        return 0.001


async def test_fifty_callers_at_once_share_one_ping_and_its_answer_stands_for_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared_probe, "FRESH_S", 60.0)  # a loaded machine may take over a second for the 50
    nc, bus_probe = Client(), BusProbe()
    nc.answer.clear()
    callers = [asyncio.ensure_future(bus_probe.failing(nc)) for _ in range(50)]
    async with asyncio.timeout(5):
        await nc.asked.wait()  # the PING is out, with every caller waiting for it
    nc.answer.set()
    assert await asyncio.gather(*callers) == [False] * 50
    assert nc.pings == 1
    assert await bus_probe.failing(nc) is False and nc.pings == 1  # within the second
    monkeypatch.setattr(shared_probe, "FRESH_S", 0.0)  # the second is over
    assert await bus_probe.failing(nc) is False and nc.pings == 2


async def test_a_ping_never_answered_is_not_ready_within_the_timeout(monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(probe, "TIMEOUT_S", 0.2)
    nc, bus_probe = Client(), BusProbe()
    nc.answer.clear()  # and its rtt ignores its own timeout: the probe's bound must hold anyway
    started = time.monotonic()
    async with asyncio.timeout(5):
        assert await bus_probe.failing(nc) is True
    assert time.monotonic() - started < 1.0
    assert "NATS did not answer a PING within 0.2 s" in caplog.text


async def test_a_caller_that_goes_away_does_not_stop_the_others_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    nc, bus_probe = Client(), BusProbe()
    nc.answer.clear()
    gone = asyncio.ensure_future(bus_probe.failing(nc))
    stays = asyncio.ensure_future(bus_probe.failing(nc))
    await asyncio.sleep(0)
    gone.cancel()
    nc.answer.set()
    assert await stays is False and nc.pings == 1


async def test_a_client_not_connected_is_not_ready_at_once_with_no_ping() -> None:
    nc, bus_probe = Client(), BusProbe()
    nc.is_connected = False
    assert await bus_probe.failing(nc) is True and nc.pings == 0
