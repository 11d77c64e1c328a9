"""A janitor run that listed a failed export's work objects, paused (SIGSTOP) before deleting them,
thawed after an operator's ``retry`` went on from catalog and the retried attempt's assembler logged
parts: it must delete only what it listed — the failed attempt's part records — never the retried
attempt's, which its assembler reads back when it resumes.

Seen before: part records had one key per part number for every upload of an export, so the
retried attempt's records were written over the keys the paused run had listed (the failed
attempt's), the thawed run deleted them, and the assembler resuming the retried attempt found its
parts' records gone. Real processes (nats-server, the filesystem store, the step services,
``grove-export janitor`` and ``retry``)."""

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


async def test_a_janitor_paused_after_its_listing_takes_none_of_a_retried_attempts_part_records(
        tmp_path: Path, nats_server: NatsServer) -> None:
    # a failed export's objects are the janitor's 1 s after it failed: the retry goes on from catalog
    values = chaos_values(tmp_path, nats_server.url, archive_ttl_days=1 / 86400)
    settings = build(values)
    bucket = settings.buckets.exports
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "chaos", ensure=True)
    stack = start_stack(tmp_path / "stack", values, services=("catalog", "notifier", "canceller"))
    assembler: Stack | None = start_stack(tmp_path / "assembler-1", values, services=("assembler",))
    content = content_source(settings)
    faults = tmp_path / "faults"
    faults.mkdir()
    env = {**os.environ, **to_env(values)}
    janitor: asyncio.subprocess.Process | None = None
    try:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=20, pages=3, images=12)
        tenant = seeded.tenant_id
        export_id = await request_export(bus, tenant)

        async def assembled() -> bool:  # no finalizer: the first attempt stops with its parts logged
            return (await bus.log.load(tenant, export_id)).state.assembled is not None
        await until(assembled, 90, 0.1, "the first attempt's ArchiveAssembled")
        assembler.stop()
        loaded = await bus.log.load(tenant, export_id)
        assert len(loaded.state.parts) >= 3, loaded.state.parts  # parts to log before a resume
        first_records = {p.records_key for p in loaded.state.parts}
        await append_folded(bus.log, ev.ExportFailed(export_id=export_id, tenant_id=tenant, step="finalize",
                                                     reason="stopped"), loaded)
        await asyncio.sleep(1.5)  # the failure is past the window (a fixed wait: the clock is the condition)
        janitor = await _cli({**env, "GROVE_FAULTS_SLOW": "janitor.listed:30", "GROVE_FAULTS_DIR": str(faults)},
                             "janitor")

        async def listed_by_janitor() -> bool:
            return (faults / "janitor.listed.reached.count").exists()

        await until(listed_by_janitor, 30, 0.01, "the janitor to list the failed export's work objects")
        os.kill(janitor.pid, signal.SIGSTOP)  # inside its 30 s wait between its listing and its deletes
        try:
            held = {o.key for o in await store.list_keys(bucket, work_prefix(tenant, export_id))}
            assert first_records <= held, (first_records, held)  # frozen before it deleted anything
            retry = await _cli(env, "retry", export_id, "--tenant", tenant, "--by", "ada", "--reason", "it is back")
            said = (await retry.communicate())[0].decode()
            assert retry.returncode == 0 and "from catalog" in said, said
            # the retried attempt's assembler uploads one part a second: frozen with some of its
            # parts logged and the rest to come, as a stopped replica is
            assembler = start_stack(tmp_path / "assembler-2", {**values, "parts_in_flight": 1},
                                    services=("assembler",), extra_env={"GROVE_FAULTS_SLOW": "assemble.upload:1"})

            async def parts_logged() -> bool:
                s = (await bus.log.load(tenant, export_id)).state
                return s.attempt == 2 and len(s.parts) >= 1
            await until(parts_logged, 90, 0.05, "the retried attempt's first PartUploaded")
            frozen = assembler.child("assembler").pid
            assert frozen is not None
            os.kill(frozen, signal.SIGSTOP)
            retried = (await bus.log.load(tenant, export_id)).state
            assert retried.assembled is None, retried  # frozen mid-archive: a resume reads its records
            second_records = {p.records_key for p in retried.parts}
            stored = {o.key for o in await store.list_keys(bucket, work_prefix(tenant, export_id))}
            assert second_records <= stored, (second_records, stored)
        finally:
            os.kill(janitor.pid, signal.SIGCONT)
        out = (await janitor.communicate())[0].decode()
        assert janitor.returncode == 0, out
        left = {o.key for o in await store.list_keys(bucket, work_prefix(tenant, export_id))}
        assert second_records <= left, (second_records - left, out)
        # a crash of the frozen assembler: the restarted one resumes from the logged parts' records
        assembler.kill("assembler")  # SIGKILL reaches a stopped process; the supervisor starts another
        state = await wait_status(bus, tenant, export_id, {"uploading", "failed", "cancelled"}, 120)
        assert state.status == "uploading" and state.assembled is not None, \
            (state.status, state.failure, out, logs_of(assembler))
        assert state.attempt == 2
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
