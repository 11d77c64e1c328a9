"""``grove-export erase-tenant`` while a step still works on the tenant's export after the log has
called it cancelled. Real nats-server, services as processes, the filesystem store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.bus.connect import Bus
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.integration.operator.test_operator_erase_hostile import cli
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until


async def test_a_catalog_cancelled_mid_read_is_waited_for_and_what_it_wrote_erased(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, tmp_path: Path) -> None:
    """The canceller logs ExportCancelled once the upload is aborted (a cataloging export has none), so
    the log said cancelled at once while the catalog still read. Seen: erase said "nothing left in the
    stream, the KV buckets, the store ...", exit 0, and 4 s later the catalog wrote the tenant's
    snapshot.jsonl and texts.bin (its rendered posts) under exports/<tenant>/ — its ExportCataloged
    refused, its objects not, and with the log gone the janitor never removes them."""
    stack = start_stack(tmp_path / "stack", values, extra_env={"GROVE_FAULTS_SLOW": "catalog.read:4"})
    try:
        content = content_source(settings)
        await content.init()
        tenant = (await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                    amber_bucket=settings.buckets.amber, images=1)).tenant_id
        await content.close()
        export_id = await request_export(bus, tenant, include_images=False)
        await wait_status(bus, tenant, export_id, {"cataloging"}, 30)
        (Path(settings.store_root) / settings.buckets.exports).mkdir(parents=True, exist_ok=True)
        assert cli(values, "replay").returncode == 0

        out = cli(values, "erase-tenant", tenant, "--wait", "30")
        assert out.returncode == 0 and "nothing left" in out.stdout, out.stdout + out.stderr

        async def catalog_idle() -> bool:  # its run over: whatever it was going to write is written
            info = await bus.js.consumer_info(settings.stream_name, "catalog")
            return info.num_ack_pending == 0 and info.num_pending == 0

        await until(catalog_idle, 30, 0.2, "the catalog's run to end")
        assert await store.list_keys(settings.buckets.exports, f"exports/{tenant}/") == [], logs_of(stack)
    finally:
        stack.stop()
