"""A finalizer frozen after the store completed the archive and before its ExportCompleted, while
the janitor runs: the janitor finds the finalize step's heartbeat expired and fails the export; the
thawed finalizer's ExportCompleted is refused.

Real processes (nats-server, the filesystem store, the step services), the finalizer frozen with
SIGSTOP inside the window (``GROVE_FAULTS_SLOW=finalize.completed`` holds it there); the janitor
runs in this process against the same bus and store, as ``grove-export janitor`` does."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer
from services.janitor.run import Janitor
from shared.bus.connect import connect
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core.keys import export_prefix
from shared.objectstore import ObjectNotFound
from shared.objectstore.factory import open_store
from tests.chaos.harness import chaos_values
from tests.support.env import build
from tests.support.pipeline import cancel, request_export
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

pytestmark = pytest.mark.chaos


async def test_a_failed_exports_completed_archive_is_not_left_in_the_store(tmp_path: Path,
                                                                            nats_server: NatsServer) -> None:
    values = chaos_values(tmp_path, nats_server.url, heartbeat_ttl_s=2.0)
    settings = build(values)
    bucket = settings.buckets.exports
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "chaos", ensure=True)
    stack = start_stack(tmp_path / "stack", values, extra_env={"GROVE_FAULTS_SLOW": "finalize.completed:10"})
    content = content_source(settings)
    finalizer = next(c for c in stack.children if c.name == "finalizer")
    pid = finalizer.pid
    assert pid is not None
    frozen = False
    try:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=5, images=2)
        tenant = seeded.tenant_id
        export_id = await request_export(bus, tenant)

        async def completed_in_store() -> str | None:  # the finalizer now waits before its ExportCompleted
            a = (await bus.log.load(tenant, export_id)).state.assembled
            if a is None:
                return None
            try:
                await store.head(bucket, a.archive_key)
            except ObjectNotFound:
                return None
            return a.archive_key

        archive = await until(completed_in_store, 90, 0.05, "the store to complete the archive")
        os.kill(pid, signal.SIGSTOP)
        frozen = True
        names = [e.name() async for _, e in bus.log.history(tenant, export_id)]
        assert "FinalizeStarted" in names and "ExportCompleted" not in names, names  # inside the window
        assert not await cancel(bus, tenant, export_id)  # finalizing: a cancel is refused (README, Operating it)

        janitor = Janitor(settings, bus, store)

        async def failed_by_janitor() -> bool:
            await janitor.run()
            state = (await bus.log.load(tenant, export_id)).state
            return state.status == "failed"

        await until(failed_by_janitor, 30, 0.5, "the janitor to fail the export whose finalizer stopped")
        os.kill(pid, signal.SIGCONT)
        frozen = False

        async def refused() -> bool:
            return f"finalize {export_id}: the log moved under this run" in Path(finalizer.log_path).read_text()

        await until(refused, 30, 0.1, "the thawed finalizer's ExportCompleted to be refused")
        names = [e.name() async for _, e in bus.log.history(tenant, export_id)]
        assert "ExportCompleted" not in names and names.count("ExportFailedByJanitor") == 1, names
        # a run once the retry window is over (lifecycle.kept_for_retry): the failed export's objects are its to remove
        await janitor.run(datetime.now(UTC) + timedelta(days=settings.archive_ttl_days, minutes=1))
        left = [o.key for o in await store.list_keys(bucket, export_prefix(tenant, export_id))]
        assert left == [], (archive, left, logs_of(stack))
    finally:
        if frozen:
            os.kill(pid, signal.SIGCONT)
        stack.stop()
        await content.close()
        await bus.close()
        await store.close()
