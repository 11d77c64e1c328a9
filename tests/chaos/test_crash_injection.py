"""Kill anything, anywhere: SIGKILL at chosen points inside every service and at random moments;
after each, the archive equals `grove-export assemble` of its snapshot byte for byte."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from services.stack.natsserver import NatsServer
from services.stack.supervisor import Stack
from shared.bus import Bus
from tests.chaos.conftest import Tally
from tests.chaos.harness import random_kill, run_scenario

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


@pytest.mark.parametrize("seed", [int(os.environ.get("GROVE_CHAOS_SEED", "0")) or s for s in (11, 23, 47)])
async def test_random_kills_at_random_moments_change_nothing(seed: int, tmp_path: Path, nats_server: NatsServer,
                                                             tally: Tally) -> None:
    await run_scenario(tmp_path, nats_server.url, tally, action=random_kill(seed))


async def test_a_zombie_assembler_replica_cannot_fork_the_history(tmp_path: Path, nats_server: NatsServer,
                                                                  tally: Tally) -> None:
    """Freeze the replica that holds the export (SIGSTOP) past AckWait: the other replica takes over;
    then thaw it — the zombie's appends are fenced off and it stands down."""

    async def freeze_then_thaw(stack: Stack, bus: Bus, tenant: str, export_id: str) -> int:
        holder = await _holder(stack, bus, tenant, export_id)
        os.kill(holder, signal.SIGSTOP)
        await asyncio.sleep(5)  # > AckWait (2 s): the message goes to the other replica
        os.kill(holder, signal.SIGCONT)
        return 1

    outcome = await run_scenario(tmp_path, nats_server.url, tally, action=freeze_then_thaw,
                                 replicas={"assembler": 2}, slow="assemble.upload:0.3", images=20)
    producers = {e.producer for e in outcome.events}
    assert "assembler" in producers


async def _holder(stack: Stack, bus: Bus, tenant: str, export_id: str) -> int:
    """PID of the assembler replica whose heartbeat names this export."""
    import json

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            entry = await bus.heartbeats.get(f"{tenant}.{export_id}")
            beat = json.loads(entry.value or b"{}")
            if beat.get("step") == "assemble":
                pid = int(beat["worker"].rsplit("-", 1)[1])
                if pid in {c.pid for c in stack.children}:
                    return pid
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("no assembler picked the export up")
