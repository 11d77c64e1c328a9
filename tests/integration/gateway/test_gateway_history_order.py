"""The history's "most recent" is the order the requests reached the log, not the time a publisher wrote.

``occurred_at`` of an ExportRequested is whatever its publisher wrote (an API gateway of one's own,
its clock). Before, the history was ordered by it: one request stamped in 2099 stayed first — the
export page's "Your latest export" — whatever came after, and a publisher whose clock said 1970 put
its new export below the 10 the history shows, as if it had never been asked for.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.core import events as ev


async def request(pipeline, export_id: str, at: datetime) -> None:
    await pipeline.bus.log.append(ev.ExportRequested(
        tenant_id="tenant_a", export_id=export_id, user_id="u1", user_email="u1@example.org", username="u",
        occurred_at=at, producer="my-gateway"), 0)


async def history(gateway, headers_for) -> list[str]:
    resp = await gateway.get("/api/export/history", headers=headers_for())
    assert resp.status == 200
    return [item["exportId"] for item in (await resp.json())["exports"]]


async def test_the_latest_request_comes_first_whatever_time_its_publisher_wrote(gateway, pipeline, headers_for):
    await request(pipeline, "exp_from_2099", datetime(2099, 1, 1, tzinfo=UTC))
    await pipeline.fail("tenant_a", "exp_from_2099")
    for n in range(10):
        await request(pipeline, f"exp_older_{n}", datetime(2026, 1, 1, n, tzinfo=UTC))
        await pipeline.fail("tenant_a", f"exp_older_{n}")
    created = await gateway.post("/api/export", json={}, headers=headers_for())
    assert created.status == 201
    latest = (await created.json())["exportId"]
    await request(pipeline, "exp_clock_at_1970", datetime(1970, 1, 1, tzinfo=UTC))
    await pipeline.settle(gateway)

    shown = await history(gateway, headers_for)
    assert shown[:2] == ["exp_clock_at_1970", latest]
    assert "exp_from_2099" not in shown  # the oldest request of the twelve: past the 10 most recent
