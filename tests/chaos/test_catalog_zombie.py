"""A catalog replica frozen past the takeover of its export, thawed after the other replica logged
its snapshot and the tenant edited a post: it renders the edited content, stores it and is refused.

Seen before each run had keys of its own: the thawed run wrote ``work/snapshot.jsonl``, the one key
every run wrote, over the snapshot the other run had logged, and the export failed after its
attempts ("the frozen snapshot does not match its checksum"): the person got a failure email.
Real processes (nats-server, the filesystem store, two catalog replicas), frozen with SIGSTOP."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import connect
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core.keys import heartbeat_key, work_prefix
from shared.objectstore.factory import open_store
from tests.chaos.harness import chaos_values
from tests.support.env import build
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import start_stack
from tests.support.wait import until

pytestmark = pytest.mark.chaos


async def test_a_catalog_thawed_after_the_takeover_overwrites_nothing_logged(tmp_path: Path,
                                                                            nats_server: NatsServer) -> None:
    values = chaos_values(tmp_path, nats_server.url, ack_wait_s=3.0)
    settings = build(values)
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "chaos", ensure=True)
    # the first catalog run is held at its read (it beats meanwhile) and frozen there, long before it
    # stores anything; released then, so the other replica's run and the thawed one read on
    held = tmp_path / "held"
    held.mkdir()
    stack = start_stack(tmp_path / "stack", values, replicas={"catalog": 2},
                        extra_env={"GROVE_FAULTS_HOLD": "catalog.read:60", "GROVE_FAULTS_DIR": str(held)})
    content = content_source(settings)
    try:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=5, images=1)
        tenant = seeded.tenant_id
        export_id = await request_export(bus, tenant)

        async def holder() -> int | None:
            try:
                beat = json.loads((await bus.heartbeats.get(heartbeat_key("catalog", tenant, export_id))).value)
                return int(beat["worker"].rsplit("-", 1)[1])
            except Exception:  # noqa: BLE001 - no beat yet
                return None

        async def holding() -> int | None:  # it beats from inside its held read
            return await holder() if (held / "catalog.read.reached.count").exists() else None

        zombie = await until(holding, 30, 0.02, "the catalog run's heartbeat, held in its read")
        os.kill(zombie, signal.SIGSTOP)
        assert (await bus.log.load(tenant, export_id)).state.cataloged is None  # frozen before its snapshot
        (held / "catalog.read.release").touch()
        assembler = next(c for c in stack.children if c.name == "assembler")
        os.kill(assembler.pid, signal.SIGSTOP)  # the logged snapshot stays unread until the zombie is done
        try:
            async def cataloged() -> str | None:
                c = (await bus.log.load(tenant, export_id)).state.cataloged
                return c.snapshot_key if c is not None else None

            logged = await until(cataloged, 60, 0.1, "the other replica's ExportCataloged")
            db = sqlite3.connect(values["content_dsn"].removeprefix("sqlite:///"))
            db.execute("UPDATE posts SET markdown_content = markdown_content || ' edited' WHERE tenant_id = ?",
                       (tenant,))
            db.commit()
            db.close()
        finally:
            os.kill(zombie, signal.SIGCONT)
        zombie_log = next(c.log_path for c in stack.children if c.pid == zombie)

        async def refused() -> bool:  # the thawed run stored its snapshot and was refused at its append
            return f"catalog {export_id}: the log moved under this run" in Path(zombie_log).read_text()

        await until(refused, 60, 0.1, "the thawed catalog run to be refused")
        keys = [o.key for o in await store.list_keys(settings.buckets.exports, work_prefix(tenant, export_id))]
        assert logged in keys and [k for k in keys if "/snapshot" in k] == [logged], keys  # its own went again
        os.kill(assembler.pid, signal.SIGCONT)
        state = await wait_status(bus, tenant, export_id, {"complete", "failed", "cancelled"}, 120)
        assert state.status == "complete", (state.status, state.failure)
        assert state.cataloged is not None and state.cataloged.snapshot_key == logged
    finally:
        stack.stop()
        await content.close()
        await bus.close()
        await store.close()
