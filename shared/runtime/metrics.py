"""Prometheus metrics, and /healthz, /readyz, /metrics for every step service.

One service per process, so the default registry is that service's. Served on
``GROVE_METRICS_PORT`` (0 = off; the local stack leaves it off, containers set it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

STEP_RUNS = Counter("grove_step_runs_total", "Step runs by outcome", ["step", "outcome"])
STEP_RETRIES = Counter("grove_step_retries_total", "Failed attempts that will be retried", ["step"])
EXPORTS_FINISHED = Counter("grove_exports_finished_total", "Exports this service moved to a final status",
                           ["status"])
BYTES_STREAMED = Counter("grove_archive_bytes_streamed_total", "Archive bytes uploaded as parts")
MEMBERS_STREAMED = Counter("grove_archive_members_total", "Members written into archives")
PART_UPLOAD = Histogram("grove_part_upload_seconds", "Time to upload one part",
                        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
EVENTS_REJECTED = Counter("grove_events_rejected_total",
                          "Messages dropped unread: unknown type, malformed, forged (body ≠ subject), squatted id",
                          ["consumer", "reason"])
CONSUMER_LAG = Gauge("grove_consumer_pending_messages", "Messages not yet delivered or acked", ["durable"])

Check = Callable[[], Awaitable[bool]]


def observe_part(nbytes: int, seconds: float) -> None:
    BYTES_STREAMED.inc(nbytes)
    PART_UPLOAD.observe(seconds)


async def serve(port: int, ready: Check, refresh: Callable[[], Awaitable[None]] | None = None,
                host: str = "0.0.0.0") -> web.AppRunner:
    """Start the health and metrics endpoints; returns the runner (call ``cleanup()`` to stop)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = False
        with contextlib.suppress(Exception):
            ok = await ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        if refresh is not None:
            with contextlib.suppress(Exception):
                await refresh()
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
