"""A step service answers /healthz, /readyz and /metrics (Prometheus), and logs JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from services.devtools.stack.natsserver import NatsServer, free_port
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
