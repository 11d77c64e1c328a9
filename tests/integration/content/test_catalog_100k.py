"""A tenant with 100,000 posts through the catalog service (its own process), on each adapter:
how long the catalog step takes and the catalog process's peak memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.stack.natsserver import NatsServer
from shared import events as ev
from shared.bus import connect
from shared.content.factory import content_source, sqlite_dsn
from shared.objectstore.factory import open_store
from tests.support.env import build, settings_for
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import logs_of, start_stack

POSTS = 100_000
BODY = "lorem ipsum dolor sit amet " * 40  # ~1 KB a post


@pytest.fixture(params=["sqlite", "postgresql"])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql":
        yield str(request.getfixturevalue("postgres_dsn"))
    else:
        yield sqlite_dsn(tmp_path / "content.db")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_a_100000_post_tenant_is_cataloged_in_bounded_time_and_memory(
        tmp_path: Path, nats_server: NatsServer, dsn: str) -> None:
    values = settings_for(tmp_path, nats_server.url, content_dsn=dsn)
    settings = build(values)
    content = content_source(settings)
    await content.init()
    tenant = "big_tenant"
    await content.insert("tenants", [{"id": tenant, "username": "big", "display_name": "Big", "email": "b@x.org",
                                      "created_at": 1}])
    for start in range(0, POSTS, 10_000):
        await content.insert("posts", [{
            "id": f"p{i:06d}", "tenant_id": tenant, "slug": f"post-{i}", "title": f"Post {i}",
            "description": "d", "markdown_content": f"{i} {BODY}", "tags": '["a"]', "status": "published",
            "featured_image": None, "published_at": 1_700_000_000 - i, "created_at": 1_700_000_000 - i,
            "updated_at": None} for i in range(start, start + 10_000)])
    await content.close()

    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "test")
    stack = start_stack(tmp_path / "stack", values, services=("catalog",))
    try:
        export_id = await request_export(bus, tenant, include_images=False)
        state = await wait_status(bus, tenant, export_id, {"assembling", "failed"}, timeout=1000)
        assert state.status == "assembling", (state.failure, logs_of(stack))
        events = [e async for _, e in bus.log.history(tenant, export_id)]
        started = next(e for e in events if isinstance(e, ev.CatalogStarted)).occurred_at
        cataloged = next(e for e in events if isinstance(e, ev.ExportCataloged))
        took = (cataloged.occurred_at - started).total_seconds()
        peak = _peak_rss_mib(stack.child("catalog").pid)  # type: ignore[arg-type]
    finally:
        stack.stop()
        await bus.close()
        await store.close()
    print(f"\ncatalog of {POSTS:,} posts from {dsn.split(':')[0]}: {took:.1f}s, peak RSS {peak:.0f} MiB")
    assert cataloged.item_counts == {"posts": POSTS, "pages": 0, "images": 0}
    assert cataloged.member_count == POSTS + 1  # README.md
    assert peak < 1024, f"catalog peak RSS {peak:.0f} MiB"
