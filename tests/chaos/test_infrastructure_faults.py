"""The bus restarting, a flaky store, a store gone for good, and every event redelivered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer
from services.devtools.stack.supervisor import Stack
from services.janitor.run import Janitor
from shared.bus.connect import Bus, connect
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core.keys import tenant_prefix
from shared.core.lifecycle import ExportState
from shared.objectstore.factory import open_store
from tests.chaos.harness import chaos_values, run_scenario
from tests.chaos.tally import Tally
from tests.support.env import build, s3_values
from tests.support.flaky_proxy import FlakyProxy
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import start_stack
from tests.support.wait import until

pytestmark = pytest.mark.chaos


async def test_nats_restarted_mid_export_with_the_same_store_dir_completes(tmp_path: Path, tally: Tally) -> None:
    nats = NatsServer(tmp_path / "nats", log_file=tmp_path / "nats.log").start()

    async def restart_nats(stack: Stack, bus: Bus, tenant: str, export_id: str) -> int:
        async def uploading() -> bool:  # the assembler waits before a part's upload: mid-archive
            return (tmp_path / "faults" / "assemble.upload.reached.count").exists()

        await until(uploading, 60, 0.02, "the assembler at a part's upload")
        state = (await bus.log.load(tenant, export_id)).state  # read just before the kill
        assert state.assembled is None, f"{state.status} when NATS was killed: the restart did not land mid-archive"
        nats.stop(kill=True)
        await asyncio.sleep(1.0)  # down for a while (the outage is the point, no condition to wait for)
        nats.start()
        return 1

    try:
        await run_scenario(tmp_path, nats.url, tally, action=restart_nats, slow="assemble.upload:0.2", images=16)
    finally:
        nats.stop()


async def test_a_flaky_store_with_slowdowns_and_dropped_connections_still_completes(
        tmp_path: Path, nats_server: NatsServer, moto_server: str, tally: Tally) -> None:
    proxy = await FlakyProxy(moto_server, error_rate=0.15, drop_rate=0.05).start()
    try:
        values = chaos_values(tmp_path, nats_server.url, **s3_values(proxy.url), min_part_size=5 * 1024 * 1024)
        values["s3"]["max_attempts"] = 8
        await run_scenario(tmp_path, nats_server.url, tally, values=values, slow="")
        assert proxy.faults > 5, f"only {proxy.faults} faults in {proxy.requests} requests"
    finally:
        await proxy.stop()


async def test_a_store_down_for_good_fails_the_export_after_three_retries_with_a_reason(
        tmp_path: Path, nats_server: NatsServer, moto_server: str) -> None:
    proxy = await FlakyProxy(moto_server).start()
    values = chaos_values(tmp_path, nats_server.url, **s3_values(proxy.url), min_part_size=5 * 1024 * 1024,
                          orphan_upload_age_s=0.0)
    values["s3"]["max_attempts"] = 2
    settings = build(values)
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "chaos", ensure=True)
    # Each part upload waits 2 s first: the store goes down in that window, after the upload was
    # opened and before its first part (a sleep of 0.3 s after "assembling" raced a fast machine:
    # the whole archive was assembled by then, and the finalizer failed instead).
    stack = start_stack(tmp_path / "stack", values, extra_env={"GROVE_FAULTS_SLOW": "assemble.upload:2"})
    try:
        seeded = await seed_tenant(content_source(settings), store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, images=30)
        export_id = await request_export(bus, seeded.tenant_id)

        async def opened() -> ExportState | None:
            state = (await bus.log.load(seeded.tenant_id, export_id)).state
            return state if state.upload is not None else None

        assert not (await until(opened, 30, 0.05, "the export's upload to be opened")).parts  # none uploaded yet
        proxy.down = True
        state = await wait_status(bus, seeded.tenant_id, export_id, timeout=120)
        assert state.status == "failed"
        assert state.failure and state.failure.step == "assemble"
        assert "after 4 attempts" in state.failure.reason and "did not answer" in state.failure.reason.lower()
        assert state.attempts_of(state.failure.step) == 3
        proxy.down = False  # the store comes back: nothing of the failed export may stay open
        # once a retry may no longer go on from its upload (lifecycle.kept_for_retry)
        await Janitor(settings, bus, store).run(datetime.now(UTC) + timedelta(days=settings.archive_ttl_days, minutes=1))
        assert await store.list_uploads(settings.buckets.exports, tenant_prefix(seeded.tenant_id)) == []
    finally:
        stack.stop()
        await bus.close()
        await store.close()
        await proxy.stop()


async def test_redelivering_every_event_to_every_service_changes_nothing(
        tmp_path: Path, nats_server: NatsServer, tally: Tally) -> None:
    values = chaos_values(tmp_path, nats_server.url)
    outcome = await run_scenario(tmp_path, nats_server.url, tally, values=values, slow="")
    settings = build(values)
    bus = await connect(settings, "chaos", ensure=True)
    try:
        s = outcome.state
        before = await bus.log.last_seq(s.tenant_id, s.export_id)
        for info in await bus.js.consumers_info(settings.stream_name):
            await bus.js.delete_consumer(settings.stream_name, info.name)
        stack = start_stack(tmp_path / "stack2", values)  # fresh durables: every event again, to everyone
        try:
            async def drained() -> bool:  # all six durables exist again and have nothing left
                infos = await bus.js.consumers_info(settings.stream_name)
                return len(infos) >= 6 and all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos)

            await until(drained, 60, 0.2, "every durable to re-consume the whole stream")
        finally:
            stack.stop()
        assert await bus.log.last_seq(s.tenant_id, s.export_id) == before
        emails = list(Path(settings.mail.outbox_dir).glob(f"{s.export_id}*.eml"))
        assert len(emails) == 1
    finally:
        await bus.close()
