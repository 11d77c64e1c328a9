"""A step that hangs in a live process — the catalog held in a sleep by a fault, its process well
and its heartbeat fresh — is stopped after GROVE_STALL_AFTER_S, retried, and then fails the export
with the reason, on a real NATS with the real catalog service. Before, it stayed "cataloging" for
ever: its own keep-alive kept it from every other replica and from the janitor."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.env import settings_for
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import logs_of, start_stack


@pytest.fixture
def values(tmp_path: Path, nats_server: NatsServer, content_dsn: str) -> dict[str, Any]:
    return settings_for(tmp_path, nats_server.url, content_dsn=content_dsn, stall_after_s=1.5, step_attempts=2,
                        retry_base_delay_s=0.2)


async def test_a_catalog_that_hangs_is_stopped_retried_and_then_fails_the_export(
        values: dict[str, Any], bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings,
        tmp_path: Path) -> None:
    seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                               amber_bucket=settings.buckets.amber, posts=2, images=1, files=0)
    stack = start_stack(tmp_path / "stack", values, services=("catalog",),
                        extra_env={"GROVE_FAULTS_SLOW": "catalog.read:3600"})  # an hour: a hang
    try:
        catalog = stack.child("catalog").proc
        assert catalog is not None
        started = time.monotonic()
        export_id = await request_export(bus, seeded.tenant_id)
        state = await wait_status(bus, seeded.tenant_id, export_id, {"failed"}, timeout=60)
        took = time.monotonic() - started
        names = [e.name() async for _, e in bus.log.history(seeded.tenant_id, export_id)]
        assert names == ["ExportRequested", "CatalogStarted", "CatalogAttemptFailed", "ExportFailedAtCatalog"], \
            logs_of(stack)
        failed = [e async for _, e in bus.log.history(seeded.tenant_id, export_id)][2]
        assert isinstance(failed, ev.CatalogAttemptFailed) and failed.step == "catalog"
        assert failed.reason == "the catalog step made no progress for 1.5 s"
        assert state.failure is not None and state.failure.step == "catalog"
        assert "after 2 attempts: the catalog step made no progress for 1.5 s" in state.failure.reason
        assert took >= 3.0  # two attempts, each stopped only after 1.5 s without progress
        assert catalog.poll() is None  # stopped by its own worker, not a crash or a restart
    finally:
        stack.stop()
