"""Fair to everyone: one tenant's huge exports do not starve the others.

Scaled to what CI's two cores afford: one tenant publishes three storage exports of 120 MB each
(360 MB, straight onto the bus, as a publisher that bypasses admission could), and 50 other tenants'
small exports start at the same moment. Each service replica gives one tenant at most
``tenant_concurrency`` (1) of its ``concurrency`` (4) slots, so the small exports keep three slots
and finish in about the time the same 50 take alone.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import logs_of, start_stack

MiB = 1024 * 1024
BIG_FILES, BIG_FILE = 3, 40 * MiB  # 120 MB per big export
BIG_EXPORTS = 3
SMALL = 50


async def _big_tenant(content: ContentSource, store: ObjectStore, settings: Settings) -> str:
    tenant = f"big_{uuid.uuid4().hex[:10]}"
    now = 1_700_000_000
    await content.insert("tenants", [{"id": tenant, "username": "big", "display_name": "Big",
                                      "email": "big@example.org", "created_at": now}])
    rows = []
    for i in range(BIG_FILES):
        key = f"{tenant}/uploads/video-{i}.mp4"  # already compressed: stored (level 0), as real videos are
        await store.put(settings.buckets.amber, key, os.urandom(BIG_FILE), "video/mp4")
        rows.append({"id": f"amb_{i}_{tenant}", "tenant_id": tenant, "filename": f"video-{i}.mp4",
                     "original_name": f"video-{i}.mp4", "r2_key": key, "size": BIG_FILE, "mime_type": "video/mp4",
                     "category": "uploads", "product": "amber", "uploaded_at": now - i})
    await content.insert("amber_files", rows)
    return tenant


async def _smalls(bus: Bus, tenants: list[str]) -> tuple[float, float, list[tuple[datetime, datetime]]]:
    """Start one small export per tenant at once; (makespan, slowest latency) from the log's times."""
    ids = await asyncio.gather(*(request_export(bus, t, include_images=False) for t in tenants))
    states = await asyncio.gather(*(wait_status(bus, t, e, timeout=300) for t, e in zip(tenants, ids, strict=True)))
    assert all(s.status == "complete" for s in states), [s.status for s in states]
    spans = [(s.created_at, s.completed.occurred_at) for s in states if s.created_at and s.completed]
    makespan = (max(end for _, end in spans) - min(start for start, _ in spans)).total_seconds()
    slowest = max((end - start).total_seconds() for start, end in spans)
    return makespan, slowest, spans


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_fifty_small_exports_finish_in_about_their_own_time_beside_a_tenants_huge_ones(
        values: dict[str, Any], bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings,
        tmp_path: Path) -> None:
    tenants = [(await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                  amber_bucket=settings.buckets.amber, posts=3, pages=1, images=0, files=0)).tenant_id
               for _ in range(SMALL)]
    big = await _big_tenant(content, store, settings)
    stack = start_stack(tmp_path / "stack", {**values, "min_part_size": 8 * MiB, "concurrency": 4})
    try:
        await _smalls(bus, tenants[:4])  # warm-up: imports, first connections, consumers
        alone, alone_slowest, _ = await _smalls(bus, tenants)

        started = time.monotonic()
        bigs = [await request_export(bus, big, mode="storage") for _ in range(BIG_EXPORTS)]
        together, together_slowest, spans = await _smalls(bus, tenants)
        big_states = [await wait_status(bus, big, e, timeout=600) for e in bigs]
        big_took = time.monotonic() - started
    finally:
        stack.stop()
    assert all(s.status == "complete" for s in big_states), ([s.failure for s in big_states], logs_of(stack))
    last_small_done = max(end for _, end in spans)
    size = sum(s.completed.size_bytes for s in big_states if s.completed)
    print(f"\nfairness: {SMALL} small exports alone {alone:.1f}s (slowest {alone_slowest:.1f}s); beside "
          f"{BIG_EXPORTS} huge exports of one tenant ({size / 1e6:.0f} MB in all, done in {big_took:.1f}s) "
          f"{together:.1f}s (slowest {together_slowest:.1f}s): {together / alone:.2f}x")
    assert last_small_done < max(s.completed.occurred_at for s in big_states if s.completed), \
        "the huge exports finished before the small ones: they did not run side by side"
    assert together <= 1.5 * alone + 3.0, f"small exports took {together:.1f}s beside the huge ones, {alone:.1f}s alone"

