"""A step service answers /healthz, /readyz and /metrics (Prometheus), and logs JSON lines."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.runtime import metrics
from shared.runtime.httpserve import HeadDeadlineRunner
from shared.runtime.settings import Settings, SettingsProblem
from tests.support.env import settings_for
from tests.support.stack import start_stack
from tests.support.wait import until


async def test_a_step_service_is_healthy_ready_and_exports_its_metrics(tmp_path: Path,
                                                                       nats_server: NatsServer) -> None:
    port = free_port()
    values = settings_for(tmp_path, nats_server.url, metrics_port=port)
    stack = start_stack(tmp_path / "stack", values, services=("catalog",))
    try:
        async with aiohttp.ClientSession() as http:
            async def up() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await until(up, 30, what="catalog /readyz")
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200

            async def scraped() -> str | None:  # the lag gauge is refreshed from the server per scrape
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    body = await r.text()
                return body if 'grove_consumer_pending_messages{durable="catalog"}' in body else None

            text = await until(scraped, 30, 0.2, "the consumer-lag gauge")
        assert 'grove_consumer_pending_messages{durable="catalog"} 0.0' in text
        assert "grove_step_runs_total" in text or "grove_step_retries_total" in text
    finally:
        stack.stop()
    lines = [json.loads(line) for line in Path(stack.child("catalog").log_path).read_text().splitlines()
             if line.startswith("{")]
    assert lines and all(line["service"] == "catalog" for line in lines)


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)  # read() to the end: the endpoint closes
    finally:
        writer.close()


async def test_the_metrics_endpoint_listens_on_loopback_unless_told_and_refuses_garbage(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: the endpoint listened on 0.0.0.0 wherever GROVE_METRICS_PORT was set, whatever GROVE_HOST
    said — `run catalog` on a laptop served the counters to its whole network. It listens on
    GROVE_METRICS_HOST, 127.0.0.1 unless set; the image sets 0.0.0.0 (tests/integration/deploy)."""
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    port = free_port()

    async def ready() -> bool:
        return True

    runner = await metrics.serve(port, ready, host=Settings().metrics_host)
    try:
        assert [a[0] for a in runner.addresses] == ["127.0.0.1"]
        assert (await _raw(port, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).startswith(
            b"HTTP/1.1 404 ")
        assert (await _raw(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 b"Content-Length: 3\r\n\r\nabc")).startswith(b"HTTP/1.1 405 ")
        for garbage in (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
                        b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n",
                        b"\x00\x01\x02 garbage\r\n\r\n"):
            answer = await _raw(port, garbage)
            assert answer.startswith(b"HTTP/1.0 400 ") and len(answer) < 1000, answer[:200]
        ok = await _raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 ") and b"grove_" in ok  # still serving after all that
    finally:
        await runner.cleanup()


async def test_a_metrics_host_it_cannot_listen_on_is_one_settings_line() -> None:
    async def ready() -> bool:
        return True

    for host, why in (("no.such.host.invalid", "unknown host"), ("192.0.2.1", "cannot assign requested address")):
        with pytest.raises(SettingsProblem) as e:
            await metrics.serve(free_port(), ready, host=host)
        assert str(e.value).startswith(f"GROVE_METRICS_HOST: the metrics endpoint cannot listen on {host}:")
        assert why in str(e.value).lower() and "\n" not in str(e.value)


async def test_a_flood_of_scrapes_asks_nats_once_a_second() -> None:
    """Seen: each GET /metrics asked NATS for every durable's info (the lag gauge), so anyone who could
    reach the port turned each request of theirs into several on the bus. One refresh a second now,
    shared by the scrapes that come meanwhile."""
    refreshes = 0

    async def ready() -> bool:
        return True

    async def refresh() -> None:
        nonlocal refreshes
        refreshes += 1
        await asyncio.sleep(0.05)

    port = free_port()
    runner = await metrics.serve(port, ready, refresh, host="127.0.0.1")
    try:
        async with aiohttp.ClientSession() as http:
            async def scrape() -> int:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    await r.read()
                    return r.status

            assert await asyncio.gather(*(scrape() for _ in range(50))) == [200] * 50
            assert refreshes == 1
            await asyncio.sleep(metrics.REFRESH_EVERY_S + 0.1)
            assert await scrape() == 200 and refreshes == 2
    finally:
        await runner.cleanup()


async def test_a_connection_whose_request_never_comes_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: half a request line, then nothing, held the connection (and a file descriptor of the
    service) for as long as the client liked — the gateway closes such connections, this port did not."""
    monkeypatch.setattr(metrics, "HEAD_TIMEOUT_S", 0.5)

    async def ready() -> bool:
        return True

    port = free_port()
    runner = await metrics.serve(port, ready, host="127.0.0.1")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the endpoint, well before 5 s
        writer.close()
        assert (await _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).startswith(
            b"HTTP/1.1 200 ")
    finally:
        await runner.cleanup()


async def test_a_malformed_request_is_one_log_line_and_a_failing_handler_keeps_its_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """Seen: each malformed request (a header line with no colon, a request line too long) logged
    aiohttp's whole traceback at ERROR — anyone who reached the gateway or a metrics port could
    fill the logs, 40 lines a request, and page whoever alerts on errors. A request the client
    got wrong is one INFO line without a traceback; a handler of ours that fails is still an
    ERROR with its traceback."""
    port = free_port()

    async def boom(_: web.Request) -> web.Response:
        raise RuntimeError("a bug of ours")

    app = web.Application()
    app.router.add_get("/boom", boom)
    runner = HeadDeadlineRunner(app)  # the gateway's and every metrics endpoint's runner
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    def logged(match: Callable[[logging.LogRecord], bool]) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return any(match(r) for r in caplog.records)
        return check

    try:
        caplog.set_level(logging.DEBUG)
        for garbage in (b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
                        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n"):
            caplog.clear()
            assert (await _raw(port, garbage)).startswith(b"HTTP/1.0 400 ")
            await until(logged(lambda r: "bad request" in r.getMessage()), timeout=10, what="the bad request's line")
            errors = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
            assert errors == [], [(r.levelname, r.getMessage()) for r in errors]
            line = next(r for r in caplog.records if "bad request" in r.getMessage())
            assert line.levelno == logging.INFO and "127.0.0.1" in line.getMessage(), line.getMessage()
        caplog.clear()
        answer = await _raw(port, b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 500 ")
        await until(logged(lambda r: bool(r.exc_info)), timeout=10, what="the handler's traceback")
        failed = next(r for r in caplog.records if r.exc_info)
        assert failed.levelno == logging.ERROR and failed.exc_info and failed.exc_info[0] is RuntimeError
    finally:
        await runner.cleanup()
