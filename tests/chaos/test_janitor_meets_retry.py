"""A janitor run that read an export failed, paused (SIGSTOP) before its sweep, thawed after an
operator's ``retry`` of that export: it must take nothing the retried attempt goes on from.

Seen before: the thawed run removed the snapshot the retry had gone on from (``attempt 2 started
from assemble (snapshot kept…)``), and the retried export failed after 4 attempts ("A file this
export needs changed or disappeared from storage") with a second failure email. Real processes
(nats-server, the filesystem store, the step services, ``grove-export janitor`` and ``retry``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer
from services.devtools.stack.supervisor import Stack
from shared.bus.connect import connect
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.keys import work_prefix
from shared.eventlog.fence import append_folded
from shared.objectstore.factory import open_store
from tests.chaos.harness import chaos_values
from tests.support.env import build, to_env
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

pytestmark = pytest.mark.chaos


async def _cli(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


@pytest.mark.parametrize("window", ["kept_for_the_retry", "past_the_retry_window"])
async def test_a_janitor_paused_across_a_retry_takes_nothing_the_retry_goes_on_from(
        tmp_path: Path, nats_server: NatsServer, window: str) -> None:
    # past the window: a failed export's objects are the janitor's 1 s after it failed (archive_ttl_days)
    ttl = {"archive_ttl_days": 1 / 86400} if window == "past_the_retry_window" else {}
    values = chaos_values(tmp_path, nats_server.url, **ttl)
    settings = build(values)
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "chaos", ensure=True)
    # no assembler until the janitor is done: the retried attempt reads what the janitor left
    stack = start_stack(tmp_path / "stack", values, services=("catalog", "finalizer", "notifier", "canceller"))
    assembler: Stack | None = None
    content = content_source(settings)
    faults = tmp_path / "faults"
    faults.mkdir()
    env = {**os.environ, **to_env(values)}
    janitor: asyncio.subprocess.Process | None = None
    try:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=5, images=2)
        tenant = seeded.tenant_id
        export_id = await request_export(bus, tenant)
        await wait_status(bus, tenant, export_id, {"assembling"}, 60)
        loaded = await bus.log.load(tenant, export_id)  # failed as the janitor fails a dead assembler
        await append_folded(bus.log, ev.ExportFailed(export_id=export_id, tenant_id=tenant, step="janitor",
                                                     reason="stopped"), loaded)
        first = {o.key for o in await store.list_keys(settings.buckets.exports, work_prefix(tenant, export_id))}
        if ttl:
            await asyncio.sleep(1.5)  # the failure is past the window (a fixed wait: the clock is the condition)
        janitor = await _cli({**env, "GROVE_FAULTS_SLOW": "janitor.read:5", "GROVE_FAULTS_DIR": str(faults)},
                             "janitor")

        async def read_by_janitor() -> bool:
            return (faults / "janitor.read.reached.count").exists()

        await until(read_by_janitor, 30, 0.01, "the janitor to read the failed export")
        os.kill(janitor.pid, signal.SIGSTOP)  # inside its 5 s wait between its read and its acts
        try:
            held = {o.key for o in await store.list_keys(settings.buckets.exports, work_prefix(tenant, export_id))}
            assert held == first, (first, held)  # frozen before it swept anything
            retry = await _cli(env, "retry", export_id, "--tenant", tenant, "--by", "ada", "--reason", "it is back")
            said = (await retry.communicate())[0].decode()
            assert retry.returncode == 0, said
            names = [e.name() async for _, e in bus.log.history(tenant, export_id)]
            assert "ExportRetried" in names, names  # in the log while the janitor is paused past its read
            if ttl:  # past the window the retry starts afresh; its catalog run stores a snapshot of its own
                assert "from catalog" in said, said

                async def recataloged() -> bool:
                    s = (await bus.log.load(tenant, export_id)).state
                    return s.cataloged is not None and s.attempt == 2
                await until(recataloged, 60, 0.1, "the retried attempt's ExportCataloged")
            else:
                assert "from assemble" in said, said
        finally:
            os.kill(janitor.pid, signal.SIGCONT)
        out = (await janitor.communicate())[0].decode()
        assembler = start_stack(tmp_path / "assembler", values, services=("assembler",))
        state = await wait_status(bus, tenant, export_id, {"complete", "failed", "cancelled"}, 120)
        assert state.status == "complete", (state.status, state.failure, out, logs_of(assembler))
        assert state.attempt == 2
        left = {o.key for o in await store.list_keys(settings.buckets.exports, work_prefix(tenant, export_id))}
        if ttl:  # the failed attempt's objects were the janitor's; the retry's are there
            assert not first & left and state.cataloged is not None and state.cataloged.snapshot_key in left, \
                (first, left, out)
    finally:
        if janitor is not None and janitor.returncode is None:
            janitor.kill()
            await janitor.wait()
        if assembler is not None:
            assembler.stop()
        stack.stop()
        await content.close()
        await bus.close()
        await store.close()
