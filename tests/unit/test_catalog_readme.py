"""README.md names the person the archive was made for; a username is text, never Markdown or HTML."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from markdown_it import MarkdownIt

from services.catalog.readme import markdown_text, render_readme

HOSTILE = [
    "[click me](https://evil.example/phish)",
    "![x](https://evil.example/track.png)",
    '<img src=x onerror="alert(1)">',
    "<script>alert(1)</script>",
    "<https://evil.example>",
    "**bold** _it_ `code` ~~gone~~",
    "a\n# Heading\n<b>x</b>",
    "x\\*y\\",
    "&lt;not-an-entity&gt; &amp;",
    "[ref]: https://evil.example",
    "autumn",
    "zoë 👨\u200d👩\u200d👧",
]


def _made_for(readme: str) -> str:
    line = next(x for x in readme.splitlines() if x.startswith("This archive holds"))
    return line.split("made for ", 1)[1]


@pytest.mark.parametrize("username", HOSTILE)
def test_a_username_renders_as_its_own_text_in_a_markdown_viewer(username: str) -> None:
    readme = render_readme(username=username, tenant_id="t1", export_id="e1", mode="blog",
                           created_at=datetime(2024, 5, 1, tzinfo=UTC), counts={"posts": 1},
                           include_images=True, generator="g")
    rendered = MarkdownIt("commonmark").render(f"made for {_made_for(readme)}")
    assert "<a " not in rendered and "<img" not in rendered and "<script" not in rendered
    assert "<h1" not in rendered and "<code" not in rendered and "<em" not in rendered
    inside = re.fullmatch(r"<p>made for <strong>(.*)</strong></p>\n", rendered, re.S)
    assert inside, rendered
    shown = html.unescape(inside.group(1))
    assert shown == re.sub(r"[\n]", " ", username)


def test_plain_names_are_left_as_they_are() -> None:
    assert markdown_text("autumn 2024") == "autumn 2024"
    assert markdown_text("a.b") == "a\\.b"  # escaped, yet shown as "a.b"
    assert markdown_text("a\u202eb") == "a b"  # a bidi override cannot reverse what follows


def _using_your_data(readme: str) -> str:
    return readme.split("## Using your data", 1)[1]


def test_a_storage_archives_readme_speaks_of_its_files_not_of_posts_pages_or_media() -> None:
    # A storage export holds files/{category}/… only; its README told the person about "Posts and
    # pages … Markdown with YAML front matter" and "Media files", none of which are in it.
    readme = render_readme(username="u", tenant_id="t", export_id="e", mode="storage",
                           created_at=datetime(2024, 5, 1, tzinfo=UTC), counts={"files": 6},
                           include_images=True, generator="g")
    use = _using_your_data(readme)
    for absent in ("Posts", "pages", "Markdown", "Media", "media/", "Hugo"):
        assert absent not in use, (absent, use)
    assert "files/" in use and "index.json" in use and "yours to keep" in use


def test_a_blog_archive_without_images_does_not_say_links_point_into_media() -> None:
    # With includeImages false the archive has no media/ and links keep their URLs (README: "With
    # `includeImages: false` links keep their URLs"); its README said they "now point at the copies
    # in `media/`" and told the person to copy `media/` into a Hugo site.
    readme = render_readme(username="u", tenant_id="t", export_id="e", mode="blog",
                           created_at=datetime(2024, 5, 1, tzinfo=UTC),
                           counts={"posts": 1, "pages": 0, "images": 0}, include_images=False, generator="g")
    use = _using_your_data(readme)
    assert "media/" not in use and "Media files" not in use, use
    assert "keep their original addresses" in use and "Hugo" in use
    with_images = render_readme(username="u", tenant_id="t", export_id="e", mode="blog",
                                created_at=datetime(2024, 5, 1, tzinfo=UTC),
                                counts={"posts": 1, "pages": 0, "images": 1}, include_images=True, generator="g")
    assert "now point at the copies in `media/`" in _using_your_data(with_images)


def test_a_blog_archive_without_images_does_not_list_media_among_what_is_inside() -> None:
    # A real includeImages=false archive holds README.md, posts/, pages/, index.json, feed.json,
    # manifest.json and errors.json: no media/. Its README's "What is inside" still listed
    # "media/{filename}  your images, byte for byte as uploaded" a few lines above "Using your data"
    # saying that it holds none.
    def inside(include_images: bool) -> str:
        readme = render_readme(username="u", tenant_id="t", export_id="e", mode="blog",
                               created_at=datetime(2024, 5, 1, tzinfo=UTC), counts={"posts": 1, "pages": 0,
                                                                                     "images": 0},
                               include_images=include_images, generator="g")
        return readme.split("## What is inside", 1)[1].split("## How to check", 1)[0]

    assert "media/" not in inside(False), inside(False)
    assert "posts/{slug}.md" in inside(False) and "index.json" in inside(False)
    assert "media/{filename}     your images, byte for byte as uploaded" in inside(True)
