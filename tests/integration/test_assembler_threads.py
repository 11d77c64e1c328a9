"""More exports at once than the event loop's default executor has threads: every one completes.

Each export's encoder thread waits for the loop's I/O (a window of text members read from S3, part
uploads), and that I/O runs on the loop's default executor (the filesystem store's part writes, for
one; the barrier below reads through the loop as S3 does). Encoders that ran on that same
executor could hold every one of its threads while waiting for I/O that then could not start: a
deadlock, seen at GROVE_CONCURRENCY=8 on 2 CPUs (the default executor has CPUs + 4 threads), with
the in-progress acks keeping the stuck exports from every other replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from services.assembler.service import Assembler
from services.catalog.service import Catalog
from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext
from tests.support.env import build
from tests.support.pipeline import request_export

AT_ONCE = 3


class TextsBarrier:
    """A store whose reads of the text members wait until every export has asked for its own: by
    then each export's encoder thread is waiting on the loop, so all of them are held at once."""

    def __init__(self, store: ObjectStore, exports: int) -> None:
        self._store, self.exports, self.arrived = store, exports, 0
        self.all_here = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        if name == "get_blocking":  # read through the loop, as S3 is: the filesystem store's own
            raise AttributeError(name)  # reads happen in the encoder's thread and never wait on it
        return getattr(self._store, name)

    async def get(self, bucket: str, key: str, **kwargs: Any) -> AsyncIterator[bytes]:
        if "/work/texts" in key:  # the texts object, whichever catalog run wrote it
            self.arrived += 1
            if self.arrived >= self.exports:
                self.all_here.set()
            await asyncio.wait_for(self.all_here.wait(), 30)
        async for chunk in self._store.get(bucket, key, **kwargs):
            yield chunk


async def test_more_exports_at_once_than_the_default_executor_has_threads_all_complete(
        bus: Bus, store: ObjectStore, content: ContentSource, values: dict[str, Any]) -> None:
    settings: Settings = build({**values, "concurrency": AT_ONCE})
    contexts = []
    for i in range(AT_ONCE):
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=3, images=2, seed=40 + i)
        export_id = await request_export(bus, seeded.tenant_id)
        ctx = StepContext(bus.log, await bus.log.load(seeded.tenant_id, export_id), settings)
        await Catalog(settings, store, content)(ctx)
        contexts.append(ctx)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=AT_ONCE))  # as many threads as exports
    barrier = TextsBarrier(store, AT_ONCE)
    assembler = Assembler(settings, barrier)  # type: ignore[arg-type]
    # the three take 1 s here; held on the default executor they never finish (the wait times out)
    await asyncio.wait_for(asyncio.gather(*(assembler(ctx) for ctx in contexts)), timeout=20)
    assert barrier.arrived == AT_ONCE and barrier.all_here.is_set()  # all were held at once
    assert all(ctx.state.assembled is not None for ctx in contexts)
