"""A request stamped in the years 1–999 (the publisher's clock; the contract takes any time in years
1–9999 with its zone) names and describes its archive with a four-digit year, as ISO 8601 writes it.
glibc's ``strftime("%Y")`` writes year 5 as ``5``: the archive was ``grove-export-autumn-5-03-01.zip``,
manifest.json's ``created_at`` ``"5-03-01T12:00:00Z"`` (no ISO 8601 reader takes it:
``datetime.fromisoformat`` raises) and the README "made … on 5-03-01"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.pipeline import fetch_archive, wait_status
from tests.support.stack import logs_of, start_stack


async def test_an_early_year_keeps_four_digits_in_the_archive(values: dict[str, Any], bus: Bus, store: ObjectStore,
                                                               content: ContentSource, settings: Settings,
                                                               tmp_path: Path) -> None:
    tenant = (await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                amber_bucket=settings.buckets.amber, posts=1, pages=0, images=0, files=0)).tenant_id
    stack = start_stack(tmp_path / "stack", values, services=("catalog", "assembler", "finalizer"))
    try:
        event = ev.ExportRequested(export_id="exp_early", tenant_id=tenant, user_id="u", user_email="a@example.org",
                                   username="autumn", occurred_at=datetime(5, 3, 1, 12, 0, tzinfo=UTC),
                                   delivery_method="download")
        await bus.log.append(event, 0)
        state = await wait_status(bus, tenant, "exp_early", timeout=60)
        assert state.status == "complete", logs_of(stack)
        assert state.completed is not None
        assert state.completed.archive_key.endswith("/grove-export-autumn-0005-03-01.zip"), state.completed.archive_key
        archive = await fetch_archive(store, settings, state)
        assert archive.manifest["created_at"] == "0005-03-01T12:00:00Z"
        assert datetime.fromisoformat(archive.manifest["created_at"]) == event.occurred_at
        assert "on 0005-03-01 at 12:00 UTC" in archive.zf.read("README.md").decode()
    finally:
        stack.stop()
