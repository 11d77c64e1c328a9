"""Admission across replicas: one active export per tenant, one new export per hour, failures free,
abandoned reservations free themselves — decided by compare-and-set on the KV in server time."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta

from services.gateway.keys import BUS, SETTINGS
from shared.bus.connect import kv_names
from shared.core import events as ev


async def test_fifty_concurrent_posts_on_two_replicas_admit_exactly_one(start_gateway, headers_for, pipeline, gateway):
    other = await start_gateway(1)
    replicas = [gateway, other]
    responses = await asyncio.gather(*[
        replicas[i % 2].post("/api/export", json={}, headers=headers_for(user=f"u{i}")) for i in range(50)])
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 49
    created = await next(r for r in responses if r.status == 201).json()
    conflicts = [await r.json(content_type=None) for r in responses if r.status == 409]
    assert {c["activeExportId"] for c in conflicts} == {created["exportId"]}
    assert {c["code"] for c in conflicts} == {"GROVE-EXPORT-002"}
    assert {r.content_type for r in responses if r.status == 409} == {"application/problem+json"}

    # Finished within the hour: 429 on either replica, with Retry-After and the next allowed time.
    await pipeline.complete("tenant_a", created["exportId"])
    for replica in replicas:
        limited = await replica.post("/api/export", json={}, headers=headers_for())
        assert limited.status == 429 and limited.content_type == "application/problem+json"
        body = await limited.json(content_type=None)
        retry_after = int(limited.headers["Retry-After"])
        assert body["code"] == "GROVE-EXPORT-003" and 3500 < retry_after <= 3600
        assert body["detail"] == "One new export per hour."
        next_allowed = datetime.fromisoformat(body["nextAllowedAt"])
        expected = datetime.now(UTC) + timedelta(seconds=retry_after)
        assert abs((next_allowed - expected).total_seconds()) < 5


async def test_a_failed_export_does_not_use_up_the_hour(start_gateway, headers_for, pipeline, gateway):
    other = await start_gateway(1)
    first = await (await gateway.post("/api/export", json={}, headers=headers_for())).json()
    await pipeline.fail("tenant_a", first["exportId"])
    again = await other.post("/api/export", json={}, headers=headers_for())
    assert again.status == 201
    second = await again.json()
    assert second["exportId"] != first["exportId"]



async def test_concurrent_posts_for_a_tenant_with_a_slot_already_admit_exactly_one(start_gateway, headers_for,
                                                                                  pipeline, gateway):
    """The tenant's slot exists (its earlier export failed, so the hour is free): every request reads
    the same revision and decides Admit, and only the compare-and-set on that revision lets one of
    them through. (The first export of a tenant creates the key instead: that path is the test above.)"""
    other = await start_gateway(1)
    first = await (await gateway.post("/api/export", json={}, headers=headers_for())).json()
    await pipeline.fail("tenant_a", first["exportId"])
    replicas = [gateway, other]
    responses = await asyncio.gather(*[
        replicas[i % 2].post("/api/export", json={}, headers=headers_for(user=f"u{i}")) for i in range(50)])
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 49, statuses
    created = await next(r for r in responses if r.status == 201).json()
    assert created["exportId"] != first["exportId"]
    conflicts = [await r.json(content_type=None) for r in responses if r.status == 409]
    assert {c["activeExportId"] for c in conflicts} == {created["exportId"]}


async def test_create_cancel_create_within_the_hour_is_429_not_409(gateway, headers_for, pipeline):
    """Cancelling is not a way around the hourly limit (it would run a whole catalog each time)."""
    first = await (await gateway.post("/api/export", json={}, headers=headers_for())).json()
    assert (await gateway.post(f"/api/export/cancel/{first['exportId']}", headers=headers_for())).status == 200
    # still cancelling: the one-active-export rule (409) is checked first
    busy = await gateway.post("/api/export", json={}, headers=headers_for())
    assert busy.status == 409 and (await busy.json(content_type=None))["activeExportId"] == first["exportId"]
    await pipeline.append(ev.ExportCancelled(tenant_id="tenant_a", export_id=first["exportId"]))
    again = await gateway.post("/api/export", json={}, headers=headers_for())
    body = await again.json(content_type=None)
    assert again.status == 429 and body["code"] == "GROVE-EXPORT-003", body
    assert 3500 < int(again.headers["Retry-After"]) <= 3600


async def test_the_rate_window_passes_and_other_tenants_are_independent(start_gateway, headers_for, pipeline):
    gateway = await start_gateway(0, rate_window_s=1.0)
    first = await (await gateway.post("/api/export", json={}, headers=headers_for())).json()
    assert (await gateway.post("/api/export", json={}, headers=headers_for("tenant_b"))).status == 201
    await pipeline.complete("tenant_a", first["exportId"])
    limited = await gateway.post("/api/export", json={}, headers=headers_for())
    assert limited.status == 429
    assert (await limited.json(content_type=None))["detail"] == "One new export per second."  # not "per hour"
    deadline = asyncio.get_running_loop().time() + 5
    while True:  # poll with a deadline until the one-second window has passed
        resp = await gateway.post("/api/export", json={}, headers=headers_for())
        if resp.status == 201 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert resp.status == 201


async def test_a_reservation_without_events_frees_itself_after_the_timeout(start_gateway, headers_for, pipeline):
    gateway = await start_gateway(0, reservation_timeout_s=30.0)
    settings = gateway.app[SETTINGS]
    kv = pipeline.bus.admission
    assert kv_names(settings)[1] == "grove_admission"
    stale = datetime.now(UTC) - timedelta(seconds=31)
    await kv.put("tenant.tenant_c", json.dumps({"activeExportId": "exp_crashed", "reservedAt": stale.isoformat(),
                                                "lastStartedAt": None, "lastExportId": None}).encode())
    assert (await gateway.post("/api/export", json={}, headers=headers_for("tenant_c"))).status == 201
    fresh = datetime.now(UTC)
    await kv.put("tenant.tenant_d", json.dumps({"activeExportId": "exp_inflight", "reservedAt": fresh.isoformat(),
                                                "lastStartedAt": None, "lastExportId": None}).encode())
    busy = await gateway.post("/api/export", json={}, headers=headers_for("tenant_d"))
    assert busy.status == 409 and (await busy.json(content_type=None))["activeExportId"] == "exp_inflight"



async def test_an_idempotency_entry_that_names_no_export_is_not_remembered(gateway, headers_for, pipeline):
    """An ``idem.`` entry without a valid exportId (no gateway writes one; a bug or a hand edit could)
    was a KeyError, or a non-id handed back to the client: a 500 for every retry with that key for
    24 h. It is taken as not remembered: the request starts an export of its own."""
    key = "retry-after-damage"
    key_hash = hashlib.sha256(key.encode()).hexdigest()
    damaged = ({"body": "x"}, {"exportId": 7, "body": "x"}, {"exportId": "a.b", "body": "x"})
    for n, value in enumerate(damaged):
        tenant = f"tenant_idem{n}"  # one export an hour per tenant
        await pipeline.bus.admission.put(f"idem.{tenant}.{key_hash}", json.dumps(value).encode())
        resp = await gateway.post("/api/export", json={}, headers={**headers_for(tenant), "Idempotency-Key": key})
        assert resp.status == 201, (value, resp.status, await resp.text())
        export_id = (await resp.json())["exportId"]
        assert ev.is_valid_id(export_id) and export_id not in ("a.b", "7")


async def test_a_request_whose_append_outlasts_its_reservation_starts_nothing(start_gateway, headers_for, monkeypatch):
    """A reservation with no ExportRequested frees itself after GROVE's reservation timeout, so the
    request that made it must get its event into the log before then, or not at all. The append
    retries a bus that does not answer for up to ~36 s (six 5 s PubAck timeouts), longer than the
    30 s reservation: the tenant's next request was admitted after the reservation lapsed, and then
    the first one's append landed too — two exports of one tenant running at once. Here the first
    request's append is held (a slow bus) until a second request on another replica is admitted."""
    first = await start_gateway(0, reservation_timeout_s=3.0)
    second = await start_gateway(1, reservation_timeout_s=3.0)
    log, held, release = first.app[BUS].log, asyncio.Event(), asyncio.Event()
    append = log.append

    async def slow_bus(event, expected_seq, msg_id=None):
        held.set()
        await release.wait()
        return await append(event, expected_seq, msg_id)

    monkeypatch.setattr(log, "append", slow_bus)
    original = asyncio.create_task(first.post("/api/export", json={}, headers=headers_for("tenant_slow")))
    await asyncio.wait_for(held.wait(), 10)
    async with asyncio.timeout(15):  # the reservation lapses after 3 s: then another request is admitted
        while (later := await second.post("/api/export", json={}, headers=headers_for("tenant_slow"))).status != 201:
            assert later.status == 409, await later.text()
            await asyncio.sleep(0.1)
    admitted = (await later.json())["exportId"]
    release.set()
    answer = await asyncio.wait_for(original, 15)
    assert answer.status == 503, await answer.text()  # too late: its client retries, and is told of the other
    assert (await answer.json(content_type=None))["code"] == "GROVE-EXPORT-008"
    bus = second.app[BUS]
    info = await bus.js.stream_info(bus.log.stream, subjects_filter=f"{bus.log.prefix}.tenant_slow.*.ExportRequested")
    assert list(info.state.subjects or {}) == [f"{bus.log.prefix}.tenant_slow.{admitted}.ExportRequested"]
