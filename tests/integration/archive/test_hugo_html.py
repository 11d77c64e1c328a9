"""A post's own HTML on the Hugo site built as the archive's README says (``readme.HUGO_SETTINGS``)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from services.catalog.readme import HUGO_SETTINGS, render_readme
from services.catalog.render import plan_blog
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
