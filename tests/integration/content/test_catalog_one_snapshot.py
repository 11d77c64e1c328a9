"""The catalog's plan is one snapshot of the tenant's content, on SQLite and PostgreSQL.

An edit committed while the catalog reads (here: right after it has read the posts, through a seam
that runs the edit on a connection of its own, no sleeps) must not reach the archive: before, the
pages and media were read in transactions of their own, so the archive held a post naming an image
whose row was gone (the image left out, the link not rewritten) and a page renamed half-way.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.catalog.service import Catalog
from shared.content.factory import open_content, sqlite_dsn
from shared.content.port import ContentSource, Row
from shared.core import events as ev
from shared.objectstore.fs import FilesystemStore
from shared.runtime.settings import Settings

URL = "https://cdn.example/t/media/cat.jpg"
EDIT = ("DELETE FROM media WHERE id = 'm1'", "UPDATE pages SET title = 'Renamed', slug = 'renamed' WHERE id = 'g1'")


async def _after(rows: AsyncIterator[Row], then: Callable[[], Awaitable[None]]) -> AsyncIterator[Row]:
    async for row in rows:
        yield row
    await then()


class _Read:
    def __init__(self, read: Any, then: Callable[[], Awaitable[None]]) -> None:
        self._read, self._then = read, then

    def __getattr__(self, name: str) -> Any:
        return getattr(self._read, name)

    def posts(self) -> AsyncIterator[Row]:
        return _after(self._read.posts(), self._then)


class EditAfterPosts:
    """The content source, with ``then`` run (and awaited) once the posts have been read to the end."""

    def __init__(self, source: ContentSource, then: Callable[[], Awaitable[None]]) -> None:
        self._source, self._then, self.edited = source, then, 0

    async def _edit(self) -> None:
        self.edited += 1
        await self._then()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def posts(self, tenant_id: str) -> AsyncIterator[Row]:
        return _after(self._source.posts(tenant_id), self._edit)

    @asynccontextmanager
    async def read(self, tenant_id: str) -> AsyncIterator[_Read]:
        async with self._source.read(tenant_id) as read:  # type: ignore[attr-defined]
            yield _Read(read, self._edit)


@pytest.fixture(params=["sqlite", "postgresql"])
async def source(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[ContentSource, Callable[[], Awaitable[None]]]]:
    if request.param == "postgresql":
        dsn = str(request.getfixturevalue("postgres_dsn"))

        async def edit() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                async with conn.transaction():
                    for sql in EDIT:
                        await conn.execute(sql)
            finally:
                await conn.close()
    else:
        path = tmp_path / "content.db"
        dsn = sqlite_dsn(path)

        async def edit() -> None:
            with sqlite3.connect(path) as raw:
                for sql in EDIT:
                    raw.execute(sql)

    db = open_content(dsn, pool_max=2)
    await db.init()
    yield db, edit
    await db.close()


async def test_an_edit_committed_while_the_catalog_reads_does_not_reach_the_archive(
        source: tuple[ContentSource, Callable[[], Awaitable[None]]], tmp_path: Path) -> None:
    db, edit = source
    await db.insert("tenants", [{"id": "t", "username": "u", "display_name": None, "email": None, "created_at": 1}])
    await db.insert("posts", [{"id": "p1", "tenant_id": "t", "slug": "hello", "title": "Hello", "description": None,
                               "markdown_content": f"![cat]({URL})\n", "tags": None, "status": "published",
                               "featured_image": URL, "published_at": 5, "created_at": 5, "updated_at": None}])
    await db.insert("pages", [{"id": "g1", "tenant_id": "t", "slug": "about", "title": "About", "description": None,
                               "markdown_content": "me", "type": "page", "display_order": 0, "created_at": 1,
                               "updated_at": None}])
    await db.insert("media", [{"id": "m1", "tenant_id": "t", "filename": "cat.jpg", "original_name": None,
                               "r2_key": "t/media/cat.jpg", "url": URL, "size": 4, "mime_type": "image/jpeg",
                               "alt_text": None, "uploaded_at": 1}])
    settings = Settings()
    store = FilesystemStore(tmp_path / "store")
    await store.put(settings.buckets.images, "t/media/cat.jpg", b"meow", "image/jpeg")
    racing = EditAfterPosts(db, edit)
    req = ev.ExportRequested(export_id="exp_1", tenant_id="t", user_id="u", user_email="a@b.c", username="u",
                             occurred_at=datetime(2026, 1, 1, tzinfo=UTC))

    async with asyncio.timeout(60):
        plan = await Catalog(settings, store, racing)._plan(req, lambda: None)  # type: ignore[arg-type]

    assert racing.edited == 1  # the edit did commit in the middle of the read
    index = json.loads(next(t.data for t in plan.texts if t.path == "index.json"))
    assert plan.counts == {"posts": 1, "pages": 1, "images": 1}, plan.errors
    assert [o.path for o in plan.objects] == ["media/cat.jpg"]
    assert [p["title"] for p in index["pages"]] == ["About"]
    post = next(t.data.decode() for t in plan.texts if t.path == "posts/hello.md")
    assert "![cat](../media/cat.jpg)" in post
    # the edit is there for the next export
    async with asyncio.timeout(60):
        after = await Catalog(settings, store, db)._plan(req, lambda: None)
    assert after.counts == {"posts": 1, "pages": 1, "images": 0}
