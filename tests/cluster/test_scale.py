"""Horizontal scale: three assembler replicas share one durable consumer; 20 tenants export at once.

Every export completes with an archive byte-identical to ``grove-export assemble`` of its snapshot,
and the work spreads: at least two replicas assembled exports. Attribution is honest and per
process: each replica's heartbeat names its worker (hostname-pid), and each replica counts its own
part uploads in a fault directory of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import Bus
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.lifecycle import ExportState
from shared.objectstore.factory import open_store
from tests.chaos.conftest import Tally
from tests.chaos.harness import Outcome, check
from tests.cluster.procs import Procs, connect_bus, count_lines
from tests.support.env import build, settings_for, to_env
from tests.support.pipeline import request_export
from tests.support.wait import until

TENANTS = 20
REPLICAS = 3


@pytest.mark.slow
async def test_twenty_tenants_at_once_spread_over_three_assembler_replicas(tmp_path: Path,
                                                                         nats_server: NatsServer) -> None:
    values = settings_for(tmp_path, nats_server.url, min_part_size=256 * 1024, ack_wait_s=5.0,
                          progress_interval_s=0.5, heartbeat_ttl_s=60.0)
    s = build(values)
    bus: Bus = await connect_bus(s, [nats_server.url])
    store = await open_store(s, create_buckets=True)
    procs = Procs(tmp_path / "logs", to_env(values))
    try:
        db = content_source(s)
        tenants = [await seed_tenant(db, store, images_bucket=s.buckets.images, amber_bucket=s.buckets.amber,
                                     images=6, posts=6, files=2, seed=i) for i in range(TENANTS)]
        for svc in ("catalog", "finalizer", "notifier"):
            procs.run(svc, svc)
        faults: dict[str, Path] = {}
        for i in range(1, REPLICAS + 1):
            tag = f"assembler-{i}"
            faults[tag] = tmp_path / "faults" / tag
            faults[tag].mkdir(parents=True)
            procs.run(tag, "assembler", {"GROVE_FAULTS_DIR": str(faults[tag]),
                                         "GROVE_FAULTS_SLOW": "assemble.upload:0.1"})
        await asyncio.sleep(1.0)
        procs.assert_alive()
        pid_of = {tag: c.proc.pid for tag, c in procs.children.items() if c.proc}

        t0 = time.monotonic()
        ids = await asyncio.gather(*(request_export(bus, t.tenant_id) for t in tenants))
        pending = dict(zip(ids, (t.tenant_id for t in tenants), strict=True))
        finished: dict[str, ExportState] = {}

        async def all_done() -> bool:
            procs.assert_alive()
            for export_id, tenant in list(pending.items()):
                with contextlib.suppress(Exception):
                    st = (await bus.log.load(tenant, export_id)).state
                    if st.status in ("complete", "failed", "cancelled"):
                        finished[export_id] = st
                        del pending[export_id]
            return not pending

        await until(all_done, 240, 0.5, f"{TENANTS} exports to finish")
        duration = time.monotonic() - t0
        bad = {i: (st.status, st.failure) for i, st in finished.items() if st.status != "complete"}
        assert not bad, f"{bad}\n{procs.logs()}"

        exports_by = collections.defaultdict(set)
        for export_id, st in finished.items():
            events = [e async for _, e in bus.log.history(st.tenant_id, export_id)]
            await check(s, store, Outcome(st, events, 0, 0), tmp_path, Tally())
            # who assembled it: every event names the replica that appended it (host-pid)
            for e in events:
                if isinstance(e, ev.PartUploaded | ev.ArchiveAssembled):
                    for tag, pid in pid_of.items():
                        if tag.startswith("assembler") and e.worker.endswith(f"-{pid}"):
                            exports_by[tag].add(export_id)
        spread = {tag: len(exports_by.get(tag, ())) for tag in faults}
        uploads = {tag: count_lines(d / "uploaded.count") for tag, d in faults.items()}
        parts = sum(len(st.parts) for st in finished.values())
        mib = sum(st.completed.size_bytes for st in finished.values() if st.completed) / 2**20
        covered = set().union(*exports_by.values()) if exports_by else set()
        print(f"\n[scale] {TENANTS} exports ({mib:.0f} MiB, {parts} parts) complete in {duration:.1f}s with "
              f"{REPLICAS} assembler replicas; part uploads per replica (each replica's own counter): {uploads}; "
              f"exports with parts logged per replica (the events' worker field, {len(covered)}/{TENANTS} "
              f"exports): {spread}")
        assert sum(1 for n in uploads.values() if n > 0) >= 2, uploads
        assert sum(1 for n in spread.values() if n > 0) >= 2, spread
        assert sum(uploads.values()) >= parts  # more only if a slow replica's message was redelivered
    finally:
        procs.stop()
        await bus.close()
        await store.close()
