"""The content-source contract, run on every adapter: SQLite (aiosqlite) and PostgreSQL (asyncpg,
a fresh database per test on the machine's server).

What a catalog may rely on, whichever database is behind it: the spec's queries return the spec's
columns, in the spec's order (ties broken by id, bytewise), only the tenant's rows, hostile text
exactly as written; an empty tenant is empty; a write is all or nothing and checked first; a
100,000-post tenant streams in bounded memory.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.content.factory import open_content, sqlite_dsn
from shared.content.port import ContentError, ContentRejected, ContentSource, ContentUnavailable, Row

POST_COLUMNS = ["id", "slug", "title", "description", "markdown_content", "tags", "status", "featured_image",
                "published_at", "created_at", "updated_at"]
# The spec's pages query plus display_order: the order a person gave their pages travels with them.
PAGE_COLUMNS = ["id", "slug", "title", "description", "markdown_content", "type", "display_order", "created_at", "updated_at"]
MEDIA_COLUMNS = ["id", "filename", "original_name", "r2_key", "url", "size", "mime_type", "alt_text", "uploaded_at"]
AMBER_COLUMNS = ["id", "filename", "original_name", "r2_key", "size", "mime_type", "category", "product",
                 "uploaded_at"]

HOSTILE_TEXT = [
    "'; DROP TABLE posts; --",
    'quotes " and \' and `back`',
    "---\nfront: matter\n---",
    "yes", "null", "~", "",
    "line\r\nbreaks\n\ttabs",
    "Zoë ﬁ e\u0301 \u202eevil.exe \u200b zero-width",
    "emoji 🌲🍂 and astral 𝔊𝔯𝔬𝔳𝔢",
    "back\\slash ../../etc/passwd /abs",
    "%_ like wildcards %% __",
    "$1 ? :name %s {placeholders}",
]


@pytest.fixture(params=["sqlite", "postgresql"])
async def source(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ContentSource]:
    if request.param == "postgresql":
        dsn = str(request.getfixturevalue("postgres_dsn"))
    else:
        dsn = sqlite_dsn(tmp_path / "content.db")
    db = open_content(dsn, pool_max=2)
    await db.init()
    yield db
    await db.close()


async def _all(rows: AsyncIterator[Row]) -> list[Row]:
    return [r async for r in rows]


def _tenant(tid: str) -> dict[str, Any]:
    return {"id": tid, "username": f"u-{tid}", "display_name": None, "email": f"{tid}@example.org",
            "created_at": 1_700_000_000}


def _post(tid: str, pid: str, created: int, **kw: Any) -> dict[str, Any]:
    return {"id": pid, "tenant_id": tid, "slug": f"s-{pid}", "title": f"T {pid}", "description": None,
            "markdown_content": f"# {pid}\n", "tags": '["a","b"]', "status": "published",
            "featured_image": None, "published_at": created, "created_at": created, "updated_at": None, **kw}


def _page(tid: str, pid: str, order: int) -> dict[str, Any]:
    return {"id": pid, "tenant_id": tid, "slug": f"p-{pid}", "title": pid, "description": "d",
            "markdown_content": "body", "type": "page", "display_order": order, "created_at": 1, "updated_at": 2}


def _media(tid: str, mid: str, uploaded: int) -> dict[str, Any]:
    return {"id": mid, "tenant_id": tid, "filename": f"{mid}.jpg", "original_name": None, "r2_key": f"{tid}/{mid}",
            "url": None, "size": 5 * 2**40, "mime_type": "image/jpeg", "alt_text": None, "uploaded_at": uploaded}


def _amber(tid: str, aid: str, uploaded: int) -> dict[str, Any]:
    return {"id": aid, "tenant_id": tid, "filename": f"{aid}.txt", "original_name": aid, "r2_key": f"{tid}/{aid}",
            "size": 3, "mime_type": "text/plain", "category": "uploads", "product": "amber", "uploaded_at": uploaded}


def _project(row: dict[str, Any], cols: list[str]) -> dict[str, Any]:
    return {c: row[c] for c in cols}


async def test_every_query_returns_the_spec_columns_in_the_spec_order(source: ContentSource) -> None:
    await source.insert("tenants", [_tenant("t1"), _tenant("t2")])
    # ties on the sort key are broken by id, bytewise ("B" < "a" < "b"), on every adapter
    posts = [_post("t1", "b", 200), _post("t1", "a", 200), _post("t1", "B", 200), _post("t1", "c", 300),
             _post("t1", "old", -5), _post("t2", "other", 999)]
    pages = [_page("t1", "p2", 2), _page("t1", "p0", 0), _page("t1", "pZ", 1), _page("t1", "pA", 1)]
    media = [_media("t1", "m1", 10), _media("t1", "m2", 30), _media("t1", "m0", 30), _media("t2", "mx", 50)]
    amber = [_amber("t1", "f1", 1), _amber("t1", "f2", 2), _amber("t2", "fx", 3)]
    assert await source.insert("posts", posts) == 6
    await source.insert("pages", pages)
    await source.insert("media", media)
    await source.insert("amber_files", amber)

    got_posts = await _all(source.posts("t1"))
    assert [list(r) for r in got_posts] == [POST_COLUMNS] * 5
    assert [r["id"] for r in got_posts] == ["c", "B", "a", "b", "old"]
    assert got_posts[0] == _project(posts[3], POST_COLUMNS)
    assert [r["id"] for r in await _all(source.pages("t1"))] == ["p0", "pA", "pZ", "p2"]
    assert [list(r) for r in await _all(source.pages("t1"))] == [PAGE_COLUMNS] * 4
    got_media = await _all(source.media("t1"))
    assert [r["id"] for r in got_media] == ["m0", "m2", "m1"]
    assert [list(r) for r in got_media] == [MEDIA_COLUMNS] * 3
    assert got_media[0]["size"] == 5 * 2**40  # sizes past 2^31 survive
    got_amber = await _all(source.amber_files("t1"))
    assert [r["id"] for r in got_amber] == ["f2", "f1"]
    assert got_amber[0] == _project(amber[1], AMBER_COLUMNS)
    assert [r["id"] for r in await _all(source.posts("t2"))] == ["other"]
    assert await source.tenant("t1") == _tenant("t1")


async def test_an_empty_or_unknown_tenant_has_no_rows(source: ContentSource) -> None:
    await source.insert("tenants", [_tenant("empty"), _tenant("full")])
    await source.insert("posts", [_post("full", "p1", 1)])
    for tenant in ("empty", "nobody", "", "full' OR '1'='1", "%"):
        assert await _all(source.posts(tenant)) == []
        assert await _all(source.pages(tenant)) == []
        assert await _all(source.media(tenant)) == []
        assert await _all(source.amber_files(tenant)) == []
    assert await source.tenant("nobody") is None
    assert await source.insert("posts", []) == 0


async def test_hostile_rows_come_back_exactly_as_written(source: ContentSource) -> None:
    tid = "t'; --\"%_"
    await source.insert("tenants", [_tenant(tid)])
    posts = [_post(tid, f"h{i}", 1000 - i, title=text, slug=text, description=text, tags=text,
                   markdown_content=text * 3, featured_image=text or None)
             for i, text in enumerate(HOSTILE_TEXT)]
    posts.append(_post(tid, "big", 1, markdown_content="x" * (2 * 1024 * 1024) + "🌲"))  # a 2 MiB body
    await source.insert("posts", posts)
    got = await _all(source.posts(tid))
    assert got == [_project(p, POST_COLUMNS) for p in posts]
    assert await source.tenant(tid) == _tenant(tid)


async def test_a_nul_character_round_trips_on_sqlite_and_is_refused_whole_on_postgresql(
        source: ContentSource, request: pytest.FixtureRequest) -> None:
    """A platform's SQLite content can hold a NUL, and the export must carry it; PostgreSQL cannot
    store one, so it refuses the batch before writing anything."""
    await source.insert("tenants", [_tenant("t")])
    batch = [_post("t", "ok", 2), _post("t", "bad", 1, title="nul\x00inside")]
    if request.node.callspec.params["source"] == "sqlite":
        await source.insert("posts", batch)
        assert [r["title"] for r in await _all(source.posts("t"))] == [batch[0]["title"], "nul\x00inside"]
        return
    with pytest.raises(ContentRejected, match="NUL"):
        await source.insert("posts", batch)
    assert await _all(source.posts("t")) == []


async def test_text_in_an_integer_column_round_trips_on_sqlite_and_is_refused_whole_on_postgresql(
        source: ContentSource, request: pytest.FixtureRequest) -> None:
    """A platform's SQLite content can hold text where a time belongs, and import puts such a value
    (kept under `unreadable`) back; PostgreSQL's BIGINT cannot hold it: the batch is refused before
    anything is written, in a line naming the row and column (asyncpg's own TypeError named neither)."""
    await source.insert("tenants", [_tenant("t")])
    batch = [_post("t", "ok", 2), _post("t", "bad", 1, created_at="not a time")]
    if request.node.callspec.params["source"] == "sqlite":
        await source.insert("posts", batch)
        assert [r["created_at"] for r in await _all(source.posts("t"))] == ["not a time", 2]
        return
    with pytest.raises(ContentRejected) as refused:
        await source.insert("posts", batch)
    assert str(refused.value) == ("posts row 1 ('bad'): created_at holds 'not a time', which is not a 64-bit integer "
                                  "(the only values this database holds there)")
    with pytest.raises(ContentRejected, match="size holds 18446744073709551616"):
        await source.insert("media", [_media("t", "m1", 1) | {"size": 2**64}])
    assert await _all(source.posts("t")) == [] and await _all(source.media("t")) == []


async def test_text_with_a_lone_surrogate_is_refused_whole_on_every_adapter(source: ContentSource) -> None:
    """JSON can spell a lone surrogate (``"\\ud800"``), so an archive's index.json can hand import one;
    neither database can store it (UTF-8 has no such character). The batch, tenant row included, is
    refused before anything is written, in a line naming the row and column (the driver's
    UnicodeEncodeError named neither and ended import in a traceback)."""
    batch = [("tenants", [_tenant("t")]), ("media", [_media("t", "m1", 1) | {"alt_text": "half \ud83c of a tree"}])]
    with pytest.raises(ContentRejected) as refused:
        await source.insert_tables(batch)
    assert str(refused.value) == "media row 0 ('m1'): alt_text holds a lone surrogate (U+D83C), which is not text"
    assert await source.tenant("t") is None and await _all(source.media("t")) == []


async def test_unknown_tables_and_columns_are_refused(source: ContentSource) -> None:
    with pytest.raises(ContentRejected, match="unknown table"):
        await source.insert("posts; DROP TABLE tenants", [{"id": "x"}])
    with pytest.raises(ContentRejected, match="unknown column"):
        await source.insert("tenants", [{**_tenant("t"), "created_at) VALUES (1); --": 1}])
    with pytest.raises(ContentRejected, match="columns"):
        await source.insert("tenants", [_tenant("a"), {"id": "b", "username": "b", "created_at": 1}])
    assert await source.tenant("t") is None and await source.tenant("a") is None


async def test_a_duplicate_id_rolls_back_the_whole_batch(source: ContentSource) -> None:
    await source.insert("tenants", [_tenant("t")])
    await source.insert("posts", [_post("t", "p1", 1)])
    with pytest.raises(ContentRejected):
        await source.insert("posts", [_post("t", "p2", 2), _post("t", "p1", 3)])
    assert [r["id"] for r in await _all(source.posts("t"))] == ["p1"]


async def test_check_write_refuses_what_insert_tables_would_and_writes_nothing(
        source: ContentSource, request: pytest.FixtureRequest) -> None:
    """An importer asks before it puts a file: an id another tenant's row holds, a row the adapter's
    checks refuse (a NUL on PostgreSQL only), in the line the write would give; a sound write passes,
    and nothing is written either way."""
    await source.insert_tables([("tenants", [_tenant("other")]), ("posts", [_post("other", "p1", 1)])])
    taken = [("tenants", [_tenant("t")]), ("posts", [_post("t", f"p{n}", n) for n in range(2, 600)] + [_post("t", "p1", 1)])]
    with pytest.raises(ContentRejected) as refused:
        await source.check_write(taken)
    assert str(refused.value) == "posts: the id 'p1' is another row's already (any tenant's: ids are unique across tenants)"
    nul = [("tenants", [_tenant("t")]), ("media", [_media("t", "m1", 1) | {"alt_text": "a\x00b"}])]
    if request.node.callspec.params["source"] == "postgresql":
        with pytest.raises(ContentRejected, match=re.escape("media row 0 ('m1'): alt_text contains a NUL character")):
            await source.check_write(nul)
    else:
        await source.check_write(nul)
    await source.check_write([("tenants", [_tenant("t")]), ("posts", [_post("t", "p2", 2)]), ("pages", [])])
    assert await source.tenant("t") is None and await _all(source.posts("t")) == []


async def test_a_write_across_tables_is_all_or_nothing(source: ContentSource) -> None:
    """An importer writes the tenant and every table at once: a row refused in the last table
    leaves no tenant, no posts and no media behind."""
    batches: list[tuple[str, list[dict[str, Any]]]] = [
        ("tenants", [_tenant("t")]), ("posts", [_post("t", "p1", 1)]), ("media", [_media("t", "m1", 1)]),
        ("pages", [_page("t", "g1", 0), _page("t", "g1", 1)])]  # the duplicate id comes last
    with pytest.raises(ContentRejected, match="pages"):
        await source.insert_tables(batches)
    assert await source.tenant("t") is None
    assert await _all(source.posts("t")) == [] and await _all(source.media("t")) == []
    assert await source.insert_tables(batches[:3]) == 3
    assert [r["id"] for r in await _all(source.media("t"))] == ["m1"]


async def test_a_row_for_an_unknown_tenant_is_refused(source: ContentSource) -> None:
    with pytest.raises(ContentRejected):
        await source.insert("posts", [_post("ghost", "p1", 1)])


async def test_a_reader_that_stops_early_gives_its_connection_back(source: ContentSource) -> None:
    await source.insert("tenants", [_tenant("t")])
    await source.insert("posts", [_post("t", f"p{i}", i) for i in range(50)])
    for _ in range(10):  # more early stops than the pool (2) has connections
        async for _row in source.posts("t"):
            break
    assert len(await _all(source.posts("t"))) == 50


async def test_a_database_that_cannot_be_read_is_content_unavailable(tmp_path: Path) -> None:
    garbage = tmp_path / "content.db"
    garbage.write_bytes(b"this is not a sqlite database" * 100)
    for dsn in (sqlite_dsn(garbage), sqlite_dsn(tmp_path / "missing" / "content.db"),
                "postgresql://postgres@127.0.0.1:1/nothing"):
        db = open_content(dsn)
        with pytest.raises(ContentUnavailable):
            await _all(db.posts("t"))
        await db.close()


@pytest.mark.parametrize("dsn", ["postgresql://u:s3cret@127.0.0.1:abc/db", "postgresql://u:s3cret@127.0.0.1:99999/db",
                                 "postgresql://u:s3cret@[::1/db"])
async def test_a_postgresql_dsn_that_cannot_be_parsed_is_content_unavailable_without_its_password(dsn: str) -> None:
    # asyncpg raised ValueError or OverflowError, not a ContentError: the catalog said "An internal
    # error occurred" and the command line printed a traceback instead of its one line.
    db = open_content(dsn)
    with pytest.raises(ContentUnavailable) as caught:
        await _all(db.posts("t"))
    assert "s3cret" not in str(caught.value)
    await db.close()


@pytest.mark.parametrize("dsn", ["postgresql://grove:s3cr/etPW@127.0.0.1:5432/grove",
                                 "postgresql://grove:s3cr#etPW@127.0.0.1:5432/grove",
                                 "postgresql://grove:s3cr?etPW@127.0.0.1:5432/grove", "postgresql://grove:s3cretPW"])
async def test_a_password_that_breaks_the_dsn_is_in_no_message(dsn: str) -> None:
    """A /, # or ? in a password not percent-encoded ends the host there, and asyncpg's words quoted
    what followed: "invalid literal for int() with base 10: 's3cr'" (the password's first part, read
    as the port), "bad query field: 'etPW@…'" (its last), in the catalog's log and on the command
    line; an import's claim raised the ValueError itself (a traceback with it). Neither part is said."""
    db = open_content(dsn)
    with pytest.raises(ContentUnavailable) as caught:
        await _all(db.posts("t"))
    with pytest.raises(ContentUnavailable) as claimed:
        async with db.import_claim("t"):
            pass
    for error in (caught.value, claimed.value):
        assert "s3cr" not in str(error) and "etPW" not in str(error), error
        assert "percent-encoded" in str(error)
    await db.close()


async def test_sqlite_reads_reuse_their_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Opening a connection per query cost the catalog ~2.8 ms of CPU per small export (five queries;
    # measured 4.5 → 1.7 ms): the adapter keeps idle read-only connections between queries.
    import sqlite3

    from shared.content import sqlite as adapter

    path = tmp_path / "content.db"
    db = open_content(sqlite_dsn(path))
    await db.init()
    await db.insert("tenants", [_tenant("t")])
    await db.insert("posts", [_post("t", "p1", 1)])
    opened: list[str] = []
    real_connect = sqlite3.connect

    def connect(database: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if "mode=ro" in str(database):  # the readers' (a write goes through aiosqlite's own)
            opened.append(database)
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(adapter.sqlite3, "connect", connect)
    for _ in range(5):
        assert await db.tenant("t") is not None
        assert [r["id"] for r in await _all(db.posts("t"))] == ["p1"]
    assert len(opened) == 1
    await db.insert("posts", [_post("t", "p2", 2)])  # another writer's commit: the kept reader sees it
    assert [r["id"] for r in await _all(db.posts("t"))] == ["p2", "p1"]
    readers = [db.posts("t") for _ in range(3)]  # three reads open at once: a connection each
    firsts = [await reader.__anext__() for reader in readers]
    assert [row["id"] for row in firsts] == ["p2"] * 3 and len(opened) == 3  # the kept one and two new
    for reader in readers:
        assert [row["id"] async for row in reader] == ["p1"]  # read to the end: each one kept
    await _all(db.pages("t"))
    assert len(opened) == 3
    await db.close()


async def test_sqlite_reads_follow_a_database_file_replaced_under_them(tmp_path: Path) -> None:
    path, other = tmp_path / "content.db", tmp_path / "restored.db"
    for p, post in ((path, "old"), (other, "new")):
        w = open_content(sqlite_dsn(p))
        await w.init()
        await w.insert("tenants", [_tenant("t")])
        await w.insert("posts", [_post("t", post, 1)])
        await w.close()
    db = open_content(sqlite_dsn(path))
    assert [r["id"] for r in await _all(db.posts("t"))] == ["old"]
    other.replace(path)  # a restore, or a new seed, puts another file at the path
    assert [r["id"] for r in await _all(db.posts("t"))] == ["new"]
    path.unlink()
    with pytest.raises(ContentUnavailable, match="does not exist"):
        await _all(db.posts("t"))
    await db.close()


@pytest.mark.parametrize("folder", ["a#b", "c%41", "d?e"])
async def test_sqlite_reads_the_file_its_dsn_names_whatever_characters_its_path_holds(
        tmp_path: Path, folder: str) -> None:
    # The readers open a `file:` URI (for mode=ro): a path's `#` or `?` cut the URI short (read-write
    # on another file, created empty beside it: "no such table"), and `%41` read as `A`.
    (tmp_path / folder).mkdir()
    db = open_content(sqlite_dsn(tmp_path / folder / "content.db"))
    await db.init()
    await db.insert("tenants", [_tenant("t")])
    await db.insert("posts", [_post("t", "p1", 1)])
    assert [r["id"] for r in await _all(db.posts("t"))] == ["p1"]
    assert await db.tenant("t") is not None
    await db.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]  # no stray database beside it


async def test_tables_missing_on_postgresql_is_content_unavailable(postgres_dsn: str) -> None:
    db = open_content(postgres_dsn)  # a fresh database, never initialised
    with pytest.raises(ContentUnavailable, match="posts") as caught:
        await _all(db.posts("t"))
    await db.close()
    # the server answered (UndefinedTableError): said as its refusal, not as a database that is down
    assert str(caught.value).startswith("the content database refused the read: UndefinedTableError")


@pytest.mark.slow
async def test_a_tenant_with_100000_posts_streams_in_bounded_memory(source: ContentSource) -> None:
    n, body = 100_000, "lorem ipsum dolor sit amet " * 40  # ~1 KB a post, ~110 MB if all were held
    await source.insert("tenants", [_tenant("big"), _tenant("small")])
    for start in range(0, n, 10_000):
        await source.insert("posts", [_post("big", f"p{i:06d}", 2_000_000_000 - i, markdown_content=f"{i} {body}")
                                      for i in range(start, start + 10_000)])
    await source.insert("posts", [_post("small", "s1", 1)])

    tracemalloc.start()
    started = time.monotonic()
    count, last, chars = 0, None, 0
    try:
        async for row in source.posts("big"):
            assert last is None or row["created_at"] < last
            last, count, chars = row["created_at"], count + 1, chars + len(row["markdown_content"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    took = time.monotonic() - started
    print(f"\n{type(source).__name__}: 100,000 posts ({chars / 1e6:.0f} MB of text) read in {took:.2f}s "
          f"(traced), peak {peak / 2**20:.1f} MiB of Python memory")
    assert count == n
    assert chars > 100_000_000
    assert peak < 16 * 2**20, f"reading the posts held {peak / 2**20:.1f} MiB at once"


async def test_text_that_is_not_utf8_and_blobs_read_as_text_on_sqlite(tmp_path: Path) -> None:
    """SQLite keeps whatever bytes a platform wrote into a TEXT column — text that is not UTF-8, a
    BLOB — and Python's sqlite3 refused the first with an error that failed the tenant's every export
    ("the content database could not be read"); a blob came through as bytes, which rendering refused
    (TypeError, "an internal error"). Each is read as text, an undecodable byte as U+FFFD."""
    path = tmp_path / "content.db"
    db = open_content(sqlite_dsn(path))
    await db.init()
    await db.insert("tenants", [_tenant("t")])
    await db.insert("posts", [_post("t", "p1", 1)])
    await db.insert("media", [_media("t", "m1", 1)])
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE posts SET title = CAST(X'4361666583' AS TEXT), description = X'00FF41', "
                    "markdown_content = CAST(X'C328' AS TEXT) WHERE id = 'p1'")
        raw.execute("UPDATE media SET alt_text = X'E29C93', filename = CAST(X'FF2E6A7067' AS TEXT) WHERE id = 'm1'")
    post = (await _all(db.posts("t")))[0]
    assert (post["title"], post["description"], post["markdown_content"]) == ("Cafe\ufffd", "\x00\ufffdA", "\ufffd(")
    image = (await _all(db.media("t")))[0]
    assert (image["alt_text"], image["filename"]) == ("✓", "\ufffd.jpg")
    await db.close()


# -- One read of a tenant is one snapshot --------------------------------------------------------
# The catalog reads posts, then pages, then media: each in a transaction of its own, an edit
# committed between them gave an archive that never existed as a whole (a post naming an image
# whose row was deleted a moment later, a page renamed half-way). ``read(tenant)`` is one snapshot:
# these tests commit an edit on another connection between the streams, no sleeps, on every adapter.

DEADLINE_S = 30.0


async def _commit_elsewhere(source: ContentSource, request: pytest.FixtureRequest, *statements: str) -> None:
    """Run and commit ``statements`` on a connection of their own (not the adapter's)."""
    if request.node.callspec.params["source"] == "sqlite":
        with sqlite3.connect(source.path) as raw:  # type: ignore[attr-defined]
            for sql in statements:
                raw.execute(sql)
        return
    import asyncpg

    conn = await asyncpg.connect(str(request.getfixturevalue("postgres_dsn")))
    try:
        async with conn.transaction():
            for sql in statements:
                await conn.execute(sql)
    finally:
        await conn.close()


async def _seed_one_of_each(source: ContentSource) -> None:
    await source.insert("tenants", [_tenant("t")])
    await source.insert("posts", [_post("t", "p1", 10, featured_image="https://cdn.example/t/m1")])
    await source.insert("pages", [_page("t", "about", 1)])
    await source.insert("media", [_media("t", "m1", 10)])
    await source.insert("amber_files", [_amber("t", "f1", 1)])


EDIT = ("DELETE FROM media WHERE id = 'm1'", "UPDATE pages SET title = 'renamed' WHERE id = 'about'",
        "DELETE FROM amber_files WHERE id = 'f1'", "UPDATE posts SET title = 'edited' WHERE id = 'p1'",
        "INSERT INTO posts (id, tenant_id, slug, title, created_at) VALUES ('p2', 't', 'new', 'new', 20)")


async def test_one_read_sees_the_tenant_as_it_was_when_it_began_whatever_commits_meanwhile(
        source: ContentSource, request: pytest.FixtureRequest) -> None:
    await _seed_one_of_each(source)
    async with asyncio.timeout(DEADLINE_S):
        async with source.read("t") as read:
            posts = await _all(read.posts())
            await _commit_elsewhere(source, request, *EDIT)  # between the posts and the rest
            pages, media, files = await _all(read.pages()), await _all(read.media()), await _all(read.amber_files())
            again = await _all(read.posts())
        assert [(p["id"], p["title"]) for p in posts] == [("p1", "T p1")] and again == posts
        assert [p["title"] for p in pages] == ["about"]
        assert [m["id"] for m in media] == ["m1"] and [f["id"] for f in files] == ["f1"]
        # a read begun after the commit sees it
        async with source.read("t") as read:
            assert [(p["id"], p["title"]) for p in await _all(read.posts())] == [("p2", "new"), ("p1", "edited")]
            assert [p["title"] for p in await _all(read.pages())] == ["renamed"]
            assert await _all(read.media()) == [] and await _all(read.amber_files()) == []


async def test_a_read_counts_each_stream_in_its_own_snapshot(
        source: ContentSource, request: pytest.FixtureRequest) -> None:
    # The catalog writes README.md's counts before it renders the posts and pages as they come: the
    # count and the stream it counts must agree, whatever commits in between, interleaved or not.
    await _seed_one_of_each(source)
    await source.insert("tenants", [_tenant("other")])
    await source.insert("posts", [_post("t", f"q{i:04d}", i) for i in range(600)] + [_post("other", "o1", 1)])
    async with asyncio.timeout(DEADLINE_S):
        async with source.read("t") as read:
            posts = read.posts()
            first = await posts.__anext__()
            assert await read.count("posts") == 601  # between two rows of the stream it counts
            await _commit_elsewhere(source, request, *EDIT)
            rest = await _all(posts)
            assert 1 + len(rest) == await read.count("posts") == 601 and first["id"] == "q0599"
            counts = {s: await read.count(s) for s in ("pages", "media", "amber_files")}
            assert counts == {"pages": 1, "media": 1, "amber_files": 1}
        late = read
        with pytest.raises(ContentError, match="has ended"):
            await late.count("posts")
        async with source.read("t") as read:
            assert [await read.count(s) for s in ("posts", "pages", "media", "amber_files")] == [602, 1, 0, 0]
        for tenant in ("other", "nobody", "%"):
            async with source.read(tenant) as read:
                assert await read.count("posts") == (1 if tenant == "other" else 0)
                assert await read.count("media") == 0


async def test_a_read_is_pinned_when_it_is_entered_not_at_its_first_row(
        source: ContentSource, request: pytest.FixtureRequest) -> None:
    await _seed_one_of_each(source)
    async with asyncio.timeout(DEADLINE_S), source.read("t") as read:
        await _commit_elsewhere(source, request, *EDIT)
        assert [p["id"] for p in await _all(read.posts())] == ["p1"]
        assert [m["id"] for m in await _all(read.media())] == ["m1"]


async def test_the_streams_of_one_read_may_be_interleaved_and_stopped_early(source: ContentSource) -> None:
    await source.insert("tenants", [_tenant("t")])
    await source.insert("posts", [_post("t", f"p{i:04d}", i) for i in range(1200)])  # more than a batch
    await source.insert("media", [_media("t", f"m{i:04d}", i) for i in range(1200)])
    async with asyncio.timeout(DEADLINE_S):
        for _ in range(5):  # more reads stopped early than the pool (2) has connections
            async with source.read("t") as read:
                posts, media = read.posts(), read.media()
                pairs = [(await posts.__anext__())["id"], (await media.__anext__())["id"]]
                assert pairs == ["p1199", "m1199"]
                got = [(p["id"], m["id"]) async for p, m in _zip(posts, media)]
                assert len(got) == 1199 and got[-1] == ("p0000", "m0000")
            async with source.read("t") as read:
                async for _row in read.posts():
                    break  # abandoned mid-stream, the read left: its connection is given back
        assert len(await _all(source.posts("t"))) == 1200


async def _zip(a: AsyncIterator[Row], b: AsyncIterator[Row]) -> AsyncIterator[tuple[Row, Row]]:
    async for x in a:
        yield x, await b.__anext__()


async def test_a_stream_used_after_its_read_ended_is_refused_in_one_line(source: ContentSource) -> None:
    await _seed_one_of_each(source)
    async with source.read("t") as read:
        late = read.media()
    with pytest.raises(ContentError, match=r"^the read of tenant 't' has ended: .*$"):
        await _all(late)
    with pytest.raises(ContentError, match="has ended"):
        await _all(read.posts())
    assert [r["id"] for r in await _all(source.media("t"))] == ["m1"]  # the source itself still reads


async def test_a_failure_inside_a_read_gives_its_connection_back(source: ContentSource) -> None:
    await _seed_one_of_each(source)
    for _ in range(5):  # more than the pool (2) has connections
        with pytest.raises(KeyError):
            async with source.read("t") as read:
                async for row in read.posts():
                    raise KeyError(row["id"])
    async with asyncio.timeout(DEADLINE_S), source.read("t") as read:
        assert [r["id"] for r in await _all(read.pages())] == ["about"]
