"""The keys a post's and page's front matter may hold (shared/archive/layout.FRONT_MATTER_KEYS) are the
ones the export writes: verify refuses any other (Hugo acts on `url`, `aliases`, …), so a key the
renderer writes and the set lacks would make verify refuse the archives the export makes."""

from __future__ import annotations

from typing import Any

from services.catalog.render import page_markdown, post_markdown
from shared.archive.layout import FRONT_MATTER_KEYS, PAGES, POSTS

POST: dict[str, Any] = {"id": "p1", "slug": "s1", "title": "T", "description": None, "markdown_content": "x",
                        "tags": '["a"]', "status": "published", "featured_image": None,
                        "published_at": 1_700_000_000, "created_at": 1_600_000_000, "updated_at": 1_650_000_000}
PAGE: dict[str, Any] = {"id": "g1", "slug": "about", "title": "About", "description": "d", "markdown_content": "x",
                        "type": "page", "display_order": 0, "created_at": 1, "updated_at": 2}


def test_every_key_the_export_writes_is_one_front_matter_may_hold_and_no_other() -> None:
    # the ordinary rows, and ones that make every optional key: a slug Hugo cannot build (slug_original), a tag
    # it cannot (tags_original), a time that is no time (unreadable)
    posts = [post_markdown(POST), post_markdown(POST | {"slug": "../c", "tags": '["a", ".."]', "published_at": "soon"},
                                                "posts/c.md")]
    pages = [page_markdown(PAGE), page_markdown(PAGE | {"slug": "..", "display_order": "first"}, "pages/x.md")]
    assert set().union(*(p.meta for p in posts)) == FRONT_MATTER_KEYS[POSTS]
    assert set().union(*(p.meta for p in pages)) == FRONT_MATTER_KEYS[PAGES]
