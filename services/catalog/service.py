"""The catalog step: read the tenant's content once, HEAD every object, freeze the snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC

from services.catalog.readme import render_readme
from services.catalog.render import BlogPlanner, Heads, Plan, Readme, plan_storage
from services.catalog.spool import store_spool
from shared import __version__
from shared.archive import layout
from shared.archive.names import sanitize_for_path
from shared.content.port import ContentSource, Row
from shared.core import events as ev
from shared.core.keys import archive_key, is_exports_key, is_tenant_source, snapshot_key, texts_key
from shared.core.snapshot import Dumped, SnapshotHeader, dump, remove_work_objects, sha256_hex
from shared.eventlog.jetstream import Conflict, Loaded
from shared.objectstore import (
    InvalidKey,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    StoreRefused,
    StoreUnavailable,
)
from shared.runtime import faults
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext

HEAD_CONCURRENCY = 16
LIST_AT_LEAST = 32  # wanted keys in one folder from which listing it beats HEADing each
DUMP_ON_LOOP = 1000  # members a snapshot may have to be written on the event loop (~10 ms), not in a thread


RENDER_BATCH = 500  # posts or pages read, then rendered in a thread, at a time (the adapters fetch 500 too)


async def _take(rows: AsyncIterator[Row], n: int) -> list[Row]:
    """The next ``n`` rows of ``rows`` (fewer: it ended), leaving the rest to be read."""
    batch: list[Row] = []
    if n:
        async for row in rows:
            batch.append(row)
            if len(batch) == n:
                break
    return batch


async def _render(steps: list[Callable[[], object]]) -> None:
    """Run ``steps`` in order in one worker thread, and forget them (their rows) once run."""
    work = list(steps)
    steps.clear()

    def run() -> None:
        for step in work:
            step()
        work.clear()

    await asyncio.to_thread(run)


def should_run(loaded: Loaded) -> bool:
    """Catalog runs until ExportCataloged is in the log, and never for a stopping export."""
    s = loaded.state
    return not s.stopping and s.cataloged is None


class Catalog:
    def __init__(self, settings: Settings, store: ObjectStore, content: ContentSource) -> None:
        self.settings = settings
        self.store = store
        self.content = content

    async def __call__(self, ctx: StepContext) -> None:
        state = ctx.state
        req = state.request
        assert req is not None
        if state.status == "pending":
            await ctx.append(ev.CatalogStarted(export_id=req.export_id, tenant_id=req.tenant_id),
                             msg_id=f"{req.export_id}:CatalogStarted")
        faults.point("catalog.started")
        await faults.slow("catalog.read")
        created = req.occurred_at.astimezone(UTC)
        generator = f"grove-export {__version__}"

        def readme(plan: Plan) -> None:  # in the rendering thread, before any other text
            plan.add_readme(render_readme(
                username=req.username, tenant_id=req.tenant_id, export_id=req.export_id, mode=req.mode,
                created_at=created, counts=plan.counts, include_images=req.include_images,
                generator=generator, missing=len(plan.errors),
            ).encode(), created)

        plan = await self._plan(req, ctx.progress, readme)
        run = secrets.token_hex(8)  # this run's own keys: a run paused past a takeover overwrites nothing logged
        try:
            ctx.progress()
            key = archive_key(req.tenant_id, req.export_id, sanitize_for_path(req.username),
                              layout.utc_text(created)[:10])
            header = SnapshotHeader(
                export_id=req.export_id, tenant_id=req.tenant_id, mode=req.mode, username=req.username,
                include_images=req.include_images, created_at=created, archive_key=key,
                item_counts=plan.counts, generator=generator,
            )
            dumped = await self._freeze(req, header, plan, ctx.progress, run)
        finally:
            plan.close()
        skey = snapshot_key(req.tenant_id, req.export_id, run)
        await self.store.put(self.settings.buckets.exports, skey, dumped.data, "application/x-ndjson")
        faults.point("catalog.snapshot_stored")
        try:
            await ctx.append(ev.ExportCataloged(
                export_id=req.export_id, tenant_id=req.tenant_id, snapshot_key=skey,
                snapshot_sha256=sha256_hex(dumped.data), archive_key=key, member_count=dumped.member_count,
                total_bytes=dumped.total_bytes, item_counts=plan.counts, error_count=len(plan.errors),
            ), msg_id=f"{req.export_id}:ExportCataloged")
        except Conflict:
            # Refused. When nothing will ever read what was just stored — the export was cancelled
            # or ended meanwhile (the canceller's sweep may have run before these writes), or its
            # log was erased while this run was paused (then nobody else would remove them: the
            # log no longer names the export) — remove it: the snapshot and the rendered posts are
            # the tenant's content. An export still under way re-decides and catalogs again.
            # Else, unless the logged ExportCataloged is this run's own (it went in and only its reply
            # was lost: the retried publish met it), another run's snapshot is or will be the logged
            # one, and this run's own two objects go. Looked at as the stream's leader holds the log: a
            # follower still behind (a stream of several replicas) answered that the export did not exist,
            # and its logged snapshot — another run's, or this run's own whose reply was lost — went.
            now, bucket = (await ctx.peek_at_leader()).state, self.settings.buckets.exports
            if not now.exists or now.stopping:
                await remove_work_objects(self.store, bucket, req.tenant_id, req.export_id)
            elif now.cataloged is None or now.cataloged.snapshot_key != skey:
                with contextlib.suppress(StoreError):  # left for the sweep at the export's end
                    await self.store.delete_many(bucket, [skey, texts_key(req.tenant_id, req.export_id, run)])
            raise

    async def _plan(self, req: ev.ExportRequested, moved: Callable[[], None], readme: Readme | None = None) -> Plan:
        """``moved``: called as the work advances (the worker stops a step that stalls)."""
        b = self.settings.buckets
        if req.mode == "storage":
            async with self.content.read(req.tenant_id) as read:
                files = [r async for r in read.amber_files()]
            moved()
            heads = await self._tenant_heads(req.tenant_id, [(b.amber, r["r2_key"]) for r in files], moved)
            return await asyncio.to_thread(plan_storage, files, b.amber, heads, readme)
        # One snapshot: read in transactions of their own, an edit committed between the posts and
        # the media gave an archive that never existed (a post naming an image whose row was gone).
        # The posts and pages are rendered as they arrive, a batch at a time, inside that read: a
        # tenant's rows were all held at once (176 MiB of the 100,000-post tenant's 345 MiB peak).
        planner: BlogPlanner | None = None
        try:
            async with self.content.read(req.tenant_id) as read:
                media = [r async for r in read.media()]  # first: posts link to their names; metadata travels even without images
                posts, pages = read.posts(), read.pages()
                first_posts = await _take(posts, RENDER_BATCH)
                moved()
                first_pages = await _take(pages, RENDER_BATCH)
                more_posts, more_pages = len(first_posts) == RENDER_BATCH, len(first_pages) == RENDER_BATCH
                # README.md (first in the archive and the texts object) says how many: a small tenant's
                # are the rows read; a bigger one's are counted in the same snapshot
                counts = (await read.count("posts") if more_posts else len(first_posts),
                          await read.count("pages") if more_pages else len(first_pages))
                moved()
                heads = await self._tenant_heads(req.tenant_id, [(b.images, r["r2_key"]) for r in media], moved) \
                    if req.include_images else {}
                planner = BlogPlanner(req.include_images, b.images, heads, f"Posts by {req.username}", moved, readme)
                # Rendering is CPU work (YAML front matter: minutes for 100,000 posts): off the event loop,
                # so in-progress acks and the heartbeat keep flowing meanwhile. A batch of rows is read
                # here, then rendered there; a small tenant (every stream under one batch) is rendered
                # in one hop, as it was.
                steps: list[Callable[[], object]] = [
                    functools.partial(planner.media, media), functools.partial(planner.begin, *counts),
                    functools.partial(planner.posts, first_posts)]
                del media, first_posts

                async def rest(rows: AsyncIterator[Row], render: Callable[[list[Row]], None], more: bool) -> None:
                    while more:  # render what is queued (a thread), then read the next batch (here)
                        await _render(steps)
                        batch = await _take(rows, RENDER_BATCH)
                        moved()
                        more = len(batch) == RENDER_BATCH
                        steps.append(functools.partial(render, batch))
                        del batch

                await rest(posts, planner.posts, more_posts)
                steps.append(functools.partial(planner.pages, first_pages))
                del first_pages
                await rest(pages, planner.pages, more_pages)
                steps.append(planner.end)
                await _render(steps)
        except BaseException:
            if planner is not None:
                planner.close()  # now, or (a batch still rendering in its thread) when that batch ends
            raise
        return planner.plan

    async def _freeze(self, req: ev.ExportRequested, header: SnapshotHeader, plan: Plan,
                      moved: Callable[[], None], run: str) -> Dumped:
        """Store the texts object (the plan's spool), then write the snapshot member by member (in a
        thread: 100,000 members take seconds)."""
        bucket, tkey = self.settings.buckets.exports, texts_key(req.tenant_id, req.export_id, run)
        etag = await store_spool(self.store, bucket, tkey, plan.spool, "application/octet-stream",
                                 self.settings.min_part_size, moved)
        members = layout.iter_snapshot_members(plan.texts, plan.objects, layout.TextsObject(bucket, tkey, etag))
        if len(plan.texts) + len(plan.objects) <= DUMP_ON_LOOP:
            return dump(header, members, plan.errors)
        return await asyncio.to_thread(dump, header, members, plan.errors)

    async def _tenant_heads(self, tenant_id: str, objects: list[tuple[str, str]], moved: Callable[[], None]) -> Heads:
        """:meth:`_head_all` of the tenant's own objects; a key outside the tenant's prefix is that
        item's reason (errors.json) and is never read: a content row naming another tenant's key put
        that tenant's file in this tenant's archive. So is a key of the exports' own
        (:func:`is_exports_key`) in a bucket media or files share with them."""
        own: list[tuple[str, str]] = []
        heads: Heads = {}
        exports = self.settings.buckets.exports
        for o in objects:
            if o[0] == exports and is_exports_key(o[1]):  # a bucket shared with the exports: none of theirs
                heads[o] = "outside: its storage key is among the exports' own objects, so it was not read"
            elif is_tenant_source(self.settings.source_key_prefix, tenant_id, o[1]):
                own.append(o)
            else:
                heads[o] = "outside: its storage key is not under this tenant's (GROVE_SOURCE_KEY_PREFIX), so it was not read"
        return heads | await self._head_all(own, moved)

    async def _head_all(self, objects: list[tuple[str, str]], moved: Callable[[], None]) -> Heads:
        """Real size and ETag of every object (the database's declared size is not trusted). Keys
        sharing a folder with many others (a tenant's media) are read from one listing of that
        folder — a thousand keys per call instead of a HEAD each; whatever the listing does not
        show is HEADed on its own, so a missing or odd key is answered exactly as before. A key the
        store cannot hold, or any other error of one file, is that item's reason (errors.json); an
        unavailable or refusing store fails the step as for every other call."""
        gate = asyncio.Semaphore(HEAD_CONCURRENCY)

        async def head(bucket: str, key: str) -> tuple[int, str] | str:
            async with gate:
                try:
                    info = await self.store.head(bucket, key)
                except (ObjectNotFound, PreconditionFailed):
                    moved()
                    return "missing: the file is not in storage"
                except (StoreUnavailable, StoreRefused):
                    raise  # the store, not this file: retried (transient) or the step fails at once (refused)
                except InvalidKey:  # e.g. `a//b.jpg`, `../x`, `dir/` on the filesystem store
                    moved()
                    return "unreadable: its storage key cannot name a file (an empty, . or .. segment, a / at an end, a NUL, a name too long)"
                except StoreError:  # this file, as the assembler decides it: listed in errors.json
                    moved()
                    return "unreadable: the storage service returned an error for this file"
                moved()
                return info.size, info.etag

        folders: dict[tuple[str, str], set[str]] = {}
        for bucket, key in objects:
            folder = key[:key.rfind("/") + 1]
            if folder:
                folders.setdefault((bucket, folder), set()).add(key)
        listed: dict[tuple[str, str], tuple[int, str]] = {}
        for (bucket, folder), keys in folders.items():
            if len(keys) >= LIST_AT_LEAST:
                listed.update(((bucket, o.key), (o.size, o.etag))
                              for o in await self.store.list_keys(bucket, folder) if o.key in keys)
                moved()

        async def known(bucket: str, key: str) -> tuple[int, str] | str:
            return listed.get((bucket, key)) or await head(bucket, key)

        found = await asyncio.gather(*(known(b, k) for b, k in objects))
        return dict(zip(objects, found, strict=True))
