"""A step service's /metrics answers at once while NATS does not, with every counter it holds. The
scrape asks NATS for each durable's lag (the gauge), and with the server gone or frozen that ask waited
out the bus's 10 s request timeout on every scrape: Prometheus' default scrape timeout is 10 s, so the
target went down and every counter with it — the step runs, retries and finished exports of the hour
an operator most needs them. Each ask is now bounded (``metrics.LAG_TIMEOUT_S``), made side by side,
and not made at all while the connection is down; the gauge keeps its last value meanwhile."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.bus.connect import connect
from shared.runtime import metrics
from tests.support.env import build, settings_for
from tests.support.stack import start_stack
from tests.support.wait import until

DEADLINE_S = metrics.LAG_TIMEOUT_S + 1.5  # well inside Prometheus' default scrape timeout of 10 s
# With the server stopped the connection is down and nothing is asked: no ask waits out its bound
NOTHING_ASKED_S = metrics.LAG_TIMEOUT_S / 2


@pytest.mark.parametrize("outage", ["frozen", "stopped"])
async def test_a_scrape_answers_at_once_while_nats_does_not(tmp_path: Path, outage: str) -> None:
    server = NatsServer(tmp_path / "js", port=free_port(), log_file=tmp_path / "nats.log").start()
    port = free_port()
    values = settings_for(tmp_path, server.url, metrics_port=port)
    bus = await connect(build(values), "test", ensure=True)  # the stream and the durables
    await bus.close()
    stack = start_stack(tmp_path / "stack", values, services=("notifier",))  # three durables
    frozen = False
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            async def scrape() -> tuple[float, str]:
                started = time.monotonic()
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    assert r.status == 200
                    return time.monotonic() - started, await r.text()

            async def gauged() -> str | None:
                try:
                    body = (await scrape())[1]
                except aiohttp.ClientError:
                    return None
                return body if 'grove_consumer_pending_messages{durable="notifier-resend"}' in body else None

            await until(gauged, 30, 0.2, "the notifier's lag gauges")
            if outage == "frozen":  # connected as far as the client knows; nothing answers
                os.kill(server.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
                frozen = True
            else:
                server.stop()
            await asyncio.sleep(metrics.REFRESH_EVERY_S)  # the next scrape asks again
            for _ in range(2):
                took, body = await scrape()
                assert took < (DEADLINE_S if outage == "frozen" else NOTHING_ASKED_S), \
                    f"a scrape took {took:.1f} s with NATS {outage}"
                assert 'grove_consumer_pending_messages{durable="notifier"}' in body
                await asyncio.sleep(metrics.REFRESH_EVERY_S)
    finally:
        if frozen:
            os.kill(server.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        stack.stop()
        server.stop()
