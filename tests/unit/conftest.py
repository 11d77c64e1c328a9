"""Unit tests run with no server: every test here is refused any network connection that leaves
the test process.

A test (or the code under it) that opens an IPv4/IPv6 socket to anything but a socket this same
process bound (an in-process aiohttp test server) fails, with the address it tried, even when the
code swallows the error; the NATS URL points at an unroutable address
(TEST-NET-1), so nothing can reach a stray local nats-server either. Pure logic needs no server:
the steps run on :class:`shared.eventlog.memory.InMemoryEventLog`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

UNROUTABLE_NATS = "nats://192.0.2.1:4222"


class NetworkInUnitTest(ConnectionRefusedError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    tried: list[object] = []
    ours: set[tuple[object, ...]] = set()  # (host, port) of sockets bound in this process
    real_bind, real_connect, real_connect_ex = socket.socket.bind, socket.socket.connect, socket.socket.connect_ex

    def bind(sock: socket.socket, address: object) -> None:
        real_bind(sock, address)  # type: ignore[arg-type]
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            ours.add(tuple(sock.getsockname()[:2]))

    def refuse(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and tuple(address[:2]) not in ours:  # type: ignore[index]
            tried.append(address)
            raise NetworkInUnitTest(f"unit tests run without a server: connect to {address!r} refused")

    def connect(sock: socket.socket, address: object) -> None:
        refuse(sock, address)
        real_connect(sock, address)  # type: ignore[arg-type]

    def connect_ex(sock: socket.socket, address: object) -> int:
        refuse(sock, address)
        return real_connect_ex(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "bind", bind)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setenv("GROVE_NATS_URL", UNROUTABLE_NATS)
    yield tried
    if tried:
        pytest.fail(f"a unit test tried the network: {tried!r}; test pure logic (tests/unit) without a server")
