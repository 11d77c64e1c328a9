"""7. A small export end to end through the gateway: 20 posts, 3 pages and 5 real images (JPEG/PNG,
640×480, as ``seed_tenant`` makes them), ``POST /api/export`` then ``GET /api/export/status/{id}``
every 20 ms until ``complete``; the median of 5 (a fresh tenant each: one export per tenant per
hour). Gateway and step services are separate processes on the filesystem store.

Leaves its gateway running for section 4 (API latency), which stops the step services first.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from tests.bench.common import Gateway, Row, World, log, start_gateway

NUMBER = "7"
TITLE = "Small export end to end through the gateway"
RUNS = 5


async def one(gw: Gateway, http: aiohttp.ClientSession, tenant: str) -> tuple[float, str, int]:
    headers = {"Authorization": f"Bearer {gw.token(tenant)}"}
    started = time.perf_counter()
    async with http.post(f"{gw.base}/api/export", json={}, headers=headers) as r:
        body = await r.json()
        if r.status != 201:
            raise RuntimeError(f"POST /api/export answered {r.status}: {body}")
    export_id = body.get("exportId") or body.get("export_id")
    polls = 0
    while True:
        async with http.get(f"{gw.base}/api/export/status/{export_id}", headers=headers) as r:
            status = await r.json()
        polls += 1
        if status.get("status") == "complete":
            return time.perf_counter() - started, export_id, polls
        if status.get("status") in ("failed", "cancelled"):
            raise RuntimeError(f"export {export_id} ended {status.get('status')}: {status.get('error')}")
        if time.perf_counter() - started > 60:
            raise RuntimeError(f"export {export_id} still {status.get('status')} after 60 s")
        await asyncio.sleep(0.02)


async def run(world: World) -> list[Row]:
    gw = await start_gateway(world, "gateway", steps=True)
    handed_over = False
    try:
        s = gw.env.settings
        tenants = []
        for i in range(RUNS):
            seeded = await seed_tenant(content_source(s), gw.env.store, images_bucket=s.buckets.images,
                                       amber_bucket=s.buckets.amber, posts=20, pages=3, images=5, files=0,
                                       seed=100 + i)
            tenants.append(seeded.tenant_id)
        times: list[float] = []
        polls: list[int] = []
        async with aiohttp.ClientSession() as http:
            for i, tenant in enumerate(tenants):
                took, export_id, n = await one(gw, http, tenant)
                times.append(took)
                polls.append(n)
                log(f"7: export {i + 1}/{RUNS} complete in {took:.2f} s")
        world.shared["gateway"] = {"gw": gw, "tenant": tenants[-1], "export_id": export_id}
        handed_over = True
    finally:
        if not handed_over:
            await gw.close()
    med = statistics.median(times)
    return [Row(NUMBER, f"request → complete via the gateway, median of {RUNS}", f"{med:.2f} s", "< 2 s", med < 2.0,
                "runs " + ", ".join(f"{t:.2f}" for t in times) + " s; 20 posts + 3 pages + 5 images; status polled "
                f"every 20 ms ({min(polls)}–{max(polls)} polls)")]


async def release(world: World) -> None:
    shared = world.shared.pop("gateway", None)
    if shared:
        await shared["gw"].close()
