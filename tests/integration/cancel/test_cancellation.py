"""Cancellation really stops: at every stage the export ends `cancelled` with no parts, no object
and no email; a cancel racing the finalizer resolves to exactly one outcome."""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.devtools.stack.natsserver import NatsServer
from services.devtools.stack.supervisor import Stack
from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.keys import export_prefix, heartbeat_key
from shared.core.lifecycle import fold
from shared.eventlog.jetstream import Conflict, Loaded
from shared.objectstore import ObjectNotFound, ObjectStore
from shared.runtime.settings import Settings
from tests.support.env import settings_for
from tests.support.pipeline import cancel, request_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

LATENCIES: list[float] = []
# The finalizer's pause must outlast its first heartbeat (one progress interval, 1 s in tests, after
# the step starts): the heartbeat is how the cancel_first race below knows the finalizer holds the export.
SLOW = "assemble.upload:0.25,catalog.read:1.5,finalize.before_start:2.5"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer) -> Iterator[tuple[dict, Stack]]:
    tmp = tmp_path_factory.mktemp("cancel")
    values = settings_for(tmp, nats_server.url)
    stack = start_stack(tmp / "stack", values, extra_env={"GROVE_FAULTS_SLOW": SLOW})
    yield values, stack
    stack.stop()
    if LATENCIES:
        print(f"\ncancel-to-abort: median {statistics.median(LATENCIES) * 1000:.0f} ms, "
              f"worst {max(LATENCIES) * 1000:.0f} ms over {len(LATENCIES)} cancels")


@pytest.fixture
def values(running: tuple[dict[str, Any], Stack]) -> dict[str, Any]:
    return running[0]


async def _export(bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings, images: int = 16) -> tuple[str, str]:
    seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                               amber_bucket=settings.buckets.amber, images=images)
    return seeded.tenant_id, await request_export(bus, seeded.tenant_id)


async def _assert_cancelled_cleanly(bus: Bus, store: ObjectStore, settings: Settings, tenant: str,
                                    export_id: str, stack: Stack) -> None:
    state = await wait_status(bus, tenant, export_id, timeout=30)
    assert state.status == "cancelled", (state.status, logs_of(stack))
    events = [e async for _, e in bus.log.history(tenant, export_id)]
    asked = next(e for e in events if isinstance(e, ev.CancelRequested))
    done = next(e for e in events if isinstance(e, ev.ExportCancelled))
    LATENCIES.append((done.occurred_at - asked.occurred_at).total_seconds())
    assert LATENCIES[-1] < 5.0
    assert await store.list_uploads(settings.buckets.exports, export_prefix(tenant, export_id)) == []
    if state.cataloged:
        with pytest.raises(ObjectNotFound):
            await store.head(settings.buckets.exports, state.cataloged.archive_key)
        cataloged = state.cataloged

        async def snapshot_removed() -> bool:  # the canceller removes it right after ExportCancelled
            try:
                await store.head(settings.buckets.exports, cataloged.snapshot_key)
            except ObjectNotFound:
                return True
            return False

        await until(snapshot_removed, 10, 0.1, f"the snapshot of {export_id} to be removed")
    await asyncio.sleep(0.5)  # nothing may arrive late
    assert not list(Path(settings.mail.outbox_dir).glob(f"{export_id}*"))
    assert (await bus.log.load(tenant, export_id)).state.status == "cancelled"


@pytest.mark.parametrize("stage", ["pending", "cataloging", "assembling", "uploading"])
async def test_cancel_at_each_stage_leaves_no_parts_no_object_and_no_email(
        stage: str, bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings,
        running: tuple[dict, Stack]) -> None:
    stack = running[1]
    if stage == "pending":  # the catalog is held (SIGSTOP) so the cancel lands before CatalogStarted
        stack.kill("catalog", signal.SIGSTOP)
        try:
            tenant, export_id = await _export(bus, store, content, settings)
            assert await cancel(bus, tenant, export_id)
        finally:
            stack.kill("catalog", signal.SIGCONT)
    else:
        tenant, export_id = await _export(bus, store, content, settings)
        await wait_status(bus, tenant, export_id, {stage}, 30)
        if stage == "assembling":
            async def two_parts() -> bool:  # mid-stream, parts already uploaded
                return len((await bus.log.load(tenant, export_id)).state.parts) >= 2

            await until(two_parts, 30, 0.05, "two logged parts")
        assert await cancel(bus, tenant, export_id)
    events = [e async for _, e in bus.log.history(tenant, export_id)]
    asked = next(i for i, e in enumerate(events) if isinstance(e, ev.CancelRequested))
    landed = fold(events[:asked]).status  # what the export was doing when the cancel went in
    assert landed == stage, f"the cancel landed while the export was {landed}, not {stage}: {[e.name() for e in events]}"
    await _assert_cancelled_cleanly(bus, store, settings, tenant, export_id, stack)


async def test_cancelling_a_finished_export_changes_nothing(bus: Bus, store: ObjectStore, content: ContentSource,
                                                            settings: Settings) -> None:
    tenant, export_id = await _export(bus, store, content, settings, images=1)
    state = await wait_status(bus, tenant, export_id, timeout=60)
    assert state.status == "complete"

    async def emailed() -> bool:  # the notifier's event comes after completion: let it land first
        return (await bus.log.load(tenant, export_id)).state.notification is not None

    await until(emailed, 30, 0.1, "the email outcome")
    before = await bus.log.last_seq(tenant, export_id)
    assert not await cancel(bus, tenant, export_id)
    assert await bus.log.last_seq(tenant, export_id) == before


async def _finalizer_holds(bus: Bus, tenant: str, export_id: str) -> bool:
    """The finalizer has the export: its heartbeat is up (it then waits at finalize.before_start)."""
    try:
        entry = await bus.heartbeats.get(heartbeat_key("finalize", tenant, export_id))
    except Exception:
        return False
    return json.loads(entry.value or b"{}").get("step") == "finalize"


async def _names(bus: Bus, tenant: str, export_id: str) -> list[str]:
    return [e.name() async for _, e in bus.log.history(tenant, export_id)]


@pytest.mark.parametrize("order", ["cancel_first", "finalize_first", "cancel_fenced_by_finalize"])
async def test_cancel_racing_finalize_resolves_to_exactly_one_outcome_in_each_order(
        order: str, bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings) -> None:
    """Drive each interleaving on purpose. The finalizer pauses 2.5 s at ``finalize.before_start``
    (after deciding to run, before appending FinalizeStarted):

    * cancel_first: the cancel lands in that pause; the finalizer's fenced FinalizeStarted loses,
      it re-decides and stands down, the canceller wins → cancelled, no archive;
    * finalize_first: the cancel comes after FinalizeStarted → refused, the export completes;
    * cancel_fenced_by_finalize: the cancel was decided on a fold from before FinalizeStarted; its
      append is fenced off, the re-decision refuses it → complete.
    """
    tenant, export_id = await _export(bus, store, content, settings, images=1)

    async def finalizer_holds() -> bool:
        return await _finalizer_holds(bus, tenant, export_id)

    async def finalize_started() -> bool:
        return "FinalizeStarted" in await _names(bus, tenant, export_id)

    if order == "cancel_first":
        await until(finalizer_holds, 60, 0.02, "the finalizer to take the export")
        assert "FinalizeStarted" not in await _names(bus, tenant, export_id)
        assert await cancel(bus, tenant, export_id)
    elif order == "finalize_first":
        await until(finalize_started, 60, 0.02, "FinalizeStarted")
        assert not await cancel(bus, tenant, export_id)
    else:
        async def assembled_not_finalizing() -> Loaded | None:  # the window the pause holds open
            loaded = await bus.log.load(tenant, export_id)
            return loaded if loaded.state.assembled and not loaded.state.finalize_started else None

        stale = await until(assembled_not_finalizing, 60, 0.02, "ArchiveAssembled before FinalizeStarted")
        await until(finalize_started, 60, 0.02, "FinalizeStarted")
        with pytest.raises(Conflict):  # the fence the gateway's append carries
            await bus.log.append(ev.CancelRequested(export_id=export_id, tenant_id=tenant, requested_by="u1"),
                                 stale.last_seq)
        assert not await cancel(bus, tenant, export_id)  # re-read, re-decided: refused

    state = await wait_status(bus, tenant, export_id, timeout=60)
    names = await _names(bus, tenant, export_id)
    key = state.cataloged.archive_key if state.cataloged else ""
    try:
        await store.head(settings.buckets.exports, key)
        exists = True
    except ObjectNotFound:
        exists = False
    assert await store.list_uploads(settings.buckets.exports, export_prefix(tenant, export_id)) == []
    want = "cancelled" if order == "cancel_first" else "complete"
    assert (state.status, exists) == (want, want == "complete"), (state.status, exists, names)
    assert names.count("ExportCompleted") + names.count("ExportCancelled") == 1, names


@pytest.mark.parametrize("forgery", ["another tenant in the body", "not json"])
async def test_a_forged_cancel_only_wakes_the_assembler_and_the_export_completes(
        forgery: str, bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings,
        running: tuple[dict, Stack]) -> None:
    """Every assembler replica hears CancelRequested as a core message; it re-reads the log, where a
    forged cancel is dropped, so the export goes on; the canceller's durable drops it too."""
    tenant, export_id = await _export(bus, store, content, settings, images=12)
    await wait_status(bus, tenant, export_id, {"assembling"}, 30)

    async def uploading() -> bool:
        return len((await bus.log.load(tenant, export_id)).state.parts) >= 1

    await until(uploading, 30, 0.05, "the first part")
    body = (ev.CancelRequested(export_id=export_id, tenant_id="someone_else").to_json()
            if forgery != "not json" else b"{cancel!")
    await bus.nc.publish(f"{settings.subject_prefix}.{tenant}.{export_id}.CancelRequested", body)
    state = await wait_status(bus, tenant, export_id, timeout=60)
    assert state.status == "complete", (state.status, logs_of(running[1]))
    assert not state.cancel_requested
    info = await bus.js.consumer_info(settings.stream_name, "canceller")
    assert info.num_ack_pending == 0 and info.num_pending == 0  # dropped and acked, not retried
