"""At most GROVE_DOWNLOADS_PER_TENANT downloads of a tenant's archives at once (429, GROVE-EXPORT-012).

Seen: one person with one link to their own finished export opened 400 downloads of it and read them
slowly (64 KiB per keep-alive timeout keeps one alive); a download in progress is never evicted at
the connection cap, so every other user's connection was a 503 (GROVE-EXPORT-008) for as long as
they kept reading. Downloads here are real sockets against the running gateway that read nothing
(a slow reader, as far as the server can tell), ended on purpose by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.gateway.keys import DOWNLOADS
from shared.bus.connect import connect
from shared.runtime.settings import Settings
from tests.integration.gateway.conftest import Pipeline, auth
from tests.support import wait

SIZE = 32 * 1024 * 1024  # sparse: far more than the socket buffers hold, so a reader that stops holds it
WAIT_S = 10.0


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
async def serve(start_gateway, settings_for) -> AsyncIterator[Callable[..., Awaitable[tuple]]]:
    """``await serve(**settings)``: a gateway (no export rate window) and ``link(tenant)``, a fresh
    finished export of ``tenant`` with a big archive, as the path of its download link."""
    buses = []

    async def start(**overrides: Any) -> tuple:
        gateway = await start_gateway(0, rate_window_s=0, **overrides)
        settings: Settings = settings_for(0, rate_window_s=0, **overrides)
        bus = await connect(settings, "test-pipeline", name=f"test-download-limit-{len(buses)}")
        buses.append(bus)
        pipeline = Pipeline(bus, settings)

        async def link(tenant: str = "tenant_a") -> str:
            resp = await gateway.post("/api/export", json={}, headers=auth(settings, tenant))
            assert resp.status == 201, await resp.text()
            export_id = (await resp.json())["exportId"]
            await pipeline.complete(tenant, export_id)
            with open(pipeline.archive_path(tenant, export_id), "r+b") as f:
                f.truncate(SIZE)
            await pipeline.settle(gateway)
            resp = await gateway.get(f"/api/export/status/{export_id}", headers=auth(settings, tenant))
            return local((await resp.json())["downloadUrl"])

        return gateway, link

    yield start
    for bus in buses:
        await bus.close()


@pytest.fixture
async def served(serve) -> tuple:
    """The gateway as shipped (the default limit) and its ``link``."""
    return await serve()


async def begun(port: int, path: str) -> tuple[socket.socket, bytes]:
    """A download that asks for ``path`` and reads only its answer's head (and what came with it),
    then nothing: the server sees a reader as slow as a client may be. Returns the socket and the head."""
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    await asyncio.wait_for(loop.sock_connect(s, ("127.0.0.1", port)), WAIT_S)
    await asyncio.wait_for(loop.sock_sendall(s, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()), WAIT_S)
    got = b""
    async with asyncio.timeout(WAIT_S):
        while b"\r\n\r\n" not in got:
            chunk = await loop.sock_recv(s, 4096)
            assert chunk, f"closed before an answer's head: {got!r}"
            got += chunk
    return s, got.split(b"\r\n\r\n", 1)[0]


async def refused(resp, problem) -> dict:
    """``resp`` is the 429 problem (its status checked first: a download served instead is 32 MiB)."""
    assert resp.status == 429, (resp.status, resp.headers.get("Content-Type"))
    return await problem(resp, 429, "GROVE-EXPORT-012")


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition()`` (the gateway runs on this loop: let it work), within WAIT_S."""

    async def check() -> bool:
        return condition()

    await wait.until(check, timeout=WAIT_S, interval=0.01, what=what)


@contextlib.asynccontextmanager
async def slow_downloads(slots: Any, port: int, path: str, n: int) -> AsyncIterator[list[tuple[socket.socket, bytes]]]:
    """``n`` downloads of ``path`` begun and not read; closed on the way out, where every slot of tenant_a
    must come back (the list may gain more)."""
    downloads = [await begun(port, path) for _ in range(n)]
    try:
        yield downloads
    finally:
        for s, _ in downloads:
            s.close()
    await until(lambda: slots.held("tenant_a") == 0, "closed downloads kept their slots")


async def test_one_link_holds_at_most_the_limit_and_a_slot_frees_when_a_download_ends(served, problem):
    gateway, link = served
    slots, port = gateway.app[DOWNLOADS], gateway.server.port
    limit = slots.limit
    assert limit == Settings.model_fields["downloads_per_tenant"].default  # the shipped default
    path = await link()
    async with slow_downloads(slots, port, path, limit) as downloads:
        assert all(head.startswith(b"HTTP/1.1 200") for _, head in downloads), [h for _, h in downloads]

        resp = await gateway.get(path)  # one more, while those are still being sent
        body = await refused(resp, problem)
        assert resp.headers["Retry-After"] == "5" and body["maxConcurrentDownloads"] == limit
        assert "Content-Disposition" not in resp.headers  # no byte of the archive
        assert slots.held("tenant_a") == limit

        gone, _ = downloads.pop()
        gone.close()  # the client goes mid-body (its unread bytes: the kernel resets the connection)
        await until(lambda: slots.held("tenant_a") == limit - 1, "the closed download's slot was not given back")
        again = await begun(port, path)
        downloads.append(again)
        assert again[1].startswith(b"HTTP/1.1 200"), again[1]
        await refused(await gateway.get(path), problem)  # and the limit holds again


async def test_the_limit_is_the_tenants_not_each_links_and_leaves_other_tenants_alone(served, problem):
    gateway, link = served
    slots, port = gateway.app[DOWNLOADS], gateway.server.port
    first, second, other = await link(), await link(), await link("tenant_b")
    async with slow_downloads(slots, port, first, slots.limit):
        await refused(await gateway.get(second), problem)  # another export's link of the tenant
        theirs = await gateway.get(other, headers={"Range": "bytes=0-9"})  # another tenant's: served
        assert theirs.status == 206 and len(await theirs.read()) == 10
        await until(lambda: slots.held("tenant_b") == 0, "a finished download kept its slot")


async def test_finished_downloads_heads_and_refused_ranges_give_their_slots_back(served, problem):
    gateway, link = served
    slots, port = gateway.app[DOWNLOADS], gateway.server.port
    path = await link()
    for _ in range(slots.limit + 1):  # one after another, each to its end: never refused
        resp = await gateway.get(path, headers={"Range": "bytes=0-99"})
        assert resp.status == 206 and len(await resp.read()) == 100
        await problem(await gateway.get(path, headers={"Range": f"bytes={SIZE}-"}), 416, "GROVE-EXPORT-010")
        head = await gateway.head(path)
        assert head.status == 200
    await until(lambda: slots.held("tenant_a") == 0, "finished downloads kept their slots")
    downloads = [await begun(port, path) for _ in range(slots.limit)]  # all the slots are free again
    try:
        assert all(head.startswith(b"HTTP/1.1 200") for _, head in downloads), [h for _, h in downloads]
        await refused(await gateway.get(path), problem)  # and the limit still holds
    finally:
        for s, _ in downloads:
            s.close()


async def test_downloads_cut_by_the_stall_bound_give_their_slots_back(serve, problem):
    """A download whose client takes nothing for the keep-alive timeout is closed by the gateway (an
    error mid-send, not a finish): its slot goes back with it."""
    gateway, link = await serve(keepalive_timeout_s=1.0)
    slots, port = gateway.app[DOWNLOADS], gateway.server.port
    path = await link()
    downloads = [await begun(port, path) for _ in range(slots.limit)]
    try:
        assert all(head.startswith(b"HTTP/1.1 200") for _, head in downloads), [h for _, h in downloads]
        assert slots.held("tenant_a") == slots.limit  # counted while they are sent
        await until(lambda: slots.held("tenant_a") == 0, "downloads cut for stalling kept their slots")
    finally:
        for s, _ in downloads:
            s.close()


async def test_one_link_no_longer_holds_every_connection_of_the_gateway(settings_for):
    """The case itself, on the gateway as it runs (its connection cap): one link's downloads, read
    slowly, on every connection the gateway takes. Those past the limit are answered 429 and are
    then idle kept-alive connections, which make way at the cap: another user is served, not 503."""
    from services.gateway.auth import link_secret
    from shared.objectstore import links
    from tests.fixtures.moto import free_port
    from tests.integration.gateway.test_gateway_raw_http import _answer, _gateway

    port, limit = free_port(), Settings.model_fields["downloads_per_tenant"].default
    settings = settings_for(0, host="127.0.0.1", port=port, max_connections=limit + 3)
    key = "exports/tenant_a/exp_0123456789abcdef01234567/grove-export-u1-name-2026-02-22.zip"
    archive = settings.store_root / settings.buckets.exports / key
    archive.parent.mkdir(parents=True)
    with open(archive, "wb") as f:
        f.truncate(SIZE)
    path = local(links.sign(link_secret(settings), "http://x", key, 600))
    async with _gateway(settings):
        downloads = [await begun(port, path) for _ in range(settings.max_connections)]  # the gateway's every one
        try:
            status, _, body = await _answer(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert status == 200, body  # was a 503 GROVE-EXPORT-008: every connection a download under way
            statuses = [head.split(b" ")[1] for _, head in downloads]
            assert statuses == [b"200"] * limit + [b"429"] * 3, statuses
        finally:
            for s, _ in downloads:
                s.close()
