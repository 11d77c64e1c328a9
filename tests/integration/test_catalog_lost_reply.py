"""A catalog run whose ExportCataloged went in but whose reply was lost (a PubAck timed out, the
retried publish met its own message: a Conflict) keeps the snapshot and texts its logged event names.

Seen (the review of 46f9ff2): a refused run removed its own two objects whenever the export was still
under way, taking the Conflict for another run's win — but here the logged event is this run's, and
the assembler then found no snapshot: the export failed and the person got a failure email."""

from __future__ import annotations

import pytest

from services.catalog.service import Catalog
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.keys import texts_key_beside
from shared.eventlog.jetstream import Conflict
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext
from tests.support.lostreply import LostReplyOf


async def test_a_run_whose_own_event_went_in_keeps_what_it_names(
        settings: Settings, store: ObjectStore, content: ContentSource) -> None:
    seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                               amber_bucket=settings.buckets.amber, posts=3, images=1)
    request = ev.ExportRequested(export_id=ev.new_export_id(), tenant_id=seeded.tenant_id, user_id="u1",
                                 user_email="a@example.org", username="autumn")
    log = LostReplyOf(ev.ExportCataloged)
    await log.append(request, 0)
    ctx = StepContext(log=log, loaded=await log.load(request.tenant_id, request.export_id), settings=settings)
    with pytest.raises(Conflict):
        await Catalog(settings, store, content)(ctx)
    logged = (await log.load(request.tenant_id, request.export_id)).state.cataloged
    assert logged is not None  # the run's own event is in the log
    for key in (logged.snapshot_key, texts_key_beside(logged.snapshot_key)):
        await store.head(settings.buckets.exports, key)  # ObjectNotFound before: removed as another run's
