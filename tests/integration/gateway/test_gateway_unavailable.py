"""When the bus is down the gateway says so (008) instead of hanging; reads of the model still work."""

from __future__ import annotations

import asyncio

from services.gateway.keys import BUS, READ_MODEL


async def until(condition, timeout: float) -> None:
    """Poll ``condition`` with a deadline."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_lost_bus_makes_readiness_and_writes_503_and_recovers(gateway, nats_server, headers_for, problem):
    export_id = (await (await gateway.post("/api/export", json={}, headers=headers_for())).json())["exportId"]
    nats_server.stop()
    await until(lambda: not gateway.app[BUS].nc.is_connected, 10)
    await problem(await gateway.get("/readyz"), 503, "GROVE-EXPORT-008")
    await problem(await gateway.post("/api/export", json={}, headers=headers_for("tenant_b")), 503,
                  "GROVE-EXPORT-008")
    await problem(await gateway.post(f"/api/export/cancel/{export_id}", headers=headers_for()), 503,
                  "GROVE-EXPORT-008")
    cached = await gateway.get(f"/api/export/status/{export_id}", headers=headers_for())
    assert cached.status == 200  # served from the read model
    assert (await gateway.get("/healthz")).status == 200

    nats_server.start()
    await until(lambda: gateway.app[BUS].nc.is_connected, 20)
    assert (await gateway.get("/readyz")).status == 200
    again = await gateway.post("/api/export", json={}, headers=headers_for("tenant_b"))
    assert again.status == 201, await again.text()
    bus = gateway.app[BUS]
    last = int((await bus.js.stream_info(bus.log.stream)).state.last_seq)
    assert await gateway.app[READ_MODEL].wait_for(last, 15.0), "the projector did not resume after the restart"
