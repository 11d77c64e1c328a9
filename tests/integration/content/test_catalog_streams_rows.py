"""The catalog renders a tenant's posts and pages as their rows arrive, a batch at a time, inside its
one read of the content (a SQLite file here): memory does not grow with the number of rows, and the
plan is the one :func:`plan_blog` gives over all the rows at once, byte for byte.

Before, ``Catalog._plan`` read every post, page and media row into lists and then rendered them
(176 MiB of rows traced for a tenant of 100,000 posts of 1 KB, tests/bench/catalog_100k.py).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.catalog import spool
from services.catalog.readme import render_readme
from services.catalog.render import Plan, plan_blog
from services.catalog.service import RENDER_BATCH, Catalog
from shared.content.factory import open_content, sqlite_dsn
from shared.content.port import ContentSource, Row
from shared.core import events as ev
from shared.objectstore.fs import FilesystemStore
from shared.runtime.settings import Settings

pytestmark = pytest.mark.timeout(300)

BODY = 8 * 1024  # bytes of Markdown a post; no links, so rendering is quick
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def _post(i: int, body: int = BODY) -> dict[str, Any]:
    return {"id": f"p{i:05d}", "tenant_id": "t", "slug": f"post-{i % 700}", "title": f"Post {i}",
            "description": "d", "markdown_content": f"{i:06d} ![cat](https://cdn.example/t/media/m{i % 3}.jpg) "
            + "x" * body, "tags": '["a"]', "status": "published" if i % 5 else "draft", "featured_image": None,
            "published_at": 1_700_000_000 + i, "created_at": 1_700_000_000 + i % 900, "updated_at": None}


def _page(i: int) -> dict[str, Any]:
    return {"id": f"g{i:05d}", "tenant_id": "t", "slug": f"page-{i % 300}", "title": f"Page {i}", "description": None,
            "markdown_content": f"page {i}", "type": "page", "display_order": i % 7, "created_at": i,
            "updated_at": 1_800_000_000 - i}


def _media(i: int) -> dict[str, Any]:
    return {"id": f"m{i}", "tenant_id": "t", "filename": "cat.jpg", "original_name": None,
            "r2_key": f"t/media/m{i}.jpg", "url": f"https://cdn.example/t/media/m{i}.jpg", "size": 4,
            "mime_type": "image/jpeg", "alt_text": None, "uploaded_at": i}


async def _source(path: Path, posts: int, pages: int = 0, media: int = 0, body: int = BODY) -> ContentSource:
    db = open_content(sqlite_dsn(path))
    await db.init()
    await db.insert("tenants", [{"id": "t", "username": "u", "display_name": None, "email": None, "created_at": 1}])
    for start in range(0, posts, 1000):
        await db.insert("posts", [_post(i, body) for i in range(start, min(posts, start + 1000))])
    if pages:
        await db.insert("pages", [_page(i) for i in range(pages)])
    if media:
        await db.insert("media", [_media(i) for i in range(media)])
    return db


def _request(include_images: bool = False) -> ev.ExportRequested:
    return ev.ExportRequested(export_id="exp_1", tenant_id="t", user_id="u", user_email="a@b.c", username="u",
                              include_images=include_images, occurred_at=CREATED)


def _readme(plan: Plan) -> None:
    plan.add_readme(render_readme(
        username="u", tenant_id="t", export_id="exp_1", mode="blog", created_at=CREATED, counts=plan.counts,
        include_images=True, generator="g", missing=len(plan.errors)).encode(), CREATED)


async def _rows(rows: AsyncIterator[Row]) -> list[Row]:
    return [r async for r in rows]


def _texts(plan: Plan) -> list[tuple[Any, ...]]:
    return [(t.path, t.kind, t.source_id, t.modified_at, t.data) for t in plan.texts]


async def test_a_tenant_of_several_batches_gives_the_plan_of_all_its_rows_at_once(tmp_path: Path) -> None:
    posts, pages = RENDER_BATCH * 2 + 34, RENDER_BATCH + 77  # batches, and a last one part-full, of each
    db = await _source(tmp_path / "content.db", posts, pages, media=3, body=100)
    settings = Settings()
    store = FilesystemStore(tmp_path / "store")
    for i in (0, 2):  # m1 is missing: an error, known before README.md is written
        await store.put(settings.buckets.images, f"t/media/m{i}.jpg", b"meow", "image/jpeg")
    try:
        plan = await Catalog(settings, store, db)._plan(_request(include_images=True), lambda: None, _readme)
        heads = {(settings.buckets.images, f"t/media/m{i}.jpg"): (4, (await store.head(
            settings.buckets.images, f"t/media/m{i}.jpg")).etag) for i in (0, 2)}
        whole = plan_blog(await _rows(db.posts("t")), await _rows(db.pages("t")), await _rows(db.media("t")),
                          True, settings.buckets.images, heads, "Posts by u", readme=_readme)
    finally:
        await db.close()
    try:
        assert plan.counts == whole.counts == {"posts": posts, "pages": pages, "images": 2}
        assert len(plan.texts) == 1 + posts + pages + 2 and plan.texts[0].path == "README.md"
        assert f"{posts} posts, {pages} pages, 2 images; 1 item could not" in plan.texts[0].data.decode()
        assert _texts(plan) == _texts(whole)
        assert plan.spool.size == whole.spool.size
        assert [(o.path, o.key, o.head) for o in plan.objects] == [(o.path, o.key, o.head) for o in whole.objects]
        assert plan.errors == whole.errors and len(plan.errors) == 1
    finally:
        plan.close()
        whole.close()


async def _traced_peak(db: ContentSource) -> int:
    """Peak traced memory while the catalog plans the tenant in ``db``, the plan held to the end."""
    store = FilesystemStore(Path("/nonexistent"))  # no images: never used
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    plan = await Catalog(Settings(), store, db)._plan(_request(), lambda: None)
    peak = tracemalloc.get_traced_memory()[1] - before
    assert [t.path for t in plan.texts][-2:] == ["index.json", "feed.json"]
    plan.close()
    return peak


async def test_planning_twice_the_posts_takes_no_more_memory_than_a_fraction_of_their_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The texts stay off the heap past a small spool either way: what is measured is the rows.
    monkeypatch.setattr(spool, "IN_MEMORY", 256 * 1024)
    monkeypatch.setattr(spool, "LIST_IN_MEMORY", 64 * 1024)
    few, many = RENDER_BATCH * 3, RENDER_BATCH * 6
    small, big = [await _source(tmp_path / f"{n}.db", n) for n in (few, many)]
    tracemalloc.start()
    try:
        await _traced_peak(small)  # first calls' caches (YAML, ISO times, the connections) are not the rows'
        grown = await _traced_peak(big) - await _traced_peak(small)
    finally:
        tracemalloc.stop()
        await small.close()
        await big.close()
    more_rows = (many - few) * BODY
    # holding every row again: grown > more_rows (12 MiB, and their dicts); one batch at a time: ~0
    assert grown < more_rows / 5, f"{grown / 2**20:.1f} MiB more for {more_rows / 2**20:.1f} MiB more rows"


class _Counting:
    """The content source, counting the post rows its reads give."""

    def __init__(self, source: ContentSource) -> None:
        self._source, self.rows = source, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def read(self, tenant_id: str) -> Any:
        outer = self

        class Read:
            async def __aenter__(self) -> Any:
                self._cm = outer._source.read(tenant_id)
                self._read = await self._cm.__aenter__()
                return self

            async def __aexit__(self, *exc: Any) -> Any:
                return await self._cm.__aexit__(*exc)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._read, name)

            async def posts(self) -> AsyncIterator[Row]:
                async for row in self._read.posts():
                    outer.rows += 1
                    yield row

        return Read()


async def test_a_step_stopped_mid_render_stops_rendering_and_reading(tmp_path: Path) -> None:
    db = await _source(tmp_path / "content.db", RENDER_BATCH * 4, body=100)
    counting = _Counting(db)
    marks = 0

    def moved() -> None:
        nonlocal marks
        marks += 1
        if marks > RENDER_BATCH:  # half-way through the first batch's posts (two marks a post)
            raise _Stopped

    try:
        with pytest.raises(_Stopped):
            await Catalog(Settings(), FilesystemStore(tmp_path / "store"), counting)._plan(  # type: ignore[arg-type]
                _request(), moved)
        assert counting.rows == RENDER_BATCH  # the first batch, and no more
        assert marks == RENDER_BATCH + 1
    finally:
        await db.close()


class _Stopped(Exception):
    pass

