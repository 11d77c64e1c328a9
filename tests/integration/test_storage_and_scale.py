"""Storage mode (Amber files), a tenant with 600 images on S3 with the assembler's memory measured,
and an export requested by publishing ExportRequested straight on the bus — all with the content in
PostgreSQL, as in production."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from services.devtools.stack.natsserver import NatsServer
from services.devtools.stack.supervisor import Stack
from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.env import s3_values, settings_for
from tests.support.pipeline import fetch_archive, request_export, wait_status
from tests.support.stack import logs_of, start_stack


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer, moto_server: str,
            module_postgres_dsn: str) -> Iterator[tuple[dict, Stack]]:
    """The services on S3 (moto), the catalog reading PostgreSQL: the production shape."""
    tmp = tmp_path_factory.mktemp("scale")
    values = settings_for(tmp, nats_server.url, **s3_values(moto_server), min_part_size=5 * 1024 * 1024,
                          content_dsn=module_postgres_dsn)
    stack = start_stack(tmp / "stack", values)
    yield values, stack
    stack.stop()


@pytest.fixture
def values(running: tuple[dict[str, Any], Stack]) -> dict[str, Any]:
    return running[0]


async def test_storage_mode_archives_every_amber_file_under_its_category(
        bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings) -> None:
    seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                               amber_bucket=settings.buckets.amber, posts=2, images=1, files=7)
    export_id = await request_export(bus, seeded.tenant_id, mode="storage")
    state = await wait_status(bus, seeded.tenant_id, export_id)
    archive = await fetch_archive(store, settings, state)
    files = [m for m in archive.manifest["members"] if m["path"].startswith("files/")]
    assert len(files) == 7
    assert not [n for n in archive.names() if n.startswith(("posts/", "media/"))]
    rows = {r["id"]: r async for r in content.amber_files(seeded.tenant_id)}
    for m in files:
        row = rows[m["source_id"]]
        assert m["path"].startswith(f"files/{row['category']}/")
        assert archive.zf.read(m["path"]) == await store.read(settings.buckets.amber, row["r2_key"])
    assert state.completed and state.completed.item_counts == {"files": 7}


@pytest.mark.slow
async def test_600_images_complete_on_s3_with_flat_assembler_memory(
        bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings,
        running: tuple[dict, Stack]) -> None:
    """The spec's '500+ images' load test; the assembler is a separate process, moto another."""
    seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                               amber_bucket=settings.buckets.amber, posts=50, images=600, files=0,
                               image_size=(400, 300))
    assembler = psutil.Process(running[1].child("assembler").pid)
    started = time.monotonic()
    export_id = await request_export(bus, seeded.tenant_id)
    state = await wait_status(bus, seeded.tenant_id, export_id, timeout=600)
    took = time.monotonic() - started
    assert state.status == "complete", (state.failure, logs_of(running[1]))
    peak_kb = _peak_rss_kb(assembler.pid)
    archive = await fetch_archive(store, settings, state)
    assert len([n for n in archive.names() if n.startswith("media/")]) == 600
    print(f"\n600-image export: {took:.1f}s, archive {state.completed.size_bytes / 1e6:.1f} MB, "
          f"{len(archive.names())} members, assembler peak RSS {peak_kb / 1024:.0f} MiB")
    assert peak_kb < 300 * 1024, f"assembler peak RSS {peak_kb / 1024:.0f} MiB"


def _peak_rss_kb(pid: int) -> int:
    """VmHWM: the process's peak resident set size since it started (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc")
