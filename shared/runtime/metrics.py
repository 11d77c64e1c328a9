"""Prometheus metrics, and /healthz, /readyz, /metrics for every step service.

One service per process, so the default registry is that service's. Served on
``GROVE_METRICS_HOST``:``GROVE_METRICS_PORT`` (port 0 = off; the local stack leaves it off, containers set it).

Every label value comes from a closed set of this code's own names (steps, durables, outcomes,
statuses, reasons); any other value is counted as ``other``. Each distinct value is a series kept for
the life of the process and sent on every scrape, and the bus and the gateway are open to anyone:
a label that took a message's type, subject or reason would let a publisher grow every service's
memory and blow up the scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from shared.core import steps
from shared.core.lifecycle import TERMINAL
from shared.runtime.httpserve import HeadDeadlineRunner
from shared.runtime.settings import SettingsProblem

OTHER = "other"
M = TypeVar("M", bound=MetricWrapperBase)


class Closed(Generic[M]):
    """A labelled metric whose ``labels()`` keeps only values of its closed sets (one per label, in
    order); any other value becomes ``other``."""

    def __init__(self, metric: M, *allowed: Iterable[str]) -> None:
        self.metric = metric
        self.allowed = tuple(frozenset(a) for a in allowed)

    def labels(self, *values: str) -> M:
        return self.metric.labels(*(v if v in ok else OTHER for v, ok in zip(values, self.allowed, strict=True)))


_STEPS = {s.step for s in steps.STEPS} | {s.label for s in steps.STEPS}
_DURABLES = {c.durable for c in steps.all_consumers()}
_OUTCOMES = ("ok", "failed", "stalled", "stood_down", "tenant_bound")
_READERS = ("log", "read-model", "append")  # who drops a bad event besides a step's worker
_REASONS = ("malformed", "unknown", "forged", "squatted")  # ev.BadEvent.reason and its kinds, and append's

STEP_RUNS = Closed(Counter("grove_step_runs_total", "Step runs by outcome", ["step", "outcome"]), _STEPS, _OUTCOMES)
STEP_RETRIES = Closed(Counter("grove_step_retries_total", "Failed attempts that will be retried", ["step"]), _STEPS)
EXPORTS_FINISHED = Closed(Counter("grove_exports_finished_total", "Exports this service moved to a final status",
                                  ["status"]), TERMINAL)
BYTES_STREAMED = Counter("grove_archive_bytes_streamed_total", "Archive bytes uploaded as parts")
MEMBERS_STREAMED = Counter("grove_archive_members_total", "Members written into archives")
PART_UPLOAD = Histogram("grove_part_upload_seconds", "Time to upload one part",
                        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ARCHIVE_COMPLETE = Histogram("grove_archive_complete_seconds",
                             "Time the store took to complete an archive's upload and describe the object (HEAD)",
                             buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
EVENTS_REJECTED = Closed(Counter("grove_events_rejected_total",
                                 "Messages dropped unread: unknown type, malformed, forged (body ≠ subject), squatted id",
                                 ["consumer", "reason"]), _STEPS | set(_READERS), _REASONS)
CONSUMER_LAG = Closed(Gauge("grove_consumer_pending_messages", "Messages not yet delivered or acked", ["durable"]),
                      _DURABLES)

Check = Callable[[], Awaitable[bool]]
# The gauges ``refresh`` sets ask NATS (one request per durable): at most once this often, whoever scrapes.
REFRESH_EVERY_S = 1.0
# How long a refresh waits for NATS's answer about one durable (all of them are asked side by side): a
# scrape must answer within Prometheus' scrape timeout (10 s by default) whatever NATS does, or the
# target is down and every counter with it. The bus's own request timeout is that 10 s.
LAG_TIMEOUT_S = 2.0
# A scraper or probe sends its request at once: a connection whose request has not come by then is closed
# (aiohttp waits for ever, and each held connection is a file descriptor of the service).
HEAD_TIMEOUT_S = 10.0


def observe_part(nbytes: int, seconds: float) -> None:
    BYTES_STREAMED.inc(nbytes)
    PART_UPLOAD.observe(seconds)


async def serve(port: int, ready: Check, refresh: Callable[[], Awaitable[None]] | None = None, *,
                host: str) -> web.AppRunner:
    """Start the health and metrics endpoints on ``host:port`` (GROVE_METRICS_HOST, 127.0.0.1 unless
    set: the image sets 0.0.0.0 for the scraper and the probes); returns the runner (``cleanup()`` stops it)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = False
        with contextlib.suppress(Exception):
            ok = await ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    refreshing = asyncio.Lock()
    refreshed_at = -REFRESH_EVERY_S

    async def metrics(_: web.Request) -> web.Response:
        nonlocal refreshed_at
        if refresh is not None:
            async with refreshing:  # scrapes that come during a refresh wait for it and ask nothing more
                if time.monotonic() - refreshed_at >= REFRESH_EVERY_S:
                    with contextlib.suppress(Exception):
                        await refresh()
                    refreshed_at = time.monotonic()
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = HeadDeadlineRunner(app, access_log=None, head_timeout=HEAD_TIMEOUT_S, keepalive_timeout=HEAD_TIMEOUT_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        if e.errno == errno.EADDRINUSE:
            raise  # the command line names the port another program holds
        why = f"unknown host ({e.strerror})" if isinstance(e, socket.gaierror) else (e.strerror or str(e))
        raise SettingsProblem(f"GROVE_METRICS_HOST: the metrics endpoint cannot listen on {host}:{port} "
                              f"({why})") from None
    return runner
