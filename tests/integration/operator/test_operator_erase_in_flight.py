"""``grove-export erase-tenant`` while a step still works on the tenant's export after the log has
called it cancelled. Real nats-server, services as processes, the filesystem store."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from shared.bus.connect import Bus
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.keys import heartbeat_key
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.integration.operator.test_operator_erase import _held
from tests.integration.operator.test_operator_erase_hostile import cli
from tests.support.pipeline import request_export, small_text_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until


async def test_a_catalog_cancelled_mid_read_is_waited_for_and_what_it_wrote_erased(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, tmp_path: Path) -> None:
    """The canceller logs ExportCancelled once the upload is aborted (a cataloging export has none), so
    the log said cancelled at once while the catalog still read. Seen: erase said "nothing left in the
    stream, the KV buckets, the store ...", exit 0, and 4 s later the catalog wrote the tenant's
    snapshot.jsonl and texts.bin (its rendered posts) under exports/<tenant>/ — its ExportCataloged
    refused, its objects not, and with the log gone the janitor never removes them."""
    held = tmp_path / "held"  # the catalog's run is held at its read until the test releases it
    held.mkdir()
    stack = start_stack(tmp_path / "stack", values,
                        extra_env={"GROVE_FAULTS_HOLD": "catalog.read:60", "GROVE_FAULTS_DIR": str(held)})
    try:
        tenant, export_id = await small_text_export(settings, store, bus)

        async def beating() -> bool:  # held in its read, and beating: how the erase knows a step still works on it
            try:
                beat = (await bus.heartbeats.get(heartbeat_key("catalog", tenant, export_id))).value
            except Exception:
                return False
            return bool(beat) and (held / "catalog.read.reached.count").exists()

        await until(beating, 30, 0.02, "the catalog's heartbeat, its run held in its read")
        (Path(settings.store_root) / settings.buckets.exports).mkdir(parents=True, exist_ok=True)
        assert cli(values, "replay").returncode == 0

        erasing = asyncio.create_task(asyncio.to_thread(cli, values, "erase-tenant", tenant, "--wait", "30"))

        async def cancelled() -> bool:  # the erase's cancel is in the log: its wait for the run has begun
            return any([isinstance(e, ev.CancelRequested) async for _, e in bus.log.history(tenant, export_id)])

        try:
            await until(cancelled, 60, 0.05, "the erase to cancel the export")
            assert not erasing.done() and (await bus.log.load(tenant, export_id)).state.cataloged is None
        finally:
            (held / "catalog.read.release").touch()  # the read goes on: its snapshot is written after the cancel
        out = await erasing
        assert out.returncode == 0 and "nothing left" in out.stdout, out.stdout + out.stderr

        catalog = next(c for c in stack.children if c.name == "catalog")

        async def run_ended() -> str | None:  # its run over: whatever it was going to write is written
            said = Path(catalog.log_path).read_text()  # (not its consumer's ack count: the purge empties that)
            ended = any(f"catalog {export_id}{how}" in said
                        for how in (": the log moved", ": standing down", ": done", ": ended"))
            return said if ended else None

        said = await until(run_ended, 30, 0.2, "the catalog's run to end")
        assert f"catalog {export_id}: the log moved under this run" in said, said[-3000:]  # refused, as it was seen
        assert await store.list_keys(settings.buckets.exports, f"exports/{tenant}/") == [], logs_of(stack)
    finally:
        stack.stop()


async def _assembling(bus: Bus, store: ObjectStore, settings: Settings) -> tuple[str, str]:
    """A seeded tenant's export, once the assembler has logged its UploadStarted and beats for it."""
    content = content_source(settings)
    await content.init()
    tenant = (await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                amber_bucket=settings.buckets.amber, images=4)).tenant_id
    await content.close()
    export_id = await request_export(bus, tenant)
    await wait_status(bus, tenant, export_id, {"assembling"}, 30)

    async def uploading() -> bool:
        if (await bus.log.load(tenant, export_id)).state.upload is None:
            return False
        try:
            return bool((await bus.heartbeats.get(heartbeat_key("assemble", tenant, export_id))).value)
        except Exception:
            return False

    await until(uploading, 30, 0.02, "the assembler's UploadStarted and heartbeat")
    return tenant, export_id


async def test_an_assembler_frozen_through_the_erasure_writes_nothing_of_the_tenant_again(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, tmp_path: Path) -> None:
    """The assembler holding the export is frozen (SIGSTOP) mid-upload; erase-tenant --erase-running
    cancels (the canceller aborts the upload), then removes every event and object of the tenant; the
    assembler is thawed. Its next append is fenced at the sequence it folded, which the emptied log no
    longer has: refused. It must stay refused — the fence's re-read must not take an empty log for one
    that 'moved nothing'. Seen: the append went in at sequence 0 of the erased export, the step went
    on into a new upload under exports/<tenant>/ and logged UploadStarted, PartUploaded and
    ArchiveAssembled for an export the log no longer had; erase had said "nothing left"."""
    stack = start_stack(tmp_path / "stack", values, extra_env={"GROVE_FAULTS_SLOW": "assemble.upload:3"})
    try:
        tenant, export_id = await _assembling(bus, store, settings)  # parts wait 3 s to upload
        async def no_part_logged() -> None:  # frozen before any part logged
            assert not (await bus.log.load(tenant, export_id)).state.parts

        await _erased_while_frozen(values, bus, store, settings, stack, "assemble", tenant, export_id,
                                   wait="5", frozen=no_part_logged)
    finally:
        stack.stop()


async def test_an_assembler_frozen_before_its_first_part_leaves_no_part_records_after_the_erasure(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, tmp_path: Path) -> None:
    """The assembler is frozen while its encoder is still filling the first part (nothing submitted:
    no part upload, no records yet); erase-tenant --erase-running cancels (the upload is aborted) and
    removes everything; the assembler is thawed and submits the part. Seen (an operator's erasure
    during `GROVE_DEMO_THROTTLE_S=0.5 make serve`): the part's member records were stored beside its
    upload — member names, post paths — and the upload met NoSuchUpload; the run, finding the export
    not "stopping" (the log no longer has it at all), opened a new upload only to have its
    UploadStarted refused, and left the records under exports/<tenant>/, where the janitor does not
    remove them (an export the log does not hold, written since its oldest event)."""
    stack = start_stack(tmp_path / "stack", values, extra_env={"GROVE_DEMO_THROTTLE_S": "0.4"})
    try:
        tenant, export_id = await _assembling(bus, store, settings)  # members come 0.4 s apart

        async def nothing_submitted() -> None:  # frozen while the first part still fills
            assert not (await bus.log.load(tenant, export_id)).state.parts
            assert [o.key for o in await store.list_keys(settings.buckets.exports, f"exports/{tenant}/")
                    if "/parts-" in o.key] == []

        await _erased_while_frozen(values, bus, store, settings, stack, "assemble", tenant, export_id,
                                   wait="5", frozen=nothing_submitted)
    finally:
        stack.stop()


async def test_a_catalog_frozen_through_the_erasure_leaves_nothing_of_the_tenant_in_the_store(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, tmp_path: Path) -> None:
    """The catalog is frozen (SIGSTOP) mid-read; erase-tenant --erase-running removes everything; the
    catalog is thawed and finishes its snapshot. Its ExportCataloged is refused (the log no longer has
    the export) — and what it stored for it must not stay: the snapshot and the rendered posts are
    the tenant's content, under exports/<tenant>/, where nothing would ever remove them."""
    held = tmp_path / "held"  # the catalog's run is held at its read until the test releases it
    held.mkdir()
    stack = start_stack(tmp_path / "stack", values,
                        extra_env={"GROVE_FAULTS_HOLD": "catalog.read:60", "GROVE_FAULTS_DIR": str(held)})
    try:
        tenant, export_id = await small_text_export(settings, store, bus)

        async def beating() -> bool:  # held in its read, and beating (the erase says it erased a running one)
            try:
                beat = (await bus.heartbeats.get(heartbeat_key("catalog", tenant, export_id))).value
            except Exception:
                return False
            return bool(beat) and (held / "catalog.read.reached.count").exists()

        await until(beating, 30, 0.02, "the catalog's heartbeat, its run held in its read")

        async def bucket_there() -> None:  # nothing stored yet: the erase lists the exports bucket
            (Path(settings.store_root) / settings.buckets.exports).mkdir(parents=True, exist_ok=True)
            assert (await bus.log.load(tenant, export_id)).state.cataloged is None  # frozen mid-read
            assert await store.list_keys(settings.buckets.exports, f"exports/{tenant}/") == []
            (held / "catalog.read.release").touch()  # its read goes on once it is thawed

        await _erased_while_frozen(values, bus, store, settings, stack, "catalog", tenant, export_id,
                                   wait="1", frozen=bucket_there)
    finally:
        stack.stop()


async def _erased_while_frozen(values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings,
                               stack: Any, step: str, tenant: str, export_id: str, *, wait: str,
                               frozen: Callable[[], Awaitable[None]]) -> None:
    """The ``step``'s service frozen (SIGSTOP; ``frozen`` runs then), the tenant erased with
    --erase-running, the service thawed; once its run is over (whatever it would write is written),
    nothing of the tenant may be held — no event, no upload, no object."""
    child = next(c for c in stack.children if c.name == ("assembler" if step == "assemble" else step))
    assert child.pid is not None
    os.kill(child.pid, signal.SIGSTOP)
    try:
        await frozen()
        assert cli(values, "replay").returncode == 0
        out = cli(values, "erase-tenant", tenant, "--wait", wait, "--erase-running")
        assert out.returncode == 0 and "nothing left" in out.stdout, out.stdout + out.stderr
        assert "erased anyway, --erase-running" in out.stdout, out.stdout  # the frozen run's heartbeat
    finally:
        os.kill(child.pid, signal.SIGCONT)

    async def run_ended() -> bool:
        said = Path(child.log_path).read_text()
        return any(f"{step} {export_id}{how}" in said
                   for how in (": the log moved", ": standing down", ": done", ": ended"))  # not " failed": no failure

    await until(run_ended, 60, 0.2, f"the thawed {step} run to end")
    held = await _held(bus, store, settings, tenant)
    logged = [e.name() async for _, e in bus.log.history(tenant, export_id)]
    assert (held["events"], held["uploads"], held["objects"]) == (0, [], []), (logged, held)



async def test_an_erase_in_a_catalogs_first_interval_waits_for_it_and_leaves_nothing_of_the_tenant(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, tmp_path: Path) -> None:
    """A step puts its first heartbeat one progress interval after it starts, so an erase that comes
    in a catalog's first interval found no beat to wait for, and erased while the catalog still read:
    it said "nothing left", and the run went on — its beat put the tenant's heartbeat key after the
    purge (its delete marker stayed), and its snapshot and texts were written after the erasure (its
    refused ExportCataloged then removed them). The catalog is held at its read before its first beat
    (a long interval, the erase's and the services' alike) while the erase runs, and released once it
    beats: the erase must still be waiting for it then, and nothing of the tenant may be left after."""
    held = tmp_path / "held"
    held.mkdir()
    values = {**values, "ack_wait_s": 60.0, "progress_interval_s": 12.0}  # no beat before the erase looks
    stack = start_stack(tmp_path / "stack", values,
                        extra_env={"GROVE_FAULTS_HOLD": "catalog.read:90", "GROVE_FAULTS_DIR": str(held)})
    try:
        tenant, export_id = await small_text_export(settings, store, bus)

        async def reached() -> bool:
            return (held / "catalog.read.reached.count").exists()

        async def beat() -> bool:
            try:
                return bool((await bus.heartbeats.get(heartbeat_key("catalog", tenant, export_id))).value)
            except Exception:
                return False

        await until(reached, 30, 0.02, "the catalog held at its read")
        assert not await beat()  # in its first interval: no heartbeat yet
        (Path(settings.store_root) / settings.buckets.exports).mkdir(parents=True, exist_ok=True)
        assert cli(values, "replay").returncode == 0
        erasing = asyncio.create_task(asyncio.to_thread(cli, values, "erase-tenant", tenant, "--wait", "60"))
        try:
            await until(beat, 60, 0.1, "the held catalog's first beat")
            waited = not erasing.done()
        finally:
            (held / "catalog.read.release").touch()  # its read goes on: its snapshot is written now
        out = await erasing
        assert out.returncode == 0 and "nothing left" in out.stdout, out.stdout + out.stderr
        catalog = next(c for c in stack.children if c.name == "catalog")

        async def run_ended() -> str | None:
            said = Path(catalog.log_path).read_text()
            ended = any(f"catalog {export_id}{how}" in said
                        for how in (": the log moved", ": standing down", ": done", ": ended"))
            return said if ended else None

        said = await until(run_ended, 60, 0.2, "the catalog's run to end")
        left = await _held(bus, store, settings, tenant)
        logged = [e.name() async for _, e in bus.log.history(tenant, export_id)]
        assert (left["events"], left["objects"], left["heartbeats"]) == (0, [], {}), (logged, left, out.stdout)
        assert waited, f"the erase ended before the run it met in its first interval had: {out.stdout}{said[-2000:]}"
    finally:
        stack.stop()
