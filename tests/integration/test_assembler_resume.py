"""The assembler in-process on a real bus and store: resume after a failed attempt, a changed encoder
fingerprint, and a source that changed before its re-read."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from services.archivetools.reference import assemble_to_file
from services.assembler.service import Assembler
from services.catalog.service import Catalog
from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.objectstore import ObjectStore, StoreUnavailable
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext
from tests.support.pipeline import request_export
from tests.support.wait import until


class FailingUploads:
    """Wraps a store: the n-th upload_part raises StoreUnavailable (a store outage mid-stream)."""

    def __init__(self, store: ObjectStore, fail_at: int,
                 before_failing: Callable[[], Awaitable[object]] | None = None) -> None:
        self._store, self.fail_at, self.calls = store, fail_at, 0
        self.before_failing = before_failing  # holds the outage back until the test's condition holds

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def upload_part(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            if self.before_failing is not None:
                await self.before_failing()
            raise StoreUnavailable("injected outage")
        return await self._store.upload_part(*args, **kwargs)


async def _parts_logged(bus: Bus, tenant_id: str, export_id: str) -> int | None:
    return len((await bus.log.load(tenant_id, export_id)).state.parts) or None


async def _cataloged(bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings) -> StepContext:
    seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                               amber_bucket=settings.buckets.amber, posts=6, images=10)
    export_id = await request_export(bus, seeded.tenant_id)
    ctx = StepContext(bus.log, await bus.log.load(seeded.tenant_id, export_id), settings)
    await Catalog(settings, store, content)(ctx)
    return ctx


async def _reference(store: ObjectStore, settings: Settings, ctx: StepContext, tmp: Path) -> bytes:
    assert ctx.state.cataloged
    await assemble_to_file(store, settings.buckets.exports, ctx.state.cataloged.snapshot_key, tmp / "ref.zip")
    return (tmp / "ref.zip").read_bytes()


async def _archive(store: ObjectStore, settings: Settings, ctx: StepContext) -> bytes:
    """Complete the upload the way the finalizer does and read the object back."""
    from services.finalizer.service import Finalizer

    await Finalizer(settings, store)(ctx)
    assert ctx.state.completed
    return await store.read(settings.buckets.exports, ctx.state.completed.archive_key)


async def test_after_a_failed_attempt_the_next_resumes_after_the_logged_parts_into_identical_bytes(
        bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings, tmp_path: Path) -> None:
    ctx = await _cataloged(bus, store, content, settings)
    tenant_id, export_id = ctx.state.tenant_id, ctx.state.export_id

    async def a_part_is_logged() -> object:  # parts upload 3 at once: the outage must not beat part 1's log
        return await until(lambda: _parts_logged(bus, tenant_id, export_id), timeout=30)

    with pytest.raises(StoreUnavailable):
        await Assembler(settings, FailingUploads(store, fail_at=5, before_failing=a_part_is_logged))(ctx)  # type: ignore[arg-type]
    logged = len((await ctx.reload()).state.parts)
    assert logged >= 1
    await Assembler(settings, store)(ctx)
    parts = [e async for _, e in bus.log.history(ctx.state.tenant_id, ctx.state.export_id)
             if isinstance(e, ev.PartUploaded)]
    numbers = [e.part_number for e in parts]
    assert numbers[:logged] == list(range(1, logged + 1)) and numbers[logged] == logged + 1  # no part redone
    assert ctx.state.assembled and ctx.state.assembled.sha256 is None  # resumed: the finalizer re-hashes
    archive = await _archive(store, settings, ctx)
    assert archive == await _reference(store, settings, ctx, tmp_path)
    # each part's CRC-32, from the archive hash's thread (first attempt) or computed alone (resumed)
    assert [e.crc32 for e in parts] == [zlib.crc32(archive[e.byte_start:e.byte_end]) for e in parts]


async def test_a_changed_encoder_fingerprint_redoes_the_straddling_member_only(
        bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = await _cataloged(bus, store, content, settings)
    monkeypatch.setattr("services.assembler.service.fingerprint", lambda: "an-older-encoder")
    with pytest.raises(StoreUnavailable):
        await Assembler(settings, FailingUploads(store, fail_at=6))(ctx)  # type: ignore[arg-type]
    monkeypatch.undo()
    await ctx.reload()
    await Assembler(settings, store)(ctx)
    uploads = [e async for _, e in bus.log.history(ctx.state.tenant_id, ctx.state.export_id)
               if isinstance(e, ev.UploadStarted)]
    assert [u.fingerprint == "an-older-encoder" for u in uploads] == [True, False]
    assert len({u.upload_id for u in uploads}) == 1
    data = await _archive(store, settings, ctx)
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    assert data == await _reference(store, settings, ctx, tmp_path)  # same zlib here, so same bytes


async def test_a_source_changed_before_its_reread_is_dropped_and_reported(
        bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings) -> None:
    ctx = await _cataloged(bus, store, content, settings)
    with pytest.raises(StoreUnavailable):
        await Assembler(settings, FailingUploads(store, fail_at=6))(ctx)  # type: ignore[arg-type]
    await ctx.reload()
    from services.assembler.plan import resume_point
    from services.assembler.uploader import load_records
    from shared.core.snapshot import Snapshot

    parts = ctx.state.parts
    records = [load_records(await store.read(settings.buckets.exports, p.records_key)) for p in parts]
    rp = resume_point([(p.number, p.byte_end, r) for p, r in zip(parts, records, strict=True)])
    assert ctx.state.cataloged
    snap = Snapshot.loads(await store.read(settings.buckets.exports, ctx.state.cataloged.snapshot_key))
    straddler = snap.members[rp.member_index]
    assert straddler.kind == "media" and rp.member_offset < rp.offset, "the test needs a straddling image"
    await store.put(straddler.bucket, straddler.key, b"edited after the snapshot")
    await Assembler(settings, store)(ctx)
    data = await _archive(store, settings, ctx)
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None and straddler.path not in zf.namelist()
    errors = json.loads(zf.read("errors.json"))
    assert [(e["source_id"], e["reason"].split(":")[0]) for e in errors] == [(straddler.source_id, "changed")]
    assert ctx.state.completed and ctx.state.completed.error_count == 1
