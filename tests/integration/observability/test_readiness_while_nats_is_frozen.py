"""A step service's /readyz turns 503 within seconds of NATS freezing, and 200 again within seconds of it
resuming. It asked only whether the client was connected, and a server that stops answering without
closing the connection (frozen; a partition that drops packets) leaves it "connected" until nats-py's own
pings go stale (every 120 s, 2 outstanding): some 4 minutes of "ready" from a service that could do
nothing. It now asks NATS for a round trip (``shared/bus/probe.py``), and no answer waits on the server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import aiohttp

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.bus.connect import connect
from tests.support.env import build, settings_for
from tests.support.stack import start_stack
from tests.support.wait import until

TURN_S = 6.0  # NATS frozen or resumed: /readyz says so within this
ANSWER_S = 3.0  # and every answer comes within this, whatever NATS does


async def test_a_step_service_is_not_ready_within_seconds_of_a_frozen_nats_and_ready_again_after(
        tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "js", port=free_port(), log_file=tmp_path / "nats.log").start()
    port = free_port()
    values = settings_for(tmp_path, server.url, metrics_port=port)
    bus = await connect(build(values), "test", ensure=True)  # the stream and the durables
    await bus.close()
    stack = start_stack(tmp_path / "stack", values, services=("catalog",))
    frozen = False
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            async def status() -> int:
                started = time.monotonic()
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    took = time.monotonic() - started
                    assert took <= ANSWER_S, f"/readyz took {took:.1f} s"
                    return r.status

            async def up() -> bool:
                try:
                    return await status() == 200
                except aiohttp.ClientError:
                    return False

            await until(up, 30, 0.2, "catalog /readyz")
            os.kill(server.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
            frozen, at = True, time.monotonic()

            async def down() -> bool:
                return await status() == 503

            await until(down, TURN_S, 0.1, "catalog /readyz 503 with NATS frozen")
            assert time.monotonic() - at <= TURN_S
            os.kill(server.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
            frozen, at = False, time.monotonic()
            await until(up, TURN_S, 0.1, "catalog /readyz 200 once NATS resumed")
            assert time.monotonic() - at <= TURN_S
    finally:
        if frozen:
            os.kill(server.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        stack.stop()
        server.stop()
