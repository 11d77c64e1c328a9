"""A janitor run that judged an export dead (its assembler frozen, the heartbeat expired), paused
(SIGSTOP) before its ExportFailed, thawed after the assembler was thawed and logged a part: its
ExportFailed is refused, the export completes — and the run's report says it failed nothing.

Seen before: the fence held, but the run printed 'fail exp_… (no heartbeat since …)' and 'fail 1
stuck exports' for an export that went on to complete: the operator reading it was told of a
failure that never happened. Real processes (nats-server, the filesystem store, the step services,
``grove-export janitor``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import connect
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.objectstore.factory import open_store
from tests.chaos.harness import chaos_values
from tests.support.env import build, to_env
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import start_stack
from tests.support.wait import until

pytestmark = pytest.mark.chaos


async def test_a_janitor_whose_failure_of_a_resumed_export_is_refused_reports_none(
        tmp_path: Path, nats_server: NatsServer) -> None:
    values = chaos_values(tmp_path, nats_server.url, heartbeat_ttl_s=2.0)
    settings = build(values)
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "chaos", ensure=True)
    held = tmp_path / "held"  # the assembler's fault marker: it waits before uploading a part
    held.mkdir()
    stack = start_stack(tmp_path / "stack", values,
                        extra_env={"GROVE_FAULTS_SLOW": "assemble.upload:1", "GROVE_FAULTS_DIR": str(held)})
    assembler = next(c for c in stack.children if c.name == "assembler").pid
    assert assembler is not None
    content = content_source(settings)
    faults = tmp_path / "faults"
    faults.mkdir()
    env = {**os.environ, **to_env(values), "GROVE_FAULTS_SLOW": "janitor.judged:8", "GROVE_FAULTS_DIR": str(faults)}
    janitor: asyncio.subprocess.Process | None = None
    frozen: list[int] = []
    try:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=5, images=12)
        tenant = seeded.tenant_id
        export_id = await request_export(bus, tenant)

        async def holding() -> bool:  # the assembler sits before a part's upload: mid-export, not after
            return (held / "assemble.upload.reached.count").exists()

        await until(holding, 60, 0.05, "the assembler to reach a part's upload")
        os.kill(assembler, signal.SIGSTOP)
        frozen.append(assembler)
        before = await bus.log.last_seq(tenant, export_id)
        frozen_at = (await bus.log.load(tenant, export_id)).state
        assert frozen_at.status == "assembling", frozen_at  # the freeze landed mid-export
        said: list[str] = []

        async def judged_dead() -> asyncio.subprocess.Process | None:
            """A run that found the export dead, held before its ExportFailed (a run started before
            the heartbeat expired ends having judged nothing: start another)."""
            run = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", "janitor", env=env,
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT)
            marker = faults / "janitor.judged.reached.count"
            while run.returncode is None and not marker.exists():
                try:
                    await asyncio.wait_for(asyncio.shield(run.wait()), 0.05)
                except TimeoutError:
                    pass
            if marker.exists():
                return run
            said[:] = [(await run.communicate())[0].decode()]
            return None

        try:
            janitor = await until(judged_dead, 60, 0.5, "a janitor run to judge the export dead")
        except AssertionError as e:
            raise AssertionError(f"{e}; the last run said: {said}") from None
        os.kill(janitor.pid, signal.SIGSTOP)
        frozen.append(janitor.pid)
        os.kill(assembler, signal.SIGCONT)
        frozen.remove(assembler)

        async def moved() -> bool:  # the thawed assembler logged a part: the janitor's fold is stale
            return await bus.log.last_seq(tenant, export_id) > before

        await until(moved, 30, 0.1, "the thawed assembler to log a part")
        os.kill(janitor.pid, signal.SIGCONT)
        frozen.remove(janitor.pid)
        out = (await janitor.communicate())[0].decode()
        state = await wait_status(bus, tenant, export_id, {"complete", "failed", "cancelled"}, 60)
        names = [e.name() async for _, e in bus.log.history(tenant, export_id)]
        assert state.status == "complete" and not any(n.startswith("ExportFailed") for n in names), names
        assert f"failed {export_id}" not in out and "failed 0 stuck exports" in out, out
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        if janitor is not None and janitor.returncode is None:
            janitor.kill()
            await janitor.wait()
        stack.stop()
        await content.close()
        await bus.close()
        await store.close()
