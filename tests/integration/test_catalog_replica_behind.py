"""A catalog run whose ExportCataloged is refused looks at the log to decide what to delete; on a stream
of several replicas that look is the stream leader's, not a direct get that a follower still behind may
answer.

Seen (review): the look was a direct get. A follower that did not yet hold the run's own ExportCataloged
(it went in; only the reply was lost) had the run delete the logged snapshot and texts; one that held
none of the export had it delete every work object of the export — another run's logged snapshot among
them. Either way the assembler then found no snapshot and the export failed."""

from __future__ import annotations

import pytest

from services.catalog.service import Catalog
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.keys import snapshot_key, texts_key, texts_key_beside, work_prefix
from shared.eventlog.jetstream import Conflict, Loaded
from shared.eventlog.memory import InMemoryEventLog
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext


class _FollowerBehind(InMemoryEventLog):
    """Once the run's ExportCataloged is appended, direct reads (``load`` without ``at_leader``) are
    answered by a follower ``behind`` messages back; the leader's reads and the appends see everything.
    ``lost_reply``: the run's append goes in and answers Conflict (a retried publish met its own
    message); else another run's ExportCataloged is logged first, and the run's is refused."""

    def __init__(self, *, lost_reply: bool, behind: int) -> None:
        super().__init__()
        self.lost_reply, self.behind, self.lagging = lost_reply, behind, False

    async def append(self, event: ev.Event, expected_seq: int, msg_id: str | None = None) -> int:
        if not isinstance(event, ev.ExportCataloged):
            return await super().append(event, expected_seq, msg_id)
        self.lagging = True
        if self.lost_reply:
            await super().append(event, expected_seq, msg_id)
            raise Conflict(f"{event.export_id}: log moved past {expected_seq}")
        other = event.model_copy(update={"snapshot_key": snapshot_key(event.tenant_id, event.export_id, "other")})
        await super().append(other, expected_seq)
        return await super().append(event, expected_seq, msg_id)  # refused: the fence moved

    async def load(self, tenant_id: str, export_id: str, *, at_leader: bool = False) -> Loaded:
        if not self.lagging or at_leader:
            return await super().load(tenant_id, export_id)
        kept, self.messages = self.messages, self.messages[:max(0, len(self.messages) - self.behind)]
        try:
            return await super().load(tenant_id, export_id)
        finally:
            self.messages = kept


async def _refused_run(settings: Settings, store: ObjectStore, content: ContentSource,
                       log: _FollowerBehind) -> ev.ExportCataloged:
    seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                               amber_bucket=settings.buckets.amber, posts=3, images=1)
    request = ev.ExportRequested(export_id=ev.new_export_id(), tenant_id=seeded.tenant_id, user_id="u1",
                                 user_email="a@example.org", username="autumn")
    await log.append(request, 0)
    if not log.lost_reply:  # the other run's objects, as it stored them before logging its event
        for key in (snapshot_key(request.tenant_id, request.export_id, "other"),
                    texts_key(request.tenant_id, request.export_id, "other")):
            await store.put(settings.buckets.exports, key, b"the other run's", "application/octet-stream")
    ctx = StepContext(log=log, loaded=await log.load(request.tenant_id, request.export_id), settings=settings)
    with pytest.raises(Conflict):
        await Catalog(settings, store, content)(ctx)
    logged = (await log.load(request.tenant_id, request.export_id, at_leader=True)).state.cataloged
    assert logged is not None
    return logged


async def test_a_lost_reply_read_by_a_follower_behind_keeps_the_logged_snapshot(
        settings: Settings, store: ObjectStore, content: ContentSource) -> None:
    settings = settings.model_copy(update={"stream_replicas": 3})
    logged = await _refused_run(settings, store, content, _FollowerBehind(lost_reply=True, behind=1))
    for key in (logged.snapshot_key, texts_key_beside(logged.snapshot_key)):
        await store.head(settings.buckets.exports, key)  # ObjectNotFound before: taken for another run's


async def test_a_follower_holding_nothing_of_the_export_deletes_no_other_runs_snapshot(
        settings: Settings, store: ObjectStore, content: ContentSource) -> None:
    settings = settings.model_copy(update={"stream_replicas": 3})
    logged = await _refused_run(settings, store, content, _FollowerBehind(lost_reply=False, behind=10))
    assert logged.snapshot_key == snapshot_key(logged.tenant_id, logged.export_id, "other")
    bucket = settings.buckets.exports
    for key in (logged.snapshot_key, texts_key_beside(logged.snapshot_key)):
        await store.head(bucket, key)  # ObjectNotFound before: the export read as gone, all its objects removed
    left = sorted(o.key for o in await store.list_keys(bucket, work_prefix(logged.tenant_id, logged.export_id)))
    assert left == sorted([logged.snapshot_key, texts_key_beside(logged.snapshot_key)])  # this run's own went
