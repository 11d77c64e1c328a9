"""An assembler whose UploadStarted went in but whose reply was lost (a PubAck timed out, the retried
publish met its own message: a Conflict) leaves the upload its logged event names open.

Seen (noticed in the review of the catalog's per-run keys): the Conflict was taken for another
writer's win and the new upload aborted; the next run found the logged upload gone and started the
archive again from byte 0."""

from __future__ import annotations

import pytest

from services.assembler.service import Assembler
from shared.core import events as ev
from shared.core import keys
from shared.eventlog.jetstream import Conflict
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext
from tests.support.lostreply import LostReplyOf


async def test_an_upload_whose_own_upload_started_went_in_stays_open(settings: Settings, store: ObjectStore) -> None:
    tenant, export = "tenant_a", ev.new_export_id()
    ids = dict(export_id=export, tenant_id=tenant)
    log = LostReplyOf(ev.UploadStarted)
    seq = await log.append(ev.ExportRequested(**ids, user_id="u1", user_email="a@example.org", username="autumn"), 0)
    seq = await log.append(ev.CatalogStarted(**ids), seq)
    cataloged = ev.ExportCataloged(**ids, snapshot_key=keys.snapshot_key(tenant, export), snapshot_sha256="0" * 64,
                                   archive_key=keys.archive_key(tenant, export, "autumn", "2026-12-04"),
                                   member_count=1, total_bytes=10, item_counts={"posts": 1})
    await log.append(cataloged, seq)
    ctx = StepContext(log=log, loaded=await log.load(tenant, export), settings=settings)
    with pytest.raises(Conflict):
        await Assembler(settings, store)._upload(ctx, cataloged)
    logged = (await log.load(tenant, export)).state.upload
    assert logged is not None  # its own event is in the log
    uploads = await store.list_uploads(settings.buckets.exports, keys.export_prefix(tenant, export))
    assert [u.upload_id for u in uploads] == [logged.upload_id]  # [] before: aborted as another writer's
