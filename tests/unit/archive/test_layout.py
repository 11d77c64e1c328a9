"""The archive layout (shared/archive/layout.py), pure: member order, object keys, path collisions,
and that the encoder writes what it is given, in the order given, without deciding anything."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.assembler.encoder import ArchiveStream
from services.assembler.plan import MemberRecord, resume_point
from services.catalog.readme import render_readme
from services.catalog.render import Plan, plan_blog
from services.catalog.spool import Spool
from shared.archive import layout
from shared.archive.frontmatter import parse_markdown, render_markdown
from shared.archive.layout import LayoutError, ObjectMember, TextMember
from shared.archive.names import NameAllocator
from shared.core import keys
from shared.core.snapshot import Snapshot, SnapshotError
from shared.objectstore import ObjectNotFound
from tests.unit.archive.tools import require_tool
from tests.unit.pipeline.test_archive_stream import opener, snapshot

T = datetime(2026, 2, 22, 10, 30, tzinfo=UTC)
STORED = layout.TextsObject("exports", "exports/t1/e1/work/texts.bin", "etag-texts")


def text(path: str, kind: str, data: bytes = b"x", texts: Spool | None = None) -> TextMember:
    """A text member whose bytes are written into ``texts`` (a spool of its own when None)."""
    texts = texts if texts is not None else Spool()
    return TextMember(path, kind, path, T, texts.write(data), len(data), texts)


def obj(path: str, kind: str = "media", ctype: str = "image/jpeg") -> ObjectMember:
    return ObjectMember(path, kind, path, T, "images", f"src/{path}", ctype, 3, head=(3, f"etag-{path}"))


def zip_names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.namelist()


# ---- member order --------------------------------------------------------------------------------

def test_members_are_ordered_readme_posts_pages_index_feed_then_files_keeping_the_catalogs_order() -> None:
    shuffled = [obj("media/b.jpg"), text("feed.json", "index"), text("pages/b.md", "page"), obj("media/a.jpg"),
                text("posts/z.md", "post"), text("index.json", "index"), text("README.md", "readme"),
                text("posts/a.md", "post"), text("pages/a.md", "page")]
    ordered = [t.path for t in layout.in_archive_order(shuffled)]
    assert ordered == ["README.md", "posts/z.md", "posts/a.md", "pages/b.md", "pages/a.md", "index.json", "feed.json",
                       "media/b.jpg", "media/a.jpg"]
    files = [obj("files/x/b", "file"), text("index.json", "index"), obj("files/a", "file"), text("README.md", "readme")]
    assert [m.path for m in layout.in_archive_order(files)] == ["README.md", "index.json", "files/x/b", "files/a"]


def test_snapshot_members_are_the_texts_by_byte_range_then_the_objects_indexed_by_position() -> None:
    spool = Spool()
    texts = layout.in_archive_order([text("index.json", "index", b"{}\n", spool),
                                     text("README.md", "readme", b"# hi\n", spool),
                                     text("posts/a.md", "post", b"post", spool)])
    blob = spool.getvalue()
    members = layout.snapshot_members(texts, [obj("media/b.svg", ctype="image/svg+xml"), obj("media/a.jpg")], STORED)
    assert [(m.index, m.path) for m in members] == [
        (0, "README.md"), (1, "posts/a.md"), (2, "index.json"), (3, "media/b.svg"), (4, "media/a.jpg")]
    for m in members[:3]:
        assert (m.bucket, m.key, m.etag, m.level) == (STORED.bucket, STORED.key, STORED.etag, layout.TEXT_LEVEL)
        assert blob[m.start:m.start + m.size] == next(t.data for t in texts if t.path == m.path) != b""
    assert members[1].content_type == "text/markdown; charset=utf-8" and members[2].content_type == "application/json"
    assert (members[3].key, members[3].etag, members[3].level) == ("src/media/b.svg", "etag-media/b.svg", 6)
    assert members[4].level == 0  # JPEG is stored, not deflated


def test_texts_stored_in_any_order_take_their_archive_place_and_keep_their_own_bytes() -> None:
    spool = Spool()
    texts = [text("posts/a.md", "post", b"post", spool), text("README.md", "readme", b"# readme\n", spool)]
    blob = spool.getvalue()
    members = layout.snapshot_members(texts, [obj("media/a.jpg")], STORED)
    assert [m.path for m in members] == ["README.md", "posts/a.md", "media/a.jpg"]
    assert [blob[m.start:m.start + m.size] for m in members[:2]] == [b"# readme\n", b"post"]


def test_the_catalog_plans_index_and_feed_after_the_pages_and_the_generated_members_come_last() -> None:
    post = {"id": "p1", "slug": "hi", "title": "T", "markdown_content": "b", "created_at": 1, "updated_at": 1}
    page = {"id": "g1", "slug": "about", "title": "A", "markdown_content": "b", "created_at": 1, "updated_at": 1}
    plan = plan_blog([post], [page], [], True, "img", readme=lambda plan: plan.add_readme(b"r", T))
    assert [t.path for t in plan.texts] == ["README.md", "posts/hi.md", "pages/about.md", "index.json", "feed.json"]
    assert [t.path for t in layout.in_archive_order(plan.texts)] == [t.path for t in plan.texts]
    assert [t.start for t in plan.texts] == [0, *(sum(t.size for t in plan.texts[:i]) for i in range(1, 5))]
    assert layout.GENERATED_PATHS == ("manifest.json", "errors.json")


# ---- object keys ---------------------------------------------------------------------------------

def test_object_keys_have_the_spec_format_under_the_exports_prefix() -> None:
    assert keys.archive_key("t1", "e1", "autumn", "2026-02-22") == "exports/t1/e1/grove-export-autumn-2026-02-22.zip"
    assert keys.snapshot_key("t1", "e1") == "exports/t1/e1/work/snapshot.jsonl"
    assert keys.texts_key("t1", "e1") == "exports/t1/e1/work/texts.bin"
    assert keys.records_key("t1", "e1", 7) == "exports/t1/e1/work/parts/00007.json"
    assert keys.tenant_prefix("t1") == "exports/t1/" and keys.work_prefix("t1", "e1") == "exports/t1/e1/work/"


def test_each_catalog_runs_snapshot_and_texts_have_keys_of_its_own() -> None:
    run = "0123456789abcdef"
    assert keys.snapshot_key("t1", "e1", run) == f"exports/t1/e1/work/snapshot-{run}.jsonl"
    assert keys.texts_key("t1", "e1", run) == f"exports/t1/e1/work/texts-{run}.bin"
    assert keys.texts_key_beside(keys.snapshot_key("t1", "e1", run)) == keys.texts_key("t1", "e1", run)
    assert keys.texts_key_beside(keys.snapshot_key("t1", "e1")) == keys.texts_key("t1", "e1")  # logs before runs
    for own in (keys.snapshot_key("t1", "e1"), keys.snapshot_key("t1", "e1", run)):
        assert keys.is_snapshot_key_of("t1", "e1", own), own
    for other in (keys.snapshot_key("t2", "e1", run), keys.snapshot_key("t1", "e2", run),
                  keys.texts_key("t1", "e1", run), "exports/t1/e1/work/snapshot-.jsonl",
                  "exports/t1/e1/work/snapshot-0123456789ABCDEF.jsonl", "exports/t1/e1/work/snapshot-0123.jsonl",
                  "exports/t1/e1/work/snapshot-0123456789abcdef/../x.jsonl", "exports/t1/e1/work/snapshot.jsonl.jsonl",
                  "exports/t1/e1/work/snapshot-0123456789abcdef0.jsonl", "exports/t1/e1/work/snapshot.json"):
        assert not keys.is_snapshot_key_of("t1", "e1", other), other


def test_each_uploads_part_records_have_keys_of_their_own() -> None:
    token = keys.upload_token("upload-1")
    assert keys.RUN.fullmatch(token) and token == keys.upload_token("upload-1") != keys.upload_token("upload-2")
    assert keys.records_key("t1", "e1", 7, "upload-1") == f"exports/t1/e1/work/parts-{token}/00007.json"
    assert keys.is_work_key(keys.records_key("t1", "e1", 7, "upload-1"))
    for own in (keys.records_key("t1", "e1", 7), keys.records_key("t1", "e1", 7, "upload-1"),
                keys.records_key("t1", "e1", 7, "\ud800 a lone surrogate")):
        assert keys.is_records_key_of("t1", "e1", 7, own), own
    for other in (keys.records_key("t2", "e1", 7, "upload-1"), keys.records_key("t1", "e2", 7, "upload-1"),
                  keys.records_key("t1", "e1", 6, "upload-1"), keys.records_key("t1", "e1", 17, "upload-1"),
                  keys.snapshot_key("t1", "e1"), "exports/t1/e1/work/parts-/00007.json",
                  "exports/t1/e1/work/parts-0123456789ABCDEF/00007.json", "exports/t1/e1/work/parts-0123/00007.json",
                  "exports/t1/e1/work/parts-0123456789abcdef/../00007.json", "exports/t1/e1/work/parts/x/00007.json",
                  "exports/t1/e1/work/parts-0123456789abcdef0/00007.json", "exports/t1/e1/work/parts/00007.jsonl",
                  "exports/t1/e1/work/parts-../../../e2/work/parts/00007.json", "exports/t1/e1/work/00007.json"):
        assert not keys.is_records_key_of("t1", "e1", 7, other), other


def test_only_an_exports_own_archive_key_is_its_archive() -> None:
    key = keys.archive_key("t1", "e1", "autumn", "2026-02-22")
    assert keys.is_archive_key_of("t1", "e1", key) and keys.archive_owner(key) == ("t1", "e1")
    for other in (keys.snapshot_key("t1", "e1"), keys.records_key("t1", "e1", 1), "exports/t1/e1/../x.zip",
                  "exports/t1/e1/", "elsewhere/t1/e1/a.zip", "exports/t1/e1/.hidden.zip"):
        assert keys.archive_owner(other) is None, other
    assert not keys.is_archive_key_of("t2", "e1", key) and not keys.is_archive_key_of("t1", "e2", key)
    assert layout.file_name(key) == "grove-export-autumn-2026-02-22.zip"


def test_work_keys_and_owners_are_read_back_from_a_key() -> None:
    assert keys.export_of_key(keys.records_key("t1", "e1", 3)) == ("t1", "e1")
    assert keys.export_of_key("exports/t1") is None and keys.export_of_key("other/t1/e1/x") is None
    assert keys.is_work_key(keys.snapshot_key("t1", "e1")) and keys.is_work_key(keys.texts_key("t1", "e1"))
    assert not keys.is_work_key(keys.archive_key("t1", "e1", "u", "2026-01-01"))


# ---- path collisions -----------------------------------------------------------------------------

def test_colliding_slugs_and_file_names_get_distinct_paths_case_insensitively() -> None:
    names = NameAllocator()
    media = [layout.media_path(names, "m1", "photo.jpg"), layout.media_path(names, "m2", "Photo.JPG"),
             layout.media_path(names, "m3", "   .jpg")]
    posts = [layout.post_path(names, "p1", "Hello"), layout.post_path(names, "p2", "hello"),
             layout.post_path(names, "p3", "../README"), layout.post_path(names, "p4", "")]
    files = [layout.file_path(names, "f1", "a.txt", "Docs"), layout.file_path(names, "f2", "A.TXT", "docs"),
             layout.file_path(names, "f3", "b", None)]
    assert media == ["media/photo.jpg", "media/Photo-2.JPG", "media/media-m3.jpg"]
    assert posts == ["posts/Hello.md", "posts/hello-2.md", "posts/_README.md", "posts/post-p4.md"]
    assert files == ["files/Docs/a.txt", "files/Docs/A-2.TXT", "files/uncategorized/b"]
    layout.check_unique(media + posts + files)  # and no allocated path is the same file as another


def test_index_and_underscore_index_are_never_a_post_or_page_name_for_hugo() -> None:
    # Hugo takes posts/index.md for a leaf bundle (no other post is built) and _index.md for the
    # section's page: such slugs get the name a collision gives, case-insensitively, in both folders.
    names = NameAllocator()
    posts = [layout.post_path(names, "p1", "index"), layout.post_path(names, "p2", "_index"),
             layout.post_path(names, "p3", "INDEX"), layout.post_path(names, "p4", "index-2"),
             layout.post_path(names, "p5", " _Index. "), layout.post_path(names, "p6", "index.md")]
    pages = [layout.page_path(names, "g1", "Index"), layout.page_path(names, "g2", "_index")]
    assert posts == ["posts/index-2.md", "posts/_index-2.md", "posts/INDEX-3.md", "posts/index-2-2.md",
                     "posts/_Index-3.md", "posts/index-md.md"]
    assert pages == ["pages/Index-2.md", "pages/_index-2.md"]
    again = NameAllocator()  # deterministic: the same rows give the same paths
    assert [layout.post_path(again, "p1", "index"), layout.post_path(again, "p2", "_index")] == posts[:2]


def test_a_slug_hugo_reads_as_index_with_a_language_or_format_is_never_a_post_or_page_name() -> None:
    # Hugo (0.111) reads any `index.<anything>.md` as the leaf bundle's index too — posts/index.json.md
    # (slug "index.json") built that one post and none of the others — and `_index.<anything>.md` as
    # the section's page. The first dot becomes a dash; the name is de-duplicated like any other.
    names = NameAllocator()
    posts = [layout.post_path(names, f"p{i}", slug) for i, slug in enumerate(
        ("index.json", "index.fr", "_index.en", "Index.x.y", "index-json", "indexes.md", "index."))]
    pages = [layout.page_path(names, "g1", "index.json"), layout.page_path(names, "g2", "_INDEX.md")]
    assert posts == ["posts/index-json.md", "posts/index-fr.md", "posts/_index-en.md", "posts/Index-x.y.md",
                     "posts/index-json-2.md", "posts/indexes.md.md", "posts/index-2.md"]
    assert pages == ["pages/index-json.md", "pages/_INDEX-md.md"]
    for path in posts + pages:
        assert path.rsplit("/", 1)[1].split(".")[0].casefold() not in ("index", "_index"), path
    plan = plan_blog([{"id": "p1", "slug": "index", "title": "Index post", "markdown_content": "hi"}], [], [],
                     True, "img")
    assert [t.path for t in plan.texts] == ["posts/index-2.md", "index.json", "feed.json"]
    # the slug itself Hugo writes, without uglyURLs, at posts/index.html, under the list page: the file's name
    assert b"slug: index-2\nslug_original: index\n" in plan.texts[0].data


def hugo_built(site: Path, plan: Plan, config: str = "") -> tuple[set[str], set[str]]:
    """(what ``hugo list all`` builds, the posts and pages) of ``plan``'s posts and pages put into a
    new site's content, with ``config`` added to its settings and templates that write, on each
    page built from a post or page, the content file it came from (see :func:`hugo_pages`)."""
    return hugo_site(site, {t.path: t.data for t in plan.texts if t.kind in ("post", "page")}, config)


def hugo_site(site: Path, texts: dict[str, bytes], config: str = "") -> tuple[set[str], set[str]]:
    """:func:`hugo_built` of the content files ``texts`` (path under content/: bytes)."""
    hugo = require_tool("hugo", "hugo")
    subprocess.run([hugo, "new", "site", str(site)], check=True, capture_output=True, timeout=60)
    settings = next(p for p in (site / "hugo.toml", site / "config.toml") if p.exists())
    settings.write_text(settings.read_text() + config)
    (site / "layouts" / "_default").mkdir(parents=True, exist_ok=True)
    (site / "layouts" / "_default" / "single.html").write_text("SINGLE {{ .File.Path }}\n")
    (site / "layouts" / "_default" / "list.html").write_text("LIST {{ .Kind }} {{ .Title }}\n")
    (site / "layouts" / "index.html").write_text("HOME\n")
    for path, data in texts.items():
        (site / "content" / path).parent.mkdir(parents=True, exist_ok=True)
        (site / "content" / path).write_bytes(data)
    listed = subprocess.run([hugo, "list", "all", "-s", str(site)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    return {row["path"] for row in csv.DictReader(io.StringIO(listed.stdout))}, {f"content/{p}" for p in texts}


def hugo_pages(site: Path) -> dict[str, list[str]]:
    """Build the site :func:`hugo_built` made (the build must succeed): each HTML file of public/ by
    what it holds ("SINGLE posts/a.md", "LIST section Posts", "HOME")."""
    built = subprocess.run([require_tool("hugo", "hugo"), "-s", str(site)], capture_output=True, text=True,
                           timeout=120, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    pages: dict[str, list[str]] = {}
    for html in sorted(p for p in (site / "public").rglob("*.html") if p.is_file()):
        pages.setdefault(html.read_text().strip(), []).append(html.relative_to(site / "public").as_posix())
    return pages


def test_a_slug_starting_with_a_hash_is_never_a_name_hugo_skips(tmp_path: Path) -> None:
    # Hugo skips content files whose name starts with `#` (editors' autosave files): the post with the
    # slug "#tag" was posts/#tag.md, in the archive and silently missing from the site Hugo built.
    names = NameAllocator()
    assert [layout.post_path(names, "p1", "#tag"), layout.post_path(names, "p2", "_tag"),
            layout.post_path(names, "p3", "#index.json"), layout.page_path(names, "g1", "##")] == \
        ["posts/_tag.md", "posts/_tag-2.md", "posts/_index-json.md", "pages/_#.md"]
    rows = [{"id": f"p{i}", "slug": slug, "title": f"T{i}", "markdown_content": "hi", "status": "published",
             "created_at": 1} for i, slug in enumerate(("#tag", "#1 post", "plain"))]
    plan = plan_blog(rows, [], [], True, "img")
    built, posts = hugo_built(tmp_path, plan)
    assert built == posts, built


def test_a_slug_ending_in_the_default_language_is_never_a_translation_for_hugo(tmp_path: Path) -> None:
    # Hugo reads posts/notes.en.md as the English version of posts/notes.md: of the posts with the
    # slugs "notes" and "notes.en" it built one, and the other was silently missing from the site.
    names = NameAllocator()
    assert [layout.post_path(names, "p1", "notes"), layout.post_path(names, "p2", "notes.en"),
            layout.post_path(names, "p3", "v1.2.en"), layout.post_path(names, "p4", "notes.EN"),
            layout.post_path(names, "p5", ".en"), layout.page_path(names, "g1", "index.en")] == \
        ["posts/notes.md", "posts/notes-en.md", "posts/v1.2-en.md", "posts/notes.EN.md", "posts/en.md",
         "pages/index-en.md"]
    rows = [{"id": f"p{i}", "slug": slug, "title": f"T{i}", "markdown_content": "hi", "status": "published",
             "created_at": 1} for i, slug in enumerate(("notes", "notes.en", "about", "about.en"))]
    plan = plan_blog(rows, [], [], True, "img")
    built, posts = hugo_built(tmp_path, plan)
    assert built == posts, built


def test_a_slug_cut_to_fit_its_file_name_is_never_a_translation_for_hugo(tmp_path: Path) -> None:
    # A name is cut to 200 bytes, keeping `.md`: cut after Hugo's rules were applied, the slug of 194
    # letters and `.enzzz` was posts/<194 letters>.en.md, which Hugo reads as the English version of the
    # post with the 194 letters as its slug (posts/<194 letters>.md): it built one of the two.
    stem = "b" * 194
    names = NameAllocator()
    paths = [layout.post_path(names, "p1", stem), layout.post_path(names, "p2", stem + ".enzzz"),
             layout.page_path(names, "g1", "c" * 194 + ".enzzz")]
    assert paths == [f"posts/{stem}.md", f"posts/{'b' * 191}.enzzz.md", f"pages/{'c' * 191}.enzzz.md"]
    assert all(len(p.rsplit("/", 1)[1].encode()) <= 200 for p in paths)
    rows = [{"id": f"p{i}", "slug": slug, "title": f"T{i}", "markdown_content": "hi", "status": "published",
             "created_at": 1} for i, slug in enumerate((stem, stem + ".enzzz", stem + ".en" + "z" * 20))]
    plan = plan_blog(rows, [], [], True, "img")
    built, posts = hugo_built(tmp_path, plan)
    assert built == posts, built


# Slugs and tags Debian's Hugo 0.111 could not build as a page of their own (layout.hugo_unsafe), and
# some it could, beside them: the same post or tag must not be taken for another.
HUGO_UNSAFE_SLUGS = ("..", "../../", "../../tags", "../c", "x/../../y", "/", ".", "index.html", "../index.xml",
                     "a/index.html", "Index.XML",
                     # characters Hugo drops (layout.hugo_path_text): `x/.!./.!./y` built public/y.html
                     "..!", ".?.", "x/.!./.!./y", "index.html!", "a/..?", "!", "?!", "..\u200b", "../\U0001f600c",
                     "\U0001f332",  # a slug of nothing Hugo keeps: its post was under posts/index.html
                     # a part past a file name's length ended the build ("file name too long"), and so did
                     # a file name of 50 trees given instead (%F0%9F%8C%B2 each: 600 bytes)
                     "a" * 300, "x/" + "\u00e9" * 130, "\U0001f332" * 50, "/".join(["abcdefgh"] * 500),
                     # Ⱥ is 2 bytes and its lower case 3, as Hugo writes it: a stand-in cut by the bytes
                     # before lower-casing was 294 bytes on disk, and the build ended again (review helper)
                     "\u023a" * 100,
                     # Hugo trims the `-` at a slug's ends and joins it to the section's `/`: each was written to the
                     # section's list page (posts/index.html), or built no page (`..-`), or ended the build
                     # (`-index.xml`); `-.-` and `-index.xml` as file names too, Hugo trimming them as slugs
                     "-.", "/-", "-!", "\x1c", "-\x1c-", "..-", "x/..-", "-/-", "-.-", "-index.xml",
                     # without uglyURLs Hugo writes the slug `index` (`-index-`) at posts/index.html, the list page
                     "index", "-index-")
HUGO_SAFE_SLUGS = ("a", "c", "y", "a/b", "a/...", "\\..", "%2e%2e", "x", "b" * 240, " ", "a/-..-", "-z-",
                   " .. ", "..\t",  # whitespace at a slug's ends is a `-` to Hugo: posts/-..-/, posts/..-/
                   "Index", "index!", "/index", "x/index")  # posts/index/index.html, posts/x/index/index.html
HUGO_UNSAFE_TAGS = ("..", " .. ", "../..", "../x", "../posts", ".", "/", "./x", "...", "index.html", "a/index.xml",
                    ".!.", "..!", "!./x", "?", "*", "index.xml!", "\U0001f332",
                    "\\..", "etc.",  # ending in a dot: a page listing no post (tags/etc./, taken for etc)
                    "t" * 300, "\u00e9" * 130, "/".join(["abcdefgh"] * 500))  # "file name too long" ended the build
HUGO_SAFE_TAGS = ("a", "x", "...x", "a/b", "%2e%2e", "a!b")


@pytest.mark.parametrize("config", ["", "uglyURLs = true\n"], ids=["pretty-urls", "ugly-urls"])
def test_every_post_and_page_is_built_by_hugo_on_its_own_page_in_its_section_whatever_its_slug_or_tags(
        tmp_path: Path, config: str) -> None:
    # A slug `..` or `../../tags` built no page, `../c` built public/c.html (over what was there), `.`
    # or `/` the section's own list page, `index.html` ended the build ("is a directory"), and so did
    # a tag `..` ("missing taxonomy: tags"). Hugo is given the file's name for such a slug and no
    # such tag; the archive keeps both as stored (test_hugo_originals.py).
    slugs = HUGO_UNSAFE_SLUGS + HUGO_SAFE_SLUGS
    tags = HUGO_UNSAFE_TAGS + HUGO_SAFE_TAGS
    posts = [{"id": f"p{i}", "slug": slug, "title": f"T{i}", "markdown_content": "hi", "status": "published",
              "created_at": 1, "tags": json.dumps([tags[i % len(tags)], tags[-1 - i % len(tags)]])}
             for i, slug in enumerate(slugs)]
    pages = [{"id": f"g{i}", "slug": slug, "title": f"G{i}", "markdown_content": "hi", "created_at": 1}
             for i, slug in enumerate(slugs)]
    plan = plan_blog(posts, pages, [], True, "img")
    built, texts = hugo_built(tmp_path, plan, config)
    assert built == texts, built
    pages_built = hugo_pages(tmp_path)
    for t in plan.texts:
        if t.kind in ("post", "page"):  # one page each (a file holds one), in its section
            [out] = pages_built.pop(f"SINGLE {t.path}")
            assert out.startswith(f"{t.path.split('/')[0]}/"), (t.path, out)
    lists = {out for outs in pages_built.values() for out in outs}
    assert all(text.startswith(("LIST", "HOME")) for text in pages_built), pages_built
    assert all(len(outs) == 1 for outs in pages_built.values()), pages_built  # each list page once
    for section in ("posts", "pages", "tags"):  # the sections' and tags' own pages are still theirs
        assert pages_built[f"LIST {'taxonomy Tags' if section == 'tags' else 'section ' + section.title()}"] == \
            [f"{section}.html" if config else f"{section}/index.html"]
    assert {out.split("/")[0] for out in lists} <= \
        {"index.html", "posts", "pages", "tags", "categories", "posts.html", "pages.html", "tags.html",
         "categories.html"}, lists  # no tag's page outside tags/
    terms = {text.split(" ", 2)[2] for text in pages_built if text.startswith("LIST term")}
    assert terms == set(HUGO_SAFE_TAGS), terms


# Slugs that are one address to Hugo (layout.hugo_address): the same, the same but for case, or but
# for characters it drops; and a slug that is another post's file name, whose post has no slug.
SHARED_ADDRESS_SLUGS = ("hello", "Hello", "hello!", "HELLO\u200b", "", "post-p4", "post-p4", "Hello-2", "x", "x!")


@pytest.mark.parametrize("config", ["", "uglyURLs = true\n"], ids=["pretty-urls", "ugly-urls"])
def test_posts_whose_slugs_are_one_address_to_hugo_are_each_built_on_a_page_of_their_own(
        tmp_path: Path, config: str) -> None:
    # Hugo built one page for the posts `hello`, `Hello` and `hello!` (it lower-cases an address and
    # drops the `!`): the last one built, the others missing from the site without a word. The first
    # keeps its slug; each later one is given its file's name (then -2, -3…), the slug as stored
    # beside it as slug_original (which import restores: test_hugo_originals.py).
    posts = [{"id": f"p{i}", "slug": slug, "title": f"T{i}", "markdown_content": "hi", "status": "published",
              "created_at": 1} for i, slug in enumerate(SHARED_ADDRESS_SLUGS)]
    pages = [{"id": f"g{i}", "slug": slug, "title": f"G{i}", "markdown_content": "hi", "created_at": 1}
             for i, slug in enumerate(("About", "about", "about?"))]
    plan = plan_blog(posts, pages, [], True, "img")
    built, texts = hugo_built(tmp_path, plan, config)
    assert built == texts, built
    pages_built = hugo_pages(tmp_path)
    for t in plan.texts:
        if t.kind in ("post", "page"):
            assert len(pages_built.pop(f"SINGLE {t.path}", [])) == 1, (t.path, pages_built)
    metas = [parse_markdown(t.data.decode())[0] for t in plan.texts if t.kind == "post"]
    assert [m.get("slug_original", m["slug"]) for m in metas] == list(SHARED_ADDRESS_SLUGS)  # as stored
    assert [m["slug"] for m in metas][:1] == ["hello"] and "slug_original" not in metas[0]
    assert len({layout.hugo_address(m["slug"] or "post-p4") for m in metas}) == len(metas)


# Slugs Hugo lower-cases to one address where Python's str.lower does not: Go lower-cases a character
# at a time, so `İ` is `i` (Python: `i` and a combining dot) and a final `Σ` is `σ` (Python: `ς`).
GO_LOWER_SLUGS = ("i", "\u0130", "\u03b1\u03c3", "\u0391\u03a3", "\u039f\u03a3 \u03a3")


@pytest.mark.parametrize("config", ["", "uglyURLs = true\n"], ids=["pretty-urls", "ugly-urls"])
def test_posts_whose_slugs_hugo_lower_cases_to_one_address_are_each_built(tmp_path: Path, config: str) -> None:
    # Of the posts `i` and `İ` Hugo built one, at posts/i.html, and of `ασ` and `ΑΣ` one page, at
    # posts/ασ.html: the other was missing from the site without a word (hugo_address lower-cased
    # with Python's str.lower, which gave each its own address).
    posts = [{"id": f"p{i}", "slug": slug, "title": f"T{i}", "markdown_content": "hi", "status": "published",
              "created_at": 1} for i, slug in enumerate(GO_LOWER_SLUGS)]
    plan = plan_blog(posts, [], [], True, "img")
    built, texts = hugo_built(tmp_path, plan, config)
    assert built == texts, built
    pages_built = hugo_pages(tmp_path)
    for t in plan.texts:
        if t.kind == "post":
            assert len(pages_built.pop(f"SINGLE {t.path}", [])) == 1, (t.path, pages_built)
    metas = [parse_markdown(t.data.decode())[0] for t in plan.texts if t.kind == "post"]
    assert [m.get("slug_original", m["slug"]) for m in metas] == list(GO_LOWER_SLUGS)  # as stored


def test_slugs_one_file_apart_only_in_unicode_normalisation_are_one_address() -> None:
    # `é` written as one character or as `e` and a combining accent: Hugo built posts/é.html twice, two
    # files on Linux and one on macOS, whose file system does not tell the two apart (the second
    # overwrote the first). The archive's own names already take them for one (names.same_file_key).
    assert layout.hugo_address("\u00e9") == layout.hugo_address("e\u0301")
    assert layout.hugo_address("\u00c9") == layout.hugo_address("E\u0301")
    taken: set[str] = set()
    assert [layout.hugo_slug(s, f"posts/{f}.md", taken) for s, f in
            [("\u00e9", "\u00e9"), ("e\u0301", "\u00e9-2")]] == ["\u00e9", "\u00e9-2"]


# Slugs Hugo builds at one address (Debian's Hugo 0.111, with and without uglyURLs; its rule: layout.hugo_address):
# `-` trimmed at a slug's ends, no `-` for whitespace beside a `-`, empty parts (a `/` at either end, `//`) and
# `.` parts dropped, characters it drops (`!`, Go's non-space `\x1c`) left out, lower-cased. Each pair's
# letters are its own, so no two pairs share an address either.
HUGO_MERGES = [("a", "-a"), ("b-", "b"), ("--c--", "c"), ("d - e", "d-e"), ("f -g", "f-g"), ("h- i", "h-i"),
               ("j", "/j"), ("k/l", "k/l/"), ("m//n", "m/n"), ("o/./p", "o/p"), ("q/-", "Q"), ("s\x1ct", "st"),
               ("u!", "u")]
# and slugs it keeps apart, which a rule too eager to merge would rename needlessly: whitespace at a slug's
# ends is a `-` (` c` is built at posts/-c/, `e ` at posts/e-/), only `-` is trimmed, and a `-` inside stays.
HUGO_KEEPS_APART = [(" v", "v"), ("w ", "w"), ("x -", "x"), ("y-", "y "), ("z-a", "z--a"), ("zb/-zc", "zb/zc"),
                    ("zd/ ze", "zd/ze"), ("zf\x85zg", "zfzg"), ("zh-/zi", "zh/zi")]


@pytest.mark.parametrize(("one", "other"), HUGO_MERGES)
def test_slugs_hugo_builds_at_one_address_have_one_address(one: str, other: str) -> None:
    # The exporter took `a` and `-a` (`d - e` and `d-e`, `j` and `/j`, `k/l` and `k/l/`) for two addresses:
    # each pair verified, and Hugo built one page for the two, the other post missing from the site.
    assert layout.hugo_address(one) == layout.hugo_address(other)


@pytest.mark.parametrize(("one", "other"), HUGO_KEEPS_APART)
def test_slugs_hugo_builds_apart_have_addresses_of_their_own(one: str, other: str) -> None:
    # ` v` was taken for `v`'s address and renamed `v-2`, which Hugo builds at posts/-v/ of its own.
    assert layout.hugo_address(one) != layout.hugo_address(other)


def test_the_slugs_hugo_could_not_build_are_unsafe_and_the_others_not() -> None:
    # `-.`, `/-`, `-!` and `\x1c` were taken for slugs of their own, and Hugo wrote each to posts/index.html
    assert [s for s in HUGO_UNSAFE_SLUGS if not layout.hugo_unsafe(s)] == []
    assert [s for s in HUGO_SAFE_SLUGS if layout.hugo_unsafe(s)] == []
    # the file's name given instead never is: Hugo trims the `-` at its ends too (`-.-.md` is `.` to it)
    assert [layout.file_slug(f"posts/{stem}.md") for stem in ("-.-", "-index.xml", "-", "-a-", "-.")] == \
        ["%2D.%2D", "%2Dindex.xml", "-", "-a-", "%2D."]


def test_a_slug_of_nothing_but_dashes_is_built_at_its_files_name() -> None:
    # Hugo trims the slug `-` to nothing and builds the post at its file's name, which keeps its own `-`
    assert layout.hugo_address("-", "post-p1") == layout.hugo_address("", "post-p1") == "post-p1"
    assert layout.hugo_address("--", "-") == "-" != layout.hugo_address("-x", "-")


@pytest.mark.parametrize("config", ["", "uglyURLs = true\n"], ids=["pretty-urls", "ugly-urls"])
def test_the_address_pairs_are_where_hugo_builds_them(tmp_path: Path, config: str) -> None:
    # The two tables above are Hugo's: posts given those slugs as they are (no export in between) are each
    # built at their address, one page for each address, so a merged pair is one page and a pair kept apart two.
    slugs = [slug for pair in HUGO_MERGES + HUGO_KEEPS_APART for slug in pair]
    hugo_site(tmp_path, {f"posts/p{i}.md": render_markdown({"title": f"T{i}", "slug": slug}, "hi\n").encode()
                         for i, slug in enumerate(slugs)}, config)
    built = {at: text.removeprefix("SINGLE posts/p").removesuffix(".md")
             for text, ats in hugo_pages(tmp_path).items() if text.startswith("SINGLE") for at in ats}
    assert len(built) == len({layout.hugo_address(slug) for slug in slugs}), sorted(built)
    for at, i in built.items():
        address = at.removeprefix("posts/").removesuffix(".html").removesuffix("/index")
        assert address == layout.hugo_address(slugs[int(i)]), (slugs[int(i)], at)


def test_a_slug_is_given_to_hugo_as_it_is_unless_its_address_is_taken() -> None:
    taken: set[str] = set()
    given = [layout.hugo_slug(slug, f"posts/{stem}.md", taken) for slug, stem in
             [("Hello", "Hello"), ("hello!", "hello"), ("hello", "hello-2"), (None, "hello-3"), ("hello-3", "x"),
              ("..", "_"), ("_", "_-2")]]
    assert given == ["Hello", "hello-2", "hello-2-2", None, "x", "_", "_-2"]
    assert taken == {"hello", "hello-2", "hello-2-2", "hello-3", "x", "_", "_-2"}
    assert layout.hugo_slug("hello", "posts/hello.md") == "hello"  # no section given: the slug alone decides


@pytest.mark.parametrize("config", ["", "uglyURLs = true\n"], ids=["pretty-urls", "ugly-urls"])
def test_every_tag_hugo_is_given_has_its_own_page_listing_its_posts(tmp_path: Path, config: str) -> None:
    # A tag whose last character Hugo keeps is a dot: Debian's Hugo 0.111 built tags/etc./ for `etc.`,
    # listing no post, and took it for tag `etc` (it drops the dot), whose posts were then on no page.
    tags = [["etc."], ["etc"], ["etc", "etc."], ["a/b.", "a/b"], ["v1.", "keep"], ["x..", "w.!"], ["\\..", "é."],
            ["a.b", "...x", ".x", "a./b"]]
    posts = [{"id": f"p{i}", "slug": f"s{i}", "title": f"T{i}", "markdown_content": "hi", "status": "published",
              "created_at": 1, "tags": json.dumps(t)} for i, t in enumerate(tags)]
    plan = plan_blog(posts, [], [], True, "img")
    built, texts = hugo_built(tmp_path, plan, config)
    assert built == texts, built
    (tmp_path / "layouts" / "_default" / "list.html").write_text(
        "LIST {{ .Kind }} {{ .Title }}:{{ range .Pages }} {{ .File.Path }}{{ end }}\n")
    listed = {text.split(" ", 2)[2].split(":")[0]: text.split(":", 1)[1].split()
              for text in hugo_pages(tmp_path) if text.startswith("LIST term ")}
    given: dict[str, list[str]] = {}
    for t in plan.texts:
        for tag in parse_markdown(t.data.decode())[0]["tags"] if t.kind == "post" else []:
            given.setdefault(tag, []).append(t.path)
    assert listed == given  # each tag Hugo is given: a page of its own, listing every post given it
    assert layout.hugo_tags(["etc.", "etc", "a.b", "...x", " v1. ", "w.!"]) == ["etc", "a.b", "...x"]
    with pytest.MonkeyPatch.context() as before:  # a post with no such tag: byte for byte as it was
        before.setattr(layout, "hugo_unsafe_tag", layout.hugo_unsafe)
        was = plan_blog(posts, [], [], True, "img")
    assert [t.data == w.data for t, w in zip(plan.texts, was.texts, strict=True) if t.kind == "post"] == \
        [not any(tag.endswith((".", ".!")) for tag in t) for t in tags]


def test_two_members_on_one_path_or_on_a_generated_members_path_are_refused() -> None:
    with pytest.raises(LayoutError, match="same file"):
        layout.snapshot_members([text("README.md", "readme")], [obj("media/A.jpg"), obj("media/a.JPG")], STORED)
    with pytest.raises(LayoutError, match=r"manifest\.json"):
        layout.check_unique(["README.md", "Manifest.json"])


# ---- the encoder only encodes --------------------------------------------------------------------

def test_the_encoder_writes_the_members_in_exactly_the_order_given_then_the_generated_ones() -> None:
    src = {"zz/last-name-first.md": b"z" * 40, "media/b.jpg": b"b" * 30, "README.md": b"# r\n", "a.md": b"a"}
    archive = b"".join(i for i in ArchiveStream(snapshot(src), opener(src), resume_point([])) if not isinstance(i, MemberRecord))
    assert zip_names(archive) == [*src, *layout.GENERATED_PATHS]


def test_the_encoder_takes_its_generated_members_from_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    def listing(snap: Snapshot, records: object) -> bytes:
        return json.dumps([r.path for r in records]).encode()  # type: ignore[attr-defined]

    monkeypatch.setattr(layout, "GENERATED", (layout.Generated("contents.json", listing),))
    src = {"b.md": b"b", "a.md": b"a"}
    stream = ArchiveStream(snapshot(src), opener(src), resume_point([]))
    archive = b"".join(i for i in stream if not isinstance(i, MemberRecord))
    assert zip_names(archive) == ["b.md", "a.md", "contents.json"]
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert json.loads(zf.read("contents.json")) == ["b.md", "a.md"]


# ---- what the special members hold ---------------------------------------------------------------

def test_manifest_lists_written_members_and_errors_lists_catalog_errors_then_skipped_ones() -> None:
    src = {"README.md": b"r", "media/a.jpg": b"a", "media/gone.jpg": b"g"}
    base = snapshot(src)
    snap = Snapshot(header=base.header.model_copy(update={"item_counts": {"images": 2}}), members=base.members,
                    errors=(SnapshotError(source_id="m9", path="media/x.jpg", reason="missing: not in storage"),))
    stream = ArchiveStream(snap, opener(src, fail={"media/gone.jpg": ObjectNotFound("gone")}), resume_point([]))
    list(stream)
    records = stream.records[: len(src)]
    manifest = json.loads(layout.manifest_json(snap, records))
    assert [m["path"] for m in manifest["members"]] == ["README.md", "media/a.jpg"]
    assert manifest["item_counts"] == {"images": 1} == layout.held_counts(snap, records)
    errors = json.loads(layout.errors_json(snap, records))
    assert [(e["path"], e["reason"].split(":")[0]) for e in errors] == [("media/x.jpg", "missing"),
                                                                         ("media/gone.jpg", "missing")]
    assert layout.error_count(snap, records) == 2


def test_the_readme_lists_the_layouts_members_for_each_mode() -> None:
    for mode in ("blog", "storage"):
        readme = render_readme(username="u", tenant_id="t", export_id="e", mode=mode, created_at=T,
                               counts={}, include_images=True, generator="g")
        listing = layout.readme_listing(mode)
        assert f"```\n{listing}```" in readme
        for path in (layout.README_PATH, layout.INDEX_PATH, *layout.GENERATED_PATHS):
            assert f"\n{path} " in f"\n{listing}"
    assert layout.FEED_PATH in layout.readme_listing("blog") and layout.FEED_PATH not in layout.readme_listing("storage")
