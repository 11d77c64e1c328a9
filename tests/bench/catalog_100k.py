"""A tenant with 100,000 posts through the catalog service (its own process), on each content
adapter: how long the catalog step takes and the catalog process's peak RSS. Not a test (it takes
minutes: rendering 100,000 YAML front matters dominates), not in ``make bench``'s table yet:

    .venv/bin/python -m tests.bench.catalog_100k [--posts 100000] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import connect
from shared.content.factory import content_source, sqlite_dsn
from shared.core import events as ev
from shared.objectstore.factory import open_store
from tests.support.env import build, settings_for
from tests.support.pipeline import request_export, wait_status
from tests.support.postgres import fresh_database
from tests.support.stack import logs_of, start_stack

BODY = "lorem ipsum dolor sit amet " * 40  # ~1 KB a post


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process so far (its start-up too: about a second)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


async def measure(tmp: Path, nats_url: str, dsn: str, posts: int) -> str:
    values = settings_for(tmp, nats_url, content_dsn=dsn, heartbeat_ttl_s=3600.0)
    settings = build(values)
    content = content_source(settings)
    await content.init()
    tenant = "big_tenant"
    await content.insert("tenants", [{"id": tenant, "username": "big", "display_name": "Big", "email": "b@x.org",
                                      "created_at": 1}])
    for start in range(0, posts, 10_000):
        await content.insert("posts", [{
            "id": f"p{i:06d}", "tenant_id": tenant, "slug": f"post-{i}", "title": f"Post {i}", "description": "d",
            "markdown_content": f"{i} {BODY}", "tags": '["a"]', "status": "published", "featured_image": None,
            "published_at": 1_700_000_000 - i, "created_at": 1_700_000_000 - i, "updated_at": None}
            for i in range(start, min(posts, start + 10_000))])
    read_started = time.monotonic()
    assert sum([1 async for _ in content.posts(tenant)]) == posts
    read = time.monotonic() - read_started
    await content.close()
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "bench", ensure=True)
    stack = start_stack(tmp / "stack", values, services=("catalog",))
    try:
        export_id = await request_export(bus, tenant, include_images=False)
        state = await wait_status(bus, tenant, export_id, {"assembling", "failed"}, timeout=3600)
        if state.status != "assembling":
            raise RuntimeError(f"{state.failure}\n{logs_of(stack)}")
        events = [e async for _, e in bus.log.history(tenant, export_id)]
        started = next(e for e in events if isinstance(e, ev.CatalogStarted)).occurred_at
        cataloged = next(e for e in events if isinstance(e, ev.ExportCataloged))
        peak = _peak_rss_mib(stack.child("catalog").pid)  # type: ignore[arg-type]
        cpu = _cpu_s(stack.child("catalog").pid)  # type: ignore[arg-type]
    finally:
        stack.stop()
        await bus.close()
        await store.close()
    took = (cataloged.occurred_at - started).total_seconds()
    return (f"{dsn.split(':')[0]}: {posts:,} posts read in {read:.1f}s; catalog step {took:.1f}s, "
            f"catalog CPU {cpu:.1f}s (start-up included), catalog peak RSS {peak:.0f} MiB, {cataloged.member_count:,} members")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        nats = NatsServer(root / "nats", log_file=root / "nats.log").start()
        try:
            if args.only != "postgresql":
                print(asyncio.run(measure(root / "sqlite", nats.url, sqlite_dsn(root / "content.db"), args.posts)))
            if args.only != "sqlite":
                for dsn in fresh_database():
                    print(asyncio.run(measure(root / "pg", nats.url, dsn, args.posts)))
        finally:
            nats.stop()


if __name__ == "__main__":
    main()
