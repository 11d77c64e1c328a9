"""4. API latency of the gateway (its own process, ``python -m services.cli run gateway``, filesystem
store, nats-server beside it), measured by an aiohttp client in the bench process:

* ``POST /api/export`` — every request with a token minted for a fresh tenant (admission allows one
  active export per tenant and one per hour), empty body (all defaults).
* ``GET /api/export/status/{id}`` — one known, complete export (section 7's, or one made here).

Each at 100 requests/s open-loop for 30 s (requests are sent on schedule whatever the answers;
latency is counted from the scheduled send time, so a stall cannot hide), then with 100 concurrent
clients closed-loop for 10 s (each client sends its next request when the last one is answered).

The step services are stopped before the load: 100 creates/s would start 100 exports/s, and the
catalog/assembler/finalizer/notifier processes working through them on these 2 cores would measure
the pipeline's CPU appetite, not the API. The gateway still appends every ExportRequested and its
read model projects each one (read-your-writes) before answering.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import aiohttp

from tests.bench.common import Gateway, Row, World, cpu_seconds, log, percentile, start_gateway

NUMBER = "4"
TITLE = "API latency (gateway)"
RATE = 100
OPEN_S = 30
CLOSED_S = 10
CLIENTS = 100

Request = Callable[[aiohttp.ClientSession], Awaitable[int]]


class Phase:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.codes: Counter[str] = Counter()
        self.seconds = 0.0
        self.cpu = 0.0

    @property
    def ok(self) -> list[float]:
        return self.latencies

    def summary(self) -> str:
        bad = {c: n for c, n in self.codes.items() if not c.startswith("2")}
        return (f"{len(self.latencies)} requests in {self.seconds:.1f} s ({len(self.latencies) / self.seconds:.0f}/s), "
                f"p50 {percentile(self.latencies, 50) * 1000:.1f} ms, max {max(self.latencies) * 1000:.0f} ms, "
                f"gateway CPU {100 * self.cpu / self.seconds:.0f} %"
                + (f", non-2xx {bad}" if bad else ""))


async def _timed(http: aiohttp.ClientSession, request: Request, since: float, phase: Phase) -> None:
    loop = asyncio.get_running_loop()
    try:
        code = str(await request(http))
    except (aiohttp.ClientError, TimeoutError) as e:
        code = type(e).__name__
    phase.latencies.append(loop.time() - since)
    phase.codes[code] += 1


async def open_loop(gw: Gateway, http: aiohttp.ClientSession, request: Request, rate: float, seconds: float) -> Phase:
    phase, loop = Phase(), asyncio.get_running_loop()
    cpu0, t0 = cpu_seconds(gw.pid), loop.time() + 0.05
    tasks = []
    for i in range(int(rate * seconds)):
        at = t0 + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_timed(http, request, at, phase)))
    await asyncio.gather(*tasks)
    phase.seconds = loop.time() - t0
    phase.cpu = cpu_seconds(gw.pid) - cpu0
    return phase


async def closed_loop(gw: Gateway, http: aiohttp.ClientSession, request: Request, clients: int,
                      seconds: float) -> Phase:
    phase, loop = Phase(), asyncio.get_running_loop()
    cpu0, t0 = cpu_seconds(gw.pid), loop.time()
    end = t0 + seconds

    async def client() -> None:
        while loop.time() < end:
            await _timed(http, request, loop.time(), phase)

    await asyncio.gather(*(client() for _ in range(clients)))
    phase.seconds = loop.time() - t0
    phase.cpu = cpu_seconds(gw.pid) - cpu0
    return phase


async def known_export(gw: Gateway, http: aiohttp.ClientSession) -> tuple[str, str]:
    """A complete export to poll: made here when section 7 did not leave one."""
    from shared.content.factory import content_source
    from shared.content.seed import seed_tenant
    from tests.bench.small_e2e import one

    s = gw.env.settings
    seeded = await seed_tenant(content_source(s), gw.env.store, images_bucket=s.buckets.images,
                               amber_bucket=s.buckets.amber, posts=20, pages=3, images=5, files=0)
    _, export_id, _ = await one(gw, http, seeded.tenant_id)
    return seeded.tenant_id, export_id


async def run(world: World) -> list[Row]:
    shared = world.shared.get("gateway")
    own = shared is None
    gw: Gateway = shared["gw"] if shared else await start_gateway(world, "gateway", steps=True)
    scale = 0.2 if world.quick else 1.0
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
            if shared is None:
                tenant, export_id = await known_export(gw, http)
            else:
                tenant, export_id = shared["tenant"], shared["export_id"]
            gw.stop_steps()
            status_headers = {"Authorization": f"Bearer {gw.token(tenant)}"}
            status_url = f"{gw.base}/api/export/status/{export_id}"

            async def create(h: aiohttp.ClientSession) -> int:
                token = gw.token(f"lat_{uuid.uuid4().hex[:16]}")
                async with h.post(f"{gw.base}/api/export", json={},
                                  headers={"Authorization": f"Bearer {token}"}) as r:
                    await r.read()
                    return r.status

            async def status(h: aiohttp.ClientSession) -> int:
                async with h.get(status_url, headers=status_headers) as r:
                    await r.read()
                    return r.status

            await closed_loop(gw, http, status, 4, 1.0)  # warm the connection pool and the gateway
            phases: dict[str, Phase] = {}
            log(f"4: create, {RATE}/s open-loop for {OPEN_S * scale:.0f} s")
            phases["create open"] = await open_loop(gw, http, create, RATE, OPEN_S * scale)
            log(f"4: status, {RATE}/s open-loop for {OPEN_S * scale:.0f} s")
            phases["status open"] = await open_loop(gw, http, status, RATE, OPEN_S * scale)
            log(f"4: create, {CLIENTS} clients closed-loop for {CLOSED_S * scale:.0f} s")
            phases["create closed"] = await closed_loop(gw, http, create, CLIENTS, CLOSED_S * scale)
            log(f"4: status, {CLIENTS} clients closed-loop for {CLOSED_S * scale:.0f} s")
            phases["status closed"] = await closed_loop(gw, http, status, CLIENTS, CLOSED_S * scale)
    finally:
        if own:
            await gw.close()
    rows = []
    for key, what, goal_ms in (("create open", "POST /api/export", 100), ("status open", "GET /api/export/status", 50)):
        ph = phases[key]
        p99 = percentile(ph.latencies, 99)
        rows.append(Row(NUMBER, f"{what} at {RATE}/s open-loop, p99", f"{p99 * 1000:.1f} ms",
                        f"≤ {goal_ms} ms", p99 * 1000 <= goal_ms, ph.summary()))
    for key, what in (("create closed", "POST /api/export"), ("status closed", "GET /api/export/status")):
        ph = phases[key]
        rows.append(Row(NUMBER, f"{what}, {CLIENTS} clients closed-loop, p50 / p99",
                        f"{percentile(ph.latencies, 50) * 1000:.0f} / {percentile(ph.latencies, 99) * 1000:.0f} ms",
                        "", None, ph.summary()))
    return rows
