"""A post's own HTML on the Hugo site built as the archive's README says (``readme.HUGO_SETTINGS``)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.catalog.readme import HUGO_SETTINGS, render_readme
from services.catalog.render import plan_blog
from shared.archive.frontmatter import parse_markdown
from shared.core.snapshot import SnapshotMember
from tests.integration.archive.hugo_support import build_site
from tests.support.archives import encode_plan

CDN = "https://cdn.example/t1/media"
IMG = b"\xff\xd8" + b"x" * 100
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_posts_own_html_is_on_the_hugo_site_built_as_the_archives_readme_says(tmp_path: Path) -> None:
    """Seen: with the one line the archive's README named (uglyURLs), Hugo's Markdown renderer left raw
    HTML out ("<!-- raw HTML omitted -->"): a post's own <img> (which the export had pointed at media/)
    and an HTML block were missing from the site without a word. The README names both lines now, and
    the site is built with what it names."""
    body = f'Before <img src="{CDN}/cat.jpg" alt="c"> after\n\n<div class="note">A note in HTML</div>\n'
    plan = plan_blog([{"id": "p1", "slug": "html", "title": "H", "markdown_content": body, "status": "published",
                       "created_at": 1}], [{"id": "g1", "slug": "about", "title": "About", "markdown_content": "me",
                                            "created_at": 1}], [{"id": "m1", "filename": "cat.jpg", "r2_key": "t1/media/cat.jpg",
                                                "url": f"{CDN}/cat.jpg", "size": len(IMG), "mime_type": "image/jpeg",
                                                "uploaded_at": 1}],
                     True, "img", heads={("img", "t1/media/cat.jpg"): (len(IMG), "e")},
                     readme=lambda p: p.add_text("README.md", "readme", "readme", EPOCH, render_readme(
                         username="u", tenant_id="t1", export_id="e", mode="blog", created_at=EPOCH,
                         counts={}, include_images=True, generator="t").encode()))

    def open_source(m: SnapshotMember) -> Iterator[bytes]:
        return iter([plan.spool.read(m.start, m.size)]) if m.key == "texts" else iter([IMG])

    path = encode_plan(plan, tmp_path / "a.zip", open_source)
    plan.close()
    with zipfile.ZipFile(path) as zf:
        readme = zf.read("README.md").decode()
    assert all(f"`{line}`" in readme for line in HUGO_SETTINGS), readme
    public, _ = build_site(path, tmp_path / "site")
    # The file `hugo new site` made is the one the README tells the person to edit: Hugo before 0.112
    # (Debian's 0.111) makes config.toml, and a README naming only hugo.toml sent them to make a second
    # file, which Hugo then reads instead of the site's own config.toml (its title, baseURL, theme).
    made = next(p.name for p in (tmp_path / "site" / "hugo.toml", tmp_path / "site" / "config.toml") if p.exists())
    assert f"top of `{made}`" in readme or f"`{made}` in a site" in readme, (made, readme)
    page = (public / "posts" / "html.html").read_text()
    assert '<img src="../media/cat.jpg" alt="c">' in page and '<div class="note">A note in HTML</div>' in page, page
    assert (public / "media" / "cat.jpg").read_bytes() == IMG


# Slug pairs Hugo builds at one address (layout.hugo_address: it trims `-` at a slug's ends, adds no `-` for
# whitespace beside one, drops a `/` at either end), and one it keeps apart (` c` is built at posts/-c.html).
SHARED_ADDRESS_PAIRS = ("a", "-a", "a - b", "a-b", "x", "/x", "y/z", "y/z/", "c", " c")


def test_every_post_of_slugs_hugo_builds_at_one_address_has_a_page_of_its_own(tmp_path: Path) -> None:
    """Seen: the archive of posts with the slugs ``a`` and ``-a`` (``a - b`` and ``a-b``, ``x`` and ``/x``,
    ``y/z`` and ``y/z/``) verified, and the site Hugo built from it, as the README says, had one page for
    each pair: the other post missing without a word. The export took them for two addresses each; it gives
    the later post of each pair its file's name as slug now, and keeps `` c`` beside ``c`` (Hugo builds
    posts/-c.html), where it gave `` c`` its file's name for nothing."""
    path, posts = _archive_of_slugs(tmp_path, SHARED_ADDRESS_PAIRS)
    public, _ = build_site(path, tmp_path / "site")
    titles = sorted(title for page in (public / "posts").rglob("*.html")
                    for title in re.findall("<h1>(.*?)</h1>", page.read_text()) if title != "Posts")
    assert titles == sorted(p["title"] for p in posts), titles
    with zipfile.ZipFile(path) as zf:
        metas = [parse_markdown(zf.read(n).decode())[0] for n in zf.namelist() if n.startswith("posts/")]
    assert [m["slug"] for m in metas if m["title"] in ("Post 8", "Post 9")] == ["c", " c"]  # two addresses to Hugo


# Slugs Hugo writes to the section's own list page (posts/index.html): it trims the `-` at a slug's ends
# (`-.` is `.`, `..-` is `..`), joins it to the section's `/` (`/-` is the section) and drops what it cannot put
# in a path (`!`, Go's non-space `\x1c`); and file names whose `-`, trimmed too, left `.` (`-.-`) or a list file.
LIST_PAGE_SLUGS = ("-.", "/-", "-!", "\x1c", "..-", "x/..-", "-/-", "-.-", "-index.xml", "-\x1c-")


@pytest.mark.parametrize("slugs", [("-.",), LIST_PAGE_SLUGS], ids=["alone", "family"])
def test_every_post_of_a_slug_hugo_trims_to_its_sections_folder_has_a_page_of_its_own(
        tmp_path: Path, slugs: tuple[str, ...]) -> None:
    """Seen: the archive of a post with the slug ``-.`` (``/-``, ``-!``, ``\\x1c``…) verified, and Hugo wrote
    the post to posts/index.html, the section's list page: alone in its section it was the list page, beside
    others the list page was written over it, the post missing from the site. The export took them for
    slugs Hugo could build (layout.hugo_unsafe read neither the `-` Hugo trims nor the section's `/`); it
    gives Hugo the file's name now, the slug as stored beside it as slug_original."""
    path, posts = _archive_of_slugs(tmp_path, slugs)
    public, _ = build_site(path, tmp_path / "site")
    titles = sorted(title for page in (public / "posts").rglob("*.html")
                    for title in re.findall("<h1>(.*?)</h1>", page.read_text()))
    assert titles == sorted(p["title"] for p in posts), titles
    # the section's list page (uglyURLs: posts.html), which Hugo wrote such a post to
    assert re.findall("<h1>(.*?)</h1>", (public / "posts.html").read_text()) == ["Posts"]
    with zipfile.ZipFile(path) as zf:
        metas = [parse_markdown(zf.read(n).decode())[0] for n in zf.namelist() if n.startswith("posts/")]
    assert sorted(m["slug_original"] for m in metas) == sorted(slugs)  # each kept as stored, for import


def _archive_of_slugs(tmp_path: Path, slugs: tuple[str, ...]) -> tuple[Path, list[dict[str, Any]]]:
    """The archive of posts "Post 0", "Post 1"… with ``slugs``, a page and one image; and those posts."""
    posts = [{"id": f"p{i}", "slug": slug, "title": f"Post {i}", "markdown_content": "hi", "status": "published",
              "created_at": 1} for i, slug in enumerate(slugs)]
    media = [{"id": "m1", "filename": "cat.jpg", "r2_key": "t1/media/cat.jpg", "url": f"{CDN}/cat.jpg",
              "size": len(IMG), "mime_type": "image/jpeg", "uploaded_at": 1}]
    pages = [{"id": "g1", "slug": "about", "title": "About", "markdown_content": "me", "created_at": 1}]
    plan = plan_blog(posts, pages, media, True, "img", heads={("img", "t1/media/cat.jpg"): (len(IMG), "e")})

    def open_source(m: SnapshotMember) -> Iterator[bytes]:
        return iter([plan.spool.read(m.start, m.size)]) if m.key == "texts" else iter([IMG])

    path = encode_plan(plan, tmp_path / "a.zip", open_source)
    plan.close()
    return path, posts
