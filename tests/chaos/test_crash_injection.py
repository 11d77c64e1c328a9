"""Kill anything, anywhere: SIGKILL at chosen points inside every service and at random moments;
after each, the archive equals `grove-export assemble` of its snapshot byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer
from services.devtools.stack.supervisor import Stack
from shared.bus.connect import Bus, connect
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.keys import heartbeat_key
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.chaos.harness import chaos_values, random_kill, run_scenario, wait_notified
from tests.chaos.tally import Tally
from tests.support.env import build
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

pytestmark = pytest.mark.chaos

CHOSEN = [
    "assemble.part_logged@3",          # after k parts
    "assemble.before_upload@4",        # mid-part: cut, not yet uploaded
    "assemble.uploaded_not_logged@2",  # between an upload and its event
    "assemble.before_ack@1",           # between ArchiveAssembled and the ack
    "catalog.started@1",
    "catalog.snapshot_stored@1",       # snapshot stored, ExportCataloged not appended
    "catalog.before_ack@1",
    "finalize.started@1",              # FinalizeStarted appended, upload not completed
    "finalize.completed_not_logged@1",  # completed, ExportCompleted not appended
    "finalize.before_ack@1",
    "notify.sent_not_logged@1",
    "notify.before_ack@1",
    "assemble.part_logged@2,catalog.before_ack@1,finalize.started@1",  # several in one export
]


@pytest.mark.parametrize("fault", CHOSEN)
async def test_a_crash_at_a_chosen_point_changes_nothing_in_the_archive(
        fault: str, tmp_path: Path, nats_server: NatsServer, tally: Tally) -> None:
    outcome = await run_scenario(tmp_path, nats_server.url, tally, faults=fault)
    assert outcome.kills == len(fault.split(","))


async def test_a_crash_with_the_catalog_reading_postgresql_changes_nothing_in_the_archive(
        tmp_path: Path, nats_server: NatsServer, tally: Tally, postgres_dsn: str) -> None:
    """The catalog is killed after storing the snapshot and again before its ack, the assembler
    after two parts; the content is in PostgreSQL, read again by the restarted catalog."""
    fault = "catalog.snapshot_stored@1,catalog.before_ack@1,assemble.part_logged@2"
    values = chaos_values(tmp_path, nats_server.url, content_dsn=postgres_dsn)
    outcome = await run_scenario(tmp_path, nats_server.url, tally, faults=fault, values=values)
    assert outcome.kills == 3


@pytest.mark.parametrize("seed", [int(os.environ.get("GROVE_CHAOS_SEED", "0")) or s for s in (11, 23, 47)])
async def test_random_kills_at_random_moments_change_nothing(seed: int, tmp_path: Path, nats_server: NatsServer,
                                                             tally: Tally) -> None:
    landed: list[str] = []
    # long enough (slow uploads, more images) that kills within 3 s land while the export runs
    await run_scenario(tmp_path, nats_server.url, tally, action=random_kill(seed, landed=landed),
                       slow="assemble.upload:0.3", images=40)
    mid = [k for k in landed if k.rsplit("@", 1)[1] not in ("complete", "failed", "cancelled", "expired")]
    assert mid, f"no kill landed mid-export (kills and the status right after each: {landed})"


async def test_a_zombie_assembler_replica_cannot_fork_the_history(tmp_path: Path, nats_server: NatsServer,
                                                                  tally: Tally) -> None:
    """Freeze the replica that holds the export (SIGSTOP) past AckWait: the other replica takes over;
    then thaw it — the zombie's appends are fenced off and it stands down."""
    seen: dict[str, int] = {}
    zombie_log: list[Path] = []

    async def freeze_then_thaw(stack: Stack, bus: Bus, tenant: str, export_id: str) -> int:
        zombie = await _holder(stack, bus, tenant, export_id)

        async def logged_a_part(pid: int) -> bool:
            return any([isinstance(e, ev.PartUploaded) and e.worker.endswith(f"-{pid}")
                        async for _, e in bus.log.history(tenant, export_id)])

        await until(lambda: logged_a_part(zombie), 30, 0.02, "the holder to log a part")
        os.kill(zombie, signal.SIGSTOP)  # frozen past AckWait: the message goes to the other replica
        try:
            frozen_at = (await bus.log.load(tenant, export_id)).state  # parts left: a takeover has work to do
            assert frozen_at.assembled is None, f"the holder was frozen after its last part ({len(frozen_at.parts)})"
            seen["zombie"] = zombie
            zombie_log.append(next(c.log_path for c in stack.children if c.pid == zombie))
            seen["taker"] = taker = await _holder(stack, bus, tenant, export_id, other_than=zombie)
            await until(lambda: logged_a_part(taker), 30, 0.05, "the other replica to log a part")
        finally:
            os.kill(zombie, signal.SIGCONT)  # thawed mid-part: its next append must lose the fence
        return 1

    outcome = await run_scenario(tmp_path, nats_server.url, tally, action=freeze_then_thaw,
                                 replicas={"assembler": 2}, slow="assemble.upload:0.3", images=20)
    host = socket.gethostname()
    zombie, taker = f"{host}-{seen['zombie']}", f"{host}-{seen['taker']}"
    by_worker = [(e.worker, e.name()) for e in outcome.events if e.producer == "assembler"]
    assert any(w == zombie for w, _ in by_worker), f"the zombie appended nothing before its freeze: {by_worker}"
    assert any(w == taker for w, _ in by_worker), f"the other replica never appended: {by_worker}"
    last_of_zombie = max(i for i, (w, _) in enumerate(by_worker) if w == zombie)
    first_of_taker = min(i for i, (w, _) in enumerate(by_worker) if w == taker)
    assert last_of_zombie < first_of_taker, f"the thawed zombie appended after the takeover: {by_worker}"
    zombie_said = zombie_log[0].read_text()
    assert f"assemble {outcome.state.export_id}: standing down" in zombie_said, zombie_said[-3000:]


async def test_a_zombie_that_wakes_after_the_takeover_completed_opens_no_upload_and_appends_nothing(
        tmp_path: Path, nats_server: NatsServer, tally: Tally) -> None:
    """Freeze the holder (SIGSTOP) with part 1 uploaded but not yet logged and its last part waiting
    to upload; the other replica takes over and the export completes; then thaw it. Part 1's event
    loses the fence, and the last part meets NoSuchUpload (its upload was completed): the zombie must
    stand down — no new upload opened, nothing appended after ExportCompleted (run_scenario checks
    both: no upload left open under the export, one history)."""
    values = chaos_values(tmp_path, nats_server.url, parts_in_flight=1)
    settings = build(values)
    counted = tmp_path / "faults" / "uploaded.count"
    seen: dict[str, int] = {}

    async def freeze_until_complete(stack: Stack, bus: Bus, tenant: str, export_id: str) -> int:
        zombie = await _holder(stack, bus, tenant, export_id)
        store = await open_store(settings)
        try:
            async def part_1_uploaded_not_logged() -> bool:
                state = (await bus.log.load(tenant, export_id)).state
                if state.upload is None or not counted.exists() or len(counted.read_text().split()) != 1:
                    return False
                listed = await store.list_parts(settings.buckets.exports, state.upload.archive_key,
                                                state.upload.upload_id)
                return [p.part_number for p in listed] == [1] and not state.parts

            await until(part_1_uploaded_not_logged, 30, 0.02, "part 1 uploaded, not logged")
            os.kill(zombie, signal.SIGSTOP)
        finally:
            await store.close()
        try:
            # the interleaving: frozen with part 1 unlogged and part 2 not uploaded yet
            assert len(counted.read_text().split()) == 1
            assert not (await bus.log.load(tenant, export_id)).state.parts
            seen["taker"] = await _holder(stack, bus, tenant, export_id, other_than=zombie)
            await wait_status(bus, tenant, export_id, {"complete"}, 60)
            await wait_notified(bus, tenant, export_id)
        finally:
            os.kill(zombie, signal.SIGCONT)
        seen["zombie"] = zombie
        zombie_log = next(c.log_path for c in stack.children if c.pid == zombie)

        async def zombie_woke_and_ended() -> bool:  # its run is over, and no assemble message is unacked
            info = await bus.js.consumer_info(settings.stream_name, "assembler")
            said = Path(zombie_log).read_text()
            ended = any(f"assemble {export_id}{how}" in said for how in (": standing down", ": done", ": ended"))
            return info.num_ack_pending == 0 and ended

        await until(zombie_woke_and_ended, 30, 0.1, "the thawed zombie's run to end")
        return 1

    outcome = await run_scenario(tmp_path, nats_server.url, tally, action=freeze_until_complete,
                                 replicas={"assembler": 2}, values=values,
                                 slow="assemble.upload:2,assemble.log_part:3", images=1)
    assert len(outcome.state.parts) == 2, "the export must have two parts for the interleaving"
    host = socket.gethostname()
    by_zombie = [e.name() for e in outcome.events if e.producer == "assembler"
                 and e.worker == f"{host}-{seen['zombie']}"]
    assert by_zombie == ["UploadStarted"], by_zombie


async def _holder(stack: Stack, bus: Bus, tenant: str, export_id: str, other_than: int = 0) -> int:
    """PID of the assembler replica whose heartbeat names this export (not ``other_than``)."""
    import json

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            entry = await bus.heartbeats.get(heartbeat_key("assemble", tenant, export_id))
            beat = json.loads(entry.value or b"{}")
            if beat.get("step") == "assemble":
                pid = int(beat["worker"].rsplit("-", 1)[1])
                if pid != other_than and pid in {c.pid for c in stack.children}:
                    return pid
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"no assembler (other than {other_than or 'none'}) picked the export up")


@dataclass
class Loop:
    settings: Settings
    bus: Bus
    stack: Stack
    tenant_id: str
    export_id: str
    fault_dir: Path

    def kills(self, point: str) -> int:
        return len((self.fault_dir / f"{point}.kills.count").read_text().split())


@contextlib.asynccontextmanager
async def crash_loop(tmp_path: Path, nats_url: str, point: str, deaths: int) -> AsyncIterator[Loop]:
    """A stack whose process dies every time it passes ``point``, and one export requested."""
    values = chaos_values(tmp_path, nats_url, step_deaths=deaths)
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    settings = build(values)
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "chaos", ensure=True)
    stack = start_stack(tmp_path / "stack", values,
                        extra_env={"GROVE_FAULTS": f"{point}@always", "GROVE_FAULTS_DIR": str(fault_dir)})
    content = content_source(settings)
    try:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=3, pages=1, images=1)
        export_id = await request_export(bus, seeded.tenant_id)
        yield Loop(settings, bus, stack, seeded.tenant_id, export_id, fault_dir)
    finally:
        stack.stop()
        await content.close()
        await bus.close()
        await store.close()


def _outbox(loop: Loop) -> list[Path]:
    return sorted(Path(loop.settings.mail.outbox_dir).glob(f"{loop.export_id}*.eml"))


async def test_a_step_killed_every_time_fails_the_export_with_an_email_instead_of_looping(
        tmp_path: Path, nats_server: NatsServer) -> None:
    """A crash loop (the catalog's process dies on every run of this export, as out of memory on
    one huge tenant would): each redelivered run finds the heartbeat the dead one left and counts
    it; after ``step_deaths`` in a row the export fails and the person gets the failure email,
    instead of the step being redelivered and killed for ever. The first run dies before its first
    beat and leaves none, so the count starts with the second death: 4 kills for 3 deaths."""
    async with crash_loop(tmp_path, nats_server.url, "catalog.started", 3) as loop:
        state = await wait_status(loop.bus, loop.tenant_id, loop.export_id, {"complete", "failed", "cancelled"}, 120)
        assert state.status == "failed", f"{state.status}\n{logs_of(loop.stack)}"
        assert state.failure is not None and "stopped 3 times in a row" in state.failure.reason, state.failure
        assert loop.kills("catalog.started") == 4
        state = await wait_notified(loop.bus, loop.tenant_id, loop.export_id)
        assert state.notification == "sent", state.notification_reason
        assert [p.name for p in _outbox(loop)] == [f"{loop.export_id}.failed.{loop.tenant_id}.eml"]
        assert "stopped 3 times in a row" in _outbox(loop)[0].read_text()


async def test_a_notifier_killed_after_every_send_stops_sending_and_the_export_stays_complete(
        tmp_path: Path, nats_server: NatsServer) -> None:
    """The notifier dies after each send, before logging it (SMTP cannot drop a repeat, so each run
    would mail the person again): after ``step_deaths`` deaths in a row it records
    NotificationFailed instead of sending again, and the export stays complete (email is no gate)."""
    async with crash_loop(tmp_path, nats_server.url, "notify.sent_not_logged", 3) as loop:
        state = await wait_status(loop.bus, loop.tenant_id, loop.export_id, {"complete", "failed", "cancelled"}, 120)
        assert state.status == "complete", f"{state.status}\n{logs_of(loop.stack)}"
        state = await wait_notified(loop.bus, loop.tenant_id, loop.export_id, timeout=120)
        assert state.notification == "failed", state.notification
        assert state.notification_reason is not None and "stopped 3 times in a row" in state.notification_reason
        assert state.status == "complete"
        assert loop.kills("notify.sent_not_logged") == 4  # 4 sends (one outbox file, rewritten), then none
        assert [p.name for p in _outbox(loop)] == [f"{loop.export_id}.ready.{loop.tenant_id}.eml"]
