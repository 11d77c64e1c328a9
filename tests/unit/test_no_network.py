"""The guard of tests/unit/conftest.py: a connection, even one the code swallows, is refused."""

from __future__ import annotations

import asyncio
import socket

import pytest

from shared.runtime.settings import Settings


async def test_a_connection_is_refused_and_recorded_even_when_swallowed(no_network: list[object]) -> None:
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", 4222)
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", 4222))
    assert len(no_network) == 2
    no_network.clear()  # this test meant to try; any other test that does fails at teardown


def test_settings_point_nats_at_an_unroutable_address() -> None:
    assert Settings().nats_url == "nats://192.0.2.1:4222"
