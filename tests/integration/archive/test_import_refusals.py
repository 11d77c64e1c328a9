"""`grove-export import` leaves nothing behind on any failure: an archive with bad rows (a duplicate
id, a missing or mistyped field, a post that is not there) or of the wrong shape is refused in one
line before anything is written, and a write the database refuses part-way undoes every table and
every file. A refused tenant can be imported into afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.archivetools.importer import ImportRefused, Rekey, import_archive
from shared.archive.frontmatter import render_markdown
from shared.content.factory import open_content, sqlite_dsn
from shared.content.port import ContentError, ContentRejected, ContentSource
from shared.content.restore import content_counts
from shared.content.sqlite import SqliteContent
from shared.objectstore.fs import FilesystemStore
from tests.unit.archive.test_verify import as_link

SOURCE = "tenant_src"
POST = "posts/hello.md"
IMAGE = b"\xff\xd8not really a jpeg" * 100


def post_meta(**kw: Any) -> dict[str, Any]:
    return {"title": "Hello", "description": None, "slug": "hello", "tags": ["a"], "status": "published",
            "featured_image": None, "featured_image_original": None, "published_at": "2026-01-02T00:00:00Z",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": None, **kw}


def index_doc(image: bytes = IMAGE) -> dict[str, Any]:
    return {"format": "grove-export-index", "version": 1,
            "posts": [{"id": f"post_1_{SOURCE}", "path": POST, "media_links": []},
                      {"id": f"post_2_{SOURCE}", "path": "posts/two.md", "media_links": []}],
            "pages": [{"id": f"page_1_{SOURCE}", "path": "pages/about.md", "media_links": []}],
            "media": [{"id": f"med_1_{SOURCE}", "path": "media/a.jpg", "in_archive": True, "filename": "a.jpg",
                       "original_name": "a.jpg", "alt_text": None, "source_url": "https://cdn.example/x",
                       "object_key": f"{SOURCE}/media/a.jpg", "mime_type": "image/jpeg", "size": len(image),
                       "uploaded_at": "2026-01-01T00:00:00Z"}]}


def members(post: dict[str, Any] | None = None, image: bytes = IMAGE, raw_post: bytes | None = None) -> dict[str, bytes]:
    page = {"title": "About", "description": None, "slug": "about", "type": "page", "display_order": 0,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": None}
    return {POST: raw_post if raw_post is not None else render_markdown(post or post_meta(), "# Hello\n").encode(),
            "posts/two.md": render_markdown(post_meta(slug="two", title="Two"), "two\n").encode(),
            "pages/about.md": render_markdown(page, "about\n").encode(), "media/a.jpg": image}


def archive(path: Path, edit_index: Callable[[dict], Any] | None = None,
            edit_manifest: Callable[[dict], Any] | None = None, post: dict[str, Any] | None = None,
            image: bytes = IMAGE, raw_post: bytes | None = None, compression: int = zipfile.ZIP_STORED,
            raw_index: bytes | None = None) -> Path:
    """An archive that verifies (every checksum right) whatever the edits did to its rows (``raw_post``,
    ``raw_index``: the bytes of posts/hello.md or index.json as they are)."""
    index = index_doc(image)
    if edit_index:
        edit_index(index)
    data = {**members(post, image, raw_post),
            "index.json": raw_index if raw_index is not None else json.dumps(index).encode()}
    manifest: dict[str, Any] = {"tenant_id": SOURCE, "username": "src", "mode": "blog",
                                "members": [{"path": n, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                                            for n, b in data.items()]}
    if edit_manifest:
        edit_manifest(manifest)
    data |= {"manifest.json": json.dumps(manifest).encode(), "errors.json": b"[]"}
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, raw in data.items():
            zf.writestr(name, raw)
    return path


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``grove-export ARGS`` as a person runs it, on a filesystem store and SQLite under ``tmp_path``."""
    env = {**os.environ, "GROVE_STORE": "fs", "GROVE_STORE_ROOT": str(tmp_path / "store"),
           "GROVE_CONTENT_DSN": sqlite_dsn(tmp_path / "content.db")}
    return subprocess.run([sys.executable, "-m", "services.cli", *args],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]  # none when the folder was never made


@pytest.fixture(params=["sqlite", "postgresql"])
async def content(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ContentSource]:
    dsn = str(request.getfixturevalue("postgres_dsn")) if request.param == "postgresql" \
        else sqlite_dsn(tmp_path / "content.db")
    db = open_content(dsn, pool_max=2)
    await db.init()
    yield db
    await db.close()


async def run_import(path: Path, tenant: str, content: ContentSource, store: FilesystemStore) -> Any:
    return await import_archive(path, tenant, content, store, url_template="https://cdn.example/{key}",
                                images_bucket="images", amber_bucket="amber")


async def assert_nothing_left(content: ContentSource, store: FilesystemStore, tenant: str) -> None:
    assert await content.tenant(tenant) is None
    assert set((await content_counts(content, tenant)).values()) == {0}
    assert not [p for p in store.root.rglob("*") if p.is_file()], "files were left in the store"
    assert not [p for p in store.root.glob("*/*")], "folders were left in the store"  # buckets' own stay


def _dup_post_id(i: dict) -> None:
    i["posts"][1]["id"] = i["posts"][0]["id"]


def _no_created(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "created_at"}


BAD_ROWS: dict[str, tuple[dict[str, Any], str]] = {
    "duplicate post id": ({"edit_index": _dup_post_id}, "the archive does not verify: index.json: posts[1].id "
                                                       "'post_1_tenant_src' appears twice"),
    "duplicate media id": ({"edit_index": lambda i: i["media"].append(dict(i["media"][0], in_archive=False, path=None))},
                           "the archive does not verify: index.json: media[1].id 'med_1_tenant_src' appears twice"),
    "post without created_at": ({"post": _no_created(post_meta())}, f"{POST}: front matter: created_at is missing"),
    "created_at not a time": ({"post": post_meta(created_at="yesterday")},
                              f"{POST}: front matter: created_at 'yesterday' is not an ISO 8601 time"),
    "title not text": ({"post": post_meta(title=5)}, f"{POST}: front matter: title is not a string"),
    "post file not in the archive": ({"edit_index": lambda i: i["posts"][0].update(path="posts/nope.md")},
                                     "the archive does not verify: index.json: posts[0].path 'posts/nope.md' is "
                                     "not in the archive"),  # verify says it as import does
    "post without id": ({"edit_index": lambda i: i["posts"][0].pop("id")}, "index.json: posts[0].id is missing"),
    "media size not a number": ({"edit_index": lambda i: i["media"][0].update(size="big")},
                                "index.json: media[0].size is not an integer"),
    "object_key with a NUL": ({"edit_index": lambda i: i["media"][0].update(object_key=f"{SOURCE}/a\0b")},
                              "index.json: media[0].object_key is empty or holds a control character"),
    "front matter not YAML": ({"raw_post": b"---\ntitle: [unclosed\n---\nbody\n"},
                              f"the archive does not verify: {POST}: not a post or page (frontmatter is not valid YAML: "),
    "front matter nested too deep": ({"raw_post": b"---\ntitle: " + b"[" * 5000 + b"]" * 5000 + b"\n---\nbody\n"},
                                     f"the archive does not verify: {POST}: not a post or page (frontmatter is not valid YAML: "),
    "media size past 64 bits": ({"edit_index": lambda i: i["media"][0].update(size=2**70)},
                                "index.json: media[0].size is out of range"),
    "media size negative": ({"edit_index": lambda i: i["media"][0].update(size=-1)},
                            "index.json: media[0].size is negative"),
    "file size negative": ({"edit_index": lambda i: i.update(files=[{
        "id": f"file_1_{SOURCE}", "filename": "a.pdf", "object_key": f"{SOURCE}/files/a.pdf", "size": -5,
        "uploaded_at": "2026-01-01T00:00:00Z"}])}, "index.json: files[0].size is negative"),
    "uploaded_at in year 1 without a zone": ({"edit_index": lambda i: i["media"][0].update(
        uploaded_at="0001-01-01T00:00:00")}, "index.json: media[0].uploaded_at '0001-01-01T00:00:00' is out of range"),
    "created_at in year 1 without a zone": ({"post": post_meta(created_at="0001-01-01T00:00:00")},
                                            f"{POST}: front matter: created_at '0001-01-01T00:00:00' is out of range"),
    "object_key a number": ({"edit_index": lambda i: i["media"][0].update(object_key=5)},
                            "index.json: media[0].object_key is not a string"),
    "manifest without tenant_id": ({"edit_manifest": lambda m: m.pop("tenant_id")},
                                   "manifest.json: tenant_id is missing"),
    "manifest with an empty tenant_id": ({"edit_manifest": lambda m: m.update(tenant_id="")},
                                         "manifest.json: tenant_id is empty"),
    # an export never writes one: the gateway takes no such username (shared/core/printable.username_problem)
    "manifest username over the bound": ({"edit_manifest": lambda m: m.update(username="u" * 257)},
                                         "manifest.json: username is 257 characters long, more than the 256 a "
                                         "username may have"),
    "manifest username with a line break": ({"edit_manifest": lambda m: m.update(username="src\nBcc: x")},
                                            "manifest.json: username holds a control or bidi character"),
    # Hugo builds the unpacked archive: `url: /` publishes the post over the site's home page, each alias
    # is a redirect page (layout.FRONT_MATTER_KEYS: the keys an export writes)
    "front matter Hugo acts on that an export never writes": (
        {"post": post_meta(url="/", aliases=["/login/"])},
        f"the archive does not verify: {POST}: its front matter holds 'url', 'aliases', which an export never "
        "writes (a static-site generator acts on it: Hugo publishes a post at its url and makes a page at each "
        "of its aliases)"),
    "members not objects": ({"edit_manifest": lambda m: m.update(members=["x"])},
                            "the archive does not verify: manifest.json: members[0] is not an object"),
    "index.media not objects": ({"edit_index": lambda i: i.update(media=["x"])},
                                "the archive does not verify: index.json: media[0] is not an object"),
    "created_at null and not unreadable": ({"post": post_meta(created_at=None)},
                                           f"{POST}: front matter: created_at is null and unreadable holds no "
                                           "created_at"),
    "uploaded_at null and not unreadable": ({"edit_index": lambda i: i["media"][0].update(uploaded_at=None)},
                                            "index.json: media[0] uploaded_at is null and unreadable holds no "
                                            "uploaded_at"),
    "unreadable a column import cannot put back": ({"post": post_meta(unreadable={"title": "x"})},
                                                   f"{POST}: front matter: unreadable.title is not expected"),
    "unreadable value a list": ({"post": post_meta(published_at=None, unreadable={"published_at": [1]})},
                                f"{POST}: front matter: unreadable.published_at is not text or a whole number"),
    "unreadable value past 64 bits": ({"edit_index": lambda i: i["media"][0].update(
        uploaded_at=None, unreadable={"uploaded_at": 2**64})}, "index.json: media[0].unreadable.uploaded_at is out "
                                                               "of range"),
    "unreadable tags not text": ({"post": post_meta(tags=[], unreadable={"tags": 5})},
                                 f"{POST}: front matter: unreadable.tags is not a string"),
    "front matter other than index.json": ({"edit_index": lambda i: i["posts"][0].update(title="Hi", tags=["a"])},
                                           f"the archive does not verify: {POST}: its front matter and index.json "
                                           "disagree on title (import restores the front matter's)"),
    "a time both in its field and unreadable": ({"post": post_meta(unreadable={"published_at": 5})},
                                                f"{POST}: front matter: published_at and unreadable.published_at "
                                                "both hold a value"),
}


@pytest.mark.parametrize("case", BAD_ROWS)
async def test_bad_rows_are_refused_before_anything_is_written(case: str, tmp_path: Path,
                                                               content: ContentSource) -> None:
    edits, says = BAD_ROWS[case]
    store = FilesystemStore(tmp_path / "store")
    with pytest.raises(ImportRefused) as refused:
        await run_import(archive(tmp_path / "bad.zip", **edits), "tenant_b", content, store)
    assert str(refused.value).startswith(says), str(refused.value)
    await assert_nothing_left(content, store, "tenant_b")
    plan = await run_import(archive(tmp_path / "good.zip"), "tenant_b", content, store)  # not "not empty"
    assert plan.summary() == "restored 1 media, 2 posts, 1 pages; 1 files put in the store"


@pytest.mark.parametrize("username", ["민준\u3164", "\u200d", "ann\u200b", "u" * 256])
async def test_an_archive_of_a_username_the_gateway_took_then_still_imports(username: str, tmp_path: Path,
                                                                           content: ContentSource) -> None:
    """Review rev2: import held a manifest's username to the gateway's rule for new tokens, which has
    grown (a Hangul filler, a name of a joiner alone, a zero-width space: each taken in a token before),
    so an archive that verifies was refused — a person locked out of their own data. Import holds it to
    what a request is held to: text, not empty, at most 256 characters, no control or bidi character."""
    store = FilesystemStore(tmp_path / "store")
    path = archive(tmp_path / "old.zip", edit_manifest=lambda m: m.update(username=username))
    plan = await run_import(path, "tenant_b", content, store)
    assert plan.summary() == "restored 1 media, 2 posts, 1 pages; 1 files put in the store"


def nothing_put(store: FilesystemStore) -> bool:
    """No file was ever put: a put makes its bucket's folder, which the undo's deletes leave."""
    return not store.root.exists() or not any(store.root.iterdir())


async def test_text_kept_under_unreadable_goes_back_on_sqlite_and_is_refused_whole_on_postgresql(
        tmp_path: Path, content: ContentSource, request: pytest.FixtureRequest) -> None:
    """An export of SQLite content keeps text found in a time column under `unreadable`; import puts
    it back. PostgreSQL's BIGINT column cannot hold it: import refuses it in one line naming the row,
    before the image is put."""
    path = archive(tmp_path / "a.zip", post=post_meta(created_at=None, unreadable={"created_at": "not a time"}))
    store = FilesystemStore(tmp_path / "store")
    if request.node.callspec.params["content"] == "sqlite":
        await run_import(path, "tenant_b", content, store)
        assert {r["id"]: r["created_at"] async for r in content.posts("tenant_b")}["post_1_tenant_b"] == "not a time"
        return
    with pytest.raises(ImportRefused, match=re.escape("posts row 0 ('post_1_tenant_b'): created_at holds 'not a time'")):
        await run_import(path, "tenant_b", content, store)
    await assert_nothing_left(content, store, "tenant_b")
    assert nothing_put(store)


LONG_ID = "".join(hashlib.sha256(str(n).encode()).hexdigest() for n in range(63))


def _taken_post_id(target: str) -> str:
    return Rekey(SOURCE, target).id(f"post_2_{SOURCE}")


async def _another_tenant_holds(content: ContentSource, post_id: str) -> None:
    await content.insert_tables([("tenants", [{"id": "other", "username": "o", "display_name": None, "email": None,
                                               "created_at": 1}]),
                                 ("posts", [{"id": post_id, "tenant_id": "other", "slug": "s", "title": "t",
                                             "created_at": 1}])])


# What the content database refuses of an archive's rows, which import checked only by writing them,
# after the files were put (then deleted): exit 1, an error of the database. Each is now refused with
# the archive's problems, exit 2, before anything is put. (case → archive edits, refused on which
# databases, the line)
DATABASE_REFUSES: dict[str, tuple[dict[str, Any], set[str], str]] = {
    "an id another tenant's row holds": (
        {}, {"sqlite", "postgresql"},
        "the content database would refuse these rows: posts: the id 'post_2_tenant_b' is another row's already "
        "(any tenant's: ids are unique across tenants); nothing was written"),
    "a lone surrogate in text": (
        {"edit_index": lambda i: i["media"][0].update(alt_text="half \ud83c")}, {"sqlite", "postgresql"},
        "the content database would refuse these rows: media row 0 ('med_1_tenant_b'): alt_text holds a lone "
        "surrogate (U+D83C), which is not text; nothing was written"),
    "a NUL in text": (
        {"edit_index": lambda i: i["media"][0].update(alt_text="a\0b")}, {"postgresql"},
        "the content database would refuse these rows: media row 0 ('med_1_tenant_b'): alt_text contains a NUL "
        "character; nothing was written"),
    # 4,032 hex digits that do not compress: "index row size 4048 exceeds btree version 4 maximum 2704" was
    # the write's answer, after the image was put (and deleted), as "the content database refused the read"
    "an id longer than PostgreSQL can index": (
        {"edit_index": lambda i: i["posts"][1].update(id=LONG_ID)}, {"postgresql"},
        "the content database would refuse these rows: posts row 1 ('imp_tenant_b_5feceb66ffc86f38d95'…): its id "
        "is 4,045 bytes, more than PostgreSQL can index (a primary key's entry holds at most 2,704 bytes, "
        "compressed); nothing was written"),
}


@pytest.mark.parametrize("case", DATABASE_REFUSES)
async def test_what_the_database_would_refuse_is_refused_before_anything_is_put(
        case: str, tmp_path: Path, content: ContentSource, request: pytest.FixtureRequest) -> None:
    edits, refused_on, says = DATABASE_REFUSES[case]
    if case == "an id another tenant's row holds":
        await _another_tenant_holds(content, _taken_post_id("tenant_b"))
    store = FilesystemStore(tmp_path / "store")
    path = archive(tmp_path / "a.zip", **edits)
    if request.node.callspec.params["content"] not in refused_on:  # SQLite holds a NUL: restored as it is
        await run_import(path, "tenant_b", content, store)
        return
    with pytest.raises(ImportRefused) as refused:
        await run_import(path, "tenant_b", content, store)
    assert str(refused.value) == says
    await assert_nothing_left(content, store, "tenant_b")
    assert nothing_put(store), "files were put (and taken back) before the database refused the rows"


async def test_a_write_of_an_id_postgresql_cannot_index_is_refused_as_the_row_s(tmp_path: Path,
                                                                                 content: ContentSource) -> None:
    """Should such an id reach the write all the same (check_write not asked), it is the rows' refusal,
    ContentRejected, not "the content database refused the read"."""
    tenant = [{"id": "t_long", "username": "u", "display_name": None, "email": None, "created_at": 1}]
    post = [{"id": LONG_ID, "tenant_id": "t_long", "slug": "s", "title": "t", "created_at": 1}]
    if isinstance(content, SqliteContent):
        assert await content.insert_tables([("tenants", tenant), ("posts", post)]) == 2
        return
    with pytest.raises(ContentRejected, match="posts: index row size"):
        await content.insert_tables([("tenants", tenant), ("posts", post)])
    assert await content.tenant("t_long") is None


async def test_a_role_without_temp_tables_imports_and_an_id_it_cannot_index_is_the_write_s_refusal(
        tmp_path: Path, postgres_dsn: str) -> None:
    """The id check tries a long id in a temporary table; a platform's role may not make one (`REVOKE
    TEMP ON DATABASE … FROM PUBLIC`, a hardening step). Such an import failed in the check as the
    database's failure, "refused the read: InsufficientPrivilegeError: permission denied to create
    temporary tables", exit 1. Without the privilege the check is left to the write, whose refusal is
    the rows' (ContentRejected, all files taken back); an archive of usual ids imports."""
    role = f"grove_notemp_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE ROLE {role} LOGIN; REVOKE TEMP ON DATABASE "{urlsplit(postgres_dsn).path[1:]}" '
                            f"FROM PUBLIC; GRANT ALL ON SCHEMA public TO {role}")
        where = urlsplit(postgres_dsn)
        db = open_content(urlunsplit(where._replace(netloc=f"{role}@{where.netloc.rsplit('@', 1)[-1]}")), pool_max=2)
        store = FilesystemStore(tmp_path / "store")
        try:
            await db.init()
            with pytest.raises(ContentRejected, match="posts: index row size"):
                await run_import(archive(tmp_path / "a.zip", edit_index=lambda i: i["posts"][1].update(id=LONG_ID)),
                                 "tenant_b", db, store)
            await assert_nothing_left(db, store, "tenant_b")  # the image put, and taken back
            assert (await run_import(archive(tmp_path / "b.zip"), "tenant_b", db, store)).summary() == \
                "restored 1 media, 2 posts, 1 pages; 1 files put in the store"
        finally:
            await db.close()
    finally:
        await admin.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        await admin.close()


async def test_a_write_the_database_refuses_part_way_leaves_nothing(tmp_path: Path, content: ContentSource) -> None:
    """The plan is sound and the database takes it when checked, but another tenant's row takes the id
    the second post gets before the write (a race): the media rows went in first, the tenant row before
    them; all of it is undone, and the image deleted."""
    class TakenMeanwhile:
        def __getattr__(self, name: str) -> Any:
            return getattr(content, name)

        async def insert_tables(self, batches: Any) -> int:
            await _another_tenant_holds(content, _taken_post_id("tenant_b"))
            return await content.insert_tables(batches)

    store = FilesystemStore(tmp_path / "store")
    with pytest.raises(ContentError, match="posts"):
        await run_import(archive(tmp_path / "a.zip"), "tenant_b", TakenMeanwhile(), store)  # type: ignore[arg-type]
    await assert_nothing_left(content, store, "tenant_b")
    assert not nothing_put(store)  # the image was put, and deleted


def test_the_cli_refuses_an_id_another_tenant_holds_in_one_line_exit_2(tmp_path: Path) -> None:
    async def seed() -> None:
        db = open_content(sqlite_dsn(tmp_path / "content.db"), pool_max=2)
        await db.init()
        try:
            await _another_tenant_holds(db, _taken_post_id("tenant_b"))
        finally:
            await db.close()

    asyncio.run(seed())
    out = cli(tmp_path, "import", str(archive(tmp_path / "a.zip")), "--tenant", "tenant_b")
    assert (out.returncode, out.stdout) == (2, ""), out.stdout + out.stderr
    assert out.stderr == ("grove-export: import refused: the content database would refuse these rows: posts: the id "
                          "'post_2_tenant_b' is another row's already (any tenant's: ids are unique across tenants); "
                          "nothing was written\n"), out.stderr
    assert not (tmp_path / "store").exists() or not files_in(tmp_path / "store")


def test_the_cli_refuses_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path = archive(tmp_path / "dup.zip", edit_index=_dup_post_id)
    out = cli(tmp_path, "--data", str(tmp_path), "import", str(path), "--tenant", "tenant_b")
    assert out.returncode != 0 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert "import refused: the archive does not verify: index.json: posts[1].id" in out.stderr
    assert not files_in(tmp_path / "store")


def test_an_archive_with_a_symbolic_link_is_refused_in_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    """Its image member is a link to ``../../.ssh/authorized_keys`` (every checksum right): import
    put the link's target text into the store as the image and called it restored."""
    path = as_link(archive(tmp_path / "plain.zip", image=b"../../.ssh/authorized_keys"), tmp_path / "link.zip",
                   "media/a.jpg")
    out = cli(tmp_path, "--data", str(tmp_path), "import", str(path), "--tenant", "tenant_b")
    assert (out.returncode, out.stdout) == (2, ""), out.stdout + out.stderr
    assert out.stderr == ("grove-export: import refused: the archive does not verify: media/a.jpg: a symbolic link "
                          "(an export holds only files; unzip would make the link on disk)\n"), out.stderr
    assert not files_in(tmp_path / "store")


def test_verify_names_front_matter_an_export_never_writes(tmp_path: Path) -> None:
    """A crafted post with `url: /` and `aliases` (checksums right) passed verify, and a Hugo site built
    from the archive put the post over its home page and made a page at /login/."""
    out = cli(tmp_path, "verify", str(archive(tmp_path / "a.zip", post=post_meta(url="/", aliases=["/login/"]))))
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"PROBLEM: {POST}: its front matter holds 'url', 'aliases', which an export never writes (a static-site " \
           "generator acts on it: Hugo publishes a post at its url and makes a page at each of its aliases)" \
           in out.stdout.splitlines(), out.stdout


def test_an_image_of_deflated_zeros_is_imported_whole(tmp_path: Path) -> None:
    """20 MiB of zeros deflated to 20 KB (a person's zero-filled file: over 1,000 to one), listed with
    its right checksum: import restores it, byte for byte, with no option."""
    image = bytes(20 * 2**20)
    path = archive(tmp_path / "zeros.zip", image=image, compression=zipfile.ZIP_DEFLATED)
    out = cli(tmp_path, "--data", str(tmp_path), "import", str(path), "--tenant", "tenant_b")
    assert out.returncode == 0 and "restored 1 media, 2 posts, 1 pages" in out.stdout, out.stdout + out.stderr
    stored = [p for p in (tmp_path / "store").rglob("a.jpg") if p.is_file()]
    assert [p.stat().st_size for p in stored] == [len(image)], stored
    assert hashlib.sha256(stored[0].read_bytes()).digest() == hashlib.sha256(image).digest()


def test_an_index_nested_too_deep_is_refused_in_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    """index.json of 100,000 `[` then as many `]` (200 KB, listed with its right checksum): verify and
    import ended in a RecursionError traceback from the JSON parser."""
    path = archive(tmp_path / "deep.zip", raw_index=b"[" * 100_000 + b"]" * 100_000,
                   compression=zipfile.ZIP_DEFLATED)
    out = cli(tmp_path, "--data", str(tmp_path), "import", str(path), "--tenant", "tenant_b")
    assert (out.returncode, out.stdout) == (2, ""), out.stdout + out.stderr
    assert out.stderr == ("grove-export: import refused: the archive does not verify: index.json: nested too deep "
                          "to read\n"), out.stderr
    assert not files_in(tmp_path / "store")
    checked = cli(tmp_path, "verify", str(path))
    assert checked.returncode == 1 and checked.stderr == "", checked.stderr
    assert "PROBLEM: index.json: nested too deep to read" in checked.stdout.splitlines(), checked.stdout


def test_a_store_failure_naming_an_archive_key_reaches_the_terminal_escaped(tmp_path: Path) -> None:
    """Seen: an object key of 300-odd bytes with a bidi override (U+202E) and a C1 CSI (U+009B) in
    it, which the filesystem store cannot name (ENAMETOOLONG): import undid its puts, but printed the
    key as the archive spelt it, so the archive reordered, or with CSI repainted, the operator's
    terminal. One line, with those characters as escapes, nothing left (import now refuses such a key
    before putting anything, exit 2: test_import_store_keys.py)."""
    key = f"{SOURCE}/media/\u202egpj.exe" + "x" * 300 + "\x9b31m.jpg"
    path = archive(tmp_path / "key.zip", edit_index=lambda i: i["media"][0].update(object_key=key))
    out = cli(tmp_path, "--data", str(tmp_path), "import", str(path), "--tenant", "tenant_b")
    assert (out.returncode, out.stdout, out.stderr.count("\n")) == (2, "", 1), out.stdout + out.stderr
    assert out.stderr.startswith("grove-export: import refused: the store cannot hold the files this archive "
                                 "names: key "), out.stderr
    assert "is too long for a file name" in out.stderr, out.stderr
    assert "\u202e" not in out.stderr and "\x9b" not in out.stderr, ascii(out.stderr)
    assert "\\u202egpj.exe" in out.stderr, out.stderr  # shown as escapes (and cut short)
    assert not files_in(tmp_path / "store")


@pytest.mark.parametrize("featured", [" https://cdn.example/x\n", "\ttenant_src/media/a.jpg?w=5 "])
async def test_a_featured_image_keeps_the_space_around_it(tmp_path: Path, content: ContentSource,
                                                          featured: str) -> None:
    """A featured image the person typed with a space or line break around their image's URL or key
    is theirs (the export finds the image and keeps the text as written in featured_image_original);
    import restored the new tenant's URL or key without it, so the row differed from the one exported."""
    store = FilesystemStore(tmp_path / "store")
    post = post_meta(featured_image="../media/a.jpg", featured_image_original=featured)
    await run_import(archive(tmp_path / "a.zip", post=post), "tenant_b", content, store)
    got = {r["id"]: r["featured_image"] async for r in content.posts("tenant_b")}
    new = featured.replace("https://cdn.example/x", "https://cdn.example/tenant_b/media/a.jpg") \
        .replace("tenant_src/", "tenant_b/")
    assert got["post_1_tenant_b"] == new, got


async def refused_and_nothing_left(tmp_path: Path, path: Path, match: str) -> None:
    """Importing ``path`` as tenant_b into a new SQLite database and store under ``tmp_path`` is
    refused (``match``), and leaves nothing of the tenant behind."""
    db = open_content(sqlite_dsn(tmp_path / "content.db"), pool_max=2)
    await db.init()
    store = FilesystemStore(tmp_path / "store")
    try:
        with pytest.raises(ImportRefused, match=match):
            await run_import(path, "tenant_b", db, store)
        await assert_nothing_left(db, store, "tenant_b")
    finally:
        await db.close()


def edited_after_the_checksums(path: Path, dst: Path) -> Path:
    """``path`` with its post's body edited and manifest.json as it was: an archive that does not verify."""
    with zipfile.ZipFile(path) as zf:
        altered = {n: zf.read(n) for n in zf.namelist()}
    altered[POST] = altered[POST].replace(b"# Hello\n", b"# Edited after the checksums\n")
    with zipfile.ZipFile(dst, "w") as zf:
        for name, raw in altered.items():
            zf.writestr(name, raw)
    return dst


async def test_the_archive_imported_is_the_one_verified_not_one_put_in_its_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: import verified the archive by its name and then opened the name again, so a file put in
    its place between the two (the swap driven here, right after the check) was imported unchecked —
    a post edited after the checksums were made restored as edited. One open file serves both now."""
    import services.archivetools.verify as verify

    path = archive(tmp_path / "a.zip")
    swapped = edited_after_the_checksums(path, tmp_path / "swapped.zip")
    assert not verify.verify_archive(swapped).ok  # on its own it would be refused
    real = verify.verify_archive
    swaps = []

    def check_then_swap(source: Any, sha256: str | None = None) -> verify.Report:
        report = real(source, sha256)
        os.replace(swapped, path)  # another file at the name, after the check
        swaps.append(report.ok)
        return report

    monkeypatch.setattr(verify, "verify_archive", check_then_swap)
    db = open_content(sqlite_dsn(tmp_path / "content.db"), pool_max=2)
    await db.init()
    try:
        await run_import(path, "tenant_b", db, FilesystemStore(tmp_path / "store"))
        bodies = {r["id"]: r["markdown_content"] async for r in db.posts("tenant_b")}
    finally:
        await db.close()
    assert swaps == [True] and not swapped.exists()  # the swap happened, after a check that passed
    assert bodies["post_1_tenant_b"] == "# Hello\n", bodies


async def test_an_archive_written_to_in_place_after_the_check_is_refused_and_nothing_is_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One open file keeps out a file put at the name, not a writer of this very file (`cp new.zip A.zip`
    truncates and rewrites it; so does `rsync --inplace`): the bytes imported were not the ones checked.
    Driven here: the archive is rewritten in place, with a post edited, right after the check."""
    import services.archivetools.verify as verify

    path = archive(tmp_path / "a.zip")
    other = edited_after_the_checksums(path, tmp_path / "other.zip")
    real, rewrites = verify.verify_archive, []

    def check_then_rewrite(source: Any, sha256: str | None = None) -> verify.Report:
        report = real(source, sha256)
        with open(path, "r+b") as f:  # the same file, truncated and written again, as cp does
            f.truncate(0)
            f.write(other.read_bytes())
        rewrites.append(report.ok)
        return report

    monkeypatch.setattr(verify, "verify_archive", check_then_rewrite)
    await refused_and_nothing_left(tmp_path, path, "the archive was written to while it was imported")
    assert rewrites == [True]  # the rewrite happened, after a check that passed


def with_crc(data: bytes, at: int, crc: int) -> bytes:
    """``data`` with its four bytes at ``at`` chosen so that its CRC-32 is ``crc`` (CRC-32 is linear:
    the 32 bits flipped solve a 32 × 32 system over GF(2))."""
    base = bytearray(data)
    base[at:at + 4] = bytes(4)
    start, basis = zlib.crc32(base), {}  # highest bit → (CRC change, bits flipped)
    for bit in range(32):
        flipped = bytearray(base)
        flipped[at + bit // 8] ^= 1 << bit % 8
        change, bits = zlib.crc32(flipped) ^ start, 1 << bit
        for high in sorted(basis, reverse=True):
            if change >> high & 1:
                change, bits = change ^ basis[high][0], bits ^ basis[high][1]
        if change:
            basis[change.bit_length() - 1] = (change, bits)
    want, flips = start ^ crc, 0
    for high in sorted(basis, reverse=True):
        if want >> high & 1:
            want, flips = want ^ basis[high][0], flips ^ basis[high][1]
    for bit in range(32):
        if flips >> bit & 1:
            base[at + bit // 8] ^= 1 << bit % 8
    assert zlib.crc32(base) == crc
    return bytes(base)


async def test_the_archive_imported_is_the_one_verified_not_one_put_in_its_place_while_it_is_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: verify read a deflated member's bytes by opening the archive's name again, not from the file
    import handed it, so a file put at the name while the check ran was the one checked. Driven here: the
    archive opened holds another image of the same size and CRC-32 (so zipfile reads it without a word),
    its SHA-256 not manifest.json's; the archive as made is put at the name just before the check. The
    check passed, over the bytes at the name, and the image put in the store was the other one."""
    import services.archivetools.verify as verify

    made = archive(tmp_path / "made.zip")
    with zipfile.ZipFile(made) as zf:
        data = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(made, "w", zipfile.ZIP_DEFLATED, compresslevel=0) as zf:  # the bytes as they are
        for name, raw in data.items():
            zf.writestr(name, raw)
    other = with_crc(b"EVIL" + IMAGE[4:], 8, zlib.crc32(IMAGE))
    path = tmp_path / "a.zip"
    path.write_bytes(made.read_bytes().replace(IMAGE, other))
    assert verify.verify_archive(path).problems == ["media/a.jpg: SHA-256 does not match manifest.json"]
    real, swaps = verify.verify_archive, []

    def swap_then_check(source: Any, sha256: str | None = None) -> verify.Report:
        os.replace(made, path)  # the archive as made at the name, after import opened the other
        report = real(source, sha256)
        swaps.append(report.ok)
        return report

    monkeypatch.setattr(verify, "verify_archive", swap_then_check)
    await refused_and_nothing_left(tmp_path, path, re.escape("media/a.jpg: SHA-256 does not match manifest.json"))
    assert swaps == [False]


async def test_a_tenant_with_content_is_refused_saying_what_to_import_into(tmp_path: Path,
                                                                         content: ContentSource) -> None:
    """Seen (a newcomer restoring their archive where it came from): `import refused: tenant 'demo_…' is not
    empty (12 posts, 3 pages, 8 media)`, and nothing on what to do. Import fills an empty tenant only (it
    never adds to or replaces content): the line says so, names the way on, and that nothing was written."""
    store = FilesystemStore(tmp_path / "store")
    await run_import(archive(tmp_path / "good.zip"), "tenant_full", content, store)
    with pytest.raises(ImportRefused) as refused:
        await run_import(archive(tmp_path / "again.zip"), "tenant_full", content, store)
    assert str(refused.value) == ("tenant 'tenant_full' is not empty (2 posts, 1 pages, 1 media): import restores "
                                  "into a tenant without content only, never adding to or replacing one's: pass "
                                  "--tenant with an id that holds none; nothing was written"), str(refused.value)


@pytest.mark.parametrize("generator", ["grove-export 0.1.0", "grove-export 0.2.0"])
async def test_a_post_s_links_are_found_as_the_archive_s_release_found_them(
        tmp_path: Path, generator: str) -> None:
    """Seen (review rvc): an archive 0.1.0 made holds `[r]: ../media/a.jpg x` (a person's own text,
    which 0.1.0 took for a definition and so counted as a look-alike link: the record's `skip`), then
    the export's own `![c](../media/a.jpg)`, then a hand-written `![h](../media/a.jpg)`. Read by 0.2.0's
    rules `[r]` is text, the skip passed over `c`, and `h` got the CDN URL while `c` stayed relative.
    The manifest's generator says which rules made the archive; each is read by its own."""
    body = "[r]: ../media/a.jpg x\n\n![c](../media/a.jpg)\n\n![h](../media/a.jpg)\n"
    skip = 1 if generator.endswith("0.1.0") else 0  # what each release's export recorded for the same body

    def links(i: dict) -> None:
        i["posts"][0]["media_links"] = [{"url": "https://cdn.example/x", "path": "media/a.jpg", "skip": skip}]

    path = archive(tmp_path / "a.zip", edit_index=links, edit_manifest=lambda m: m.update(generator=generator),
                   raw_post=render_markdown(post_meta(), body).encode())
    db = open_content(sqlite_dsn(tmp_path / "content.db"), pool_max=1)
    await db.init()
    try:
        await run_import(path, "t2", db, FilesystemStore(tmp_path / "store"))
        async with db.read("t2") as read:
            posts = {r["slug"]: r["markdown_content"] async for r in read.posts()}
    finally:
        await db.close()
    # the export's own link gets the new tenant's URL; the person's two look-alikes stay as written
    assert posts["hello"] == "[r]: ../media/a.jpg x\n\n![c](https://cdn.example/t2/media/a.jpg)\n\n![h](../media/a.jpg)\n"


async def test_text_longer_than_a_platform_s_own_column_holds_is_refused_before_anything_is_put(
        tmp_path: Path, postgres_dsn: str) -> None:
    """A platform's own tables (kept by ``init``) may give a column a length: `title VARCHAR(40)`, ids
    as `VARCHAR(36)` (a UUID's). A title of 41 characters (or an id the import derives,
    `imp_{tenant}_{old}`, past 36) was refused only by the write, "value too long for type character
    varying(40)", after the files were put and taken back, exit 1. Refused before, naming the row."""
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("""
CREATE TABLE posts (id VARCHAR(36) PRIMARY KEY, tenant_id TEXT NOT NULL, slug TEXT NOT NULL,
  title VARCHAR(40) NOT NULL, description TEXT, markdown_content TEXT NOT NULL DEFAULT '', tags TEXT,
  status TEXT NOT NULL DEFAULT 'draft', featured_image TEXT, published_at BIGINT, created_at BIGINT NOT NULL,
  updated_at BIGINT)""")
    finally:
        await conn.close()
    db = open_content(postgres_dsn, pool_max=2)
    await db.init()
    store = FilesystemStore(tmp_path / "store")
    try:
        with pytest.raises(ImportRefused) as refused:
            await run_import(archive(tmp_path / "a.zip", post=post_meta(title="t" * 41)), "tenant_b", db, store)
        assert str(refused.value) == (
            "the content database would refuse these rows: posts row 0 ('post_1_tenant_b'): title is 41 characters "
            "long, more than posts.title holds in this database (character varying(40)); nothing was written")
        await assert_nothing_left(db, store, "tenant_b")
        assert nothing_put(store)
        with pytest.raises(ImportRefused, match=re.escape(
                "posts row 1 ('imp_tenant_b_" + "f" * 36 + "'): id is 49 characters long")):
            await run_import(archive(tmp_path / "b.zip", edit_index=lambda i: i["posts"][1].update(id="f" * 36)),
                             "tenant_b", db, store)
        assert nothing_put(store)
        assert (await run_import(archive(tmp_path / "c.zip"), "tenant_b", db, store)).summary() == \
            "restored 1 media, 2 posts, 1 pages; 1 files put in the store"  # within the lengths: written
    finally:
        await db.close()
