"""`grove-export seed` is all or nothing. Seen: stopped by SIGTERM while it made images, it left a
tenant row with no content in the content database and the images it had put in the store, under a
tenant id it never printed (rows went in table by table as it went)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings


class CutShort:
    """The store, until its ``after``-th put: that one is cancelled as Ctrl-C cancels the command."""

    def __init__(self, inner: ObjectStore, after: int) -> None:
        self.inner, self.after, self.puts = inner, after, 0

    def __getattr__(self, name: str):  # noqa: ANN204 - every other call goes to the real store
        return getattr(self.inner, name)

    async def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        self.puts += 1
        if self.puts == self.after:
            await self.inner.put(bucket, key, data, content_type)  # landed, then the interrupt
            raise asyncio.CancelledError
        await self.inner.put(bucket, key, data, content_type)

    async def delete(self, bucket: str, key: str) -> None:
        await self.inner.delete(bucket, key)


@pytest.mark.parametrize("after", [3, 10])  # among the images; among the Amber files
async def test_a_seed_cut_short_leaves_no_tenant_row_and_no_file(content: ContentSource, store: ObjectStore,
                                                                  settings: Settings, tmp_path: Path,
                                                                  after: int) -> None:
    with pytest.raises(asyncio.CancelledError):
        await seed_tenant(content, CutShort(store, after), tenant_id="t_cut", images=8, files=6,  # type: ignore[arg-type]
                          images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber,
                          image_size=(16, 16))
    assert await content.tenant("t_cut") is None
    for bucket in (settings.buckets.images, settings.buckets.amber):
        assert await store.list_keys(bucket, "t_cut/") == []
    seeded = await seed_tenant(content, store, tenant_id="t_cut", images=8, files=6, image_size=(16, 16),
                               images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber)
    assert await content.tenant("t_cut") is not None and len(seeded.image_keys) == 8  # and it can be run again


class CommittedThenCut:
    """The content source, whose write commits and is then cut short, as Ctrl-C landing in the
    connection's close after the commit (or the pool's release) cuts it."""

    def __init__(self, inner: ContentSource) -> None:
        self.inner = inner

    def __getattr__(self, name: str):  # noqa: ANN204 - every other call goes to the real source
        return getattr(self.inner, name)

    async def insert_tables(self, batches):  # type: ignore[no-untyped-def]
        await self.inner.insert_tables(batches)
        raise asyncio.CancelledError


async def test_a_seed_cut_short_after_its_rows_committed_keeps_its_files(
        content: ContentSource, store: ObjectStore, settings: Settings) -> None:
    with pytest.raises(asyncio.CancelledError):
        await seed_tenant(CommittedThenCut(content), store, tenant_id="t_late", images=3, files=2,  # type: ignore[arg-type]
                          images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber,
                          image_size=(16, 16))
    assert await content.tenant("t_late") is not None
    async with content.read("t_late") as read:
        named = [row["r2_key"] async for row in read.media()] + [row["r2_key"] async for row in read.amber_files()]
    held = [o.key for bucket in (settings.buckets.images, settings.buckets.amber)
            for o in await store.list_keys(bucket, "t_late/")]
    assert len(named) == 5 and sorted(named) == sorted(held)  # every row's file is there


async def test_a_seed_into_a_tenant_already_there_takes_back_the_files_it_put(
        content: ContentSource, store: ObjectStore, settings: Settings) -> None:
    kw = dict(images=3, files=2, image_size=(16, 16), images_bucket=settings.buckets.images,
              amber_bucket=settings.buckets.amber)
    await seed_tenant(content, store, tenant_id="t_twice", **kw)  # type: ignore[arg-type]
    before = (await store.list_keys(settings.buckets.images, "t_twice/"),
              await store.list_keys(settings.buckets.amber, "t_twice/"))
    with pytest.raises(Exception):  # noqa: B017,PT011 - the database refuses the second tenant row
        await seed_tenant(content, store, tenant_id="t_twice", **kw)  # type: ignore[arg-type]
    assert (await store.list_keys(settings.buckets.images, "t_twice/"),
            await store.list_keys(settings.buckets.amber, "t_twice/")) == before
