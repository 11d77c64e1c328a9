"""The catalog's memory does not grow with the tenant's text: each post goes into the texts object
(memory up to a few MiB, then an unlinked temporary file) as it is rendered, its index.json entry
and feed item into spools of their own. Before, every rendered post, every feed item (a copy of its
body) and index.json and feed.json's text were held at once: ~11 KB per post of 1 KB, 1.1 GB for a
tenant of 100,000 posts (tests/bench/catalog_100k.py)."""

from __future__ import annotations

import tracemalloc

from services.catalog.render import plan_blog

BODY = 64 * 1024  # bytes of Markdown a post; no links, so rendering is quick


def post(i: int) -> dict:
    return {"id": f"p{i}", "slug": f"post-{i}", "title": f"Post {i}", "description": "d",
            "markdown_content": f"{i:06d} " + "x" * BODY, "tags": '["a"]', "status": "published",
            "featured_image": None, "published_at": 1, "created_at": 1, "updated_at": 2}


def traced_peak(posts: list[dict]) -> int:
    """Peak traced memory while ``posts`` (already in memory) are planned, the plan held to the end."""
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    plan = plan_blog(posts, [], [], False, "img")
    peak = tracemalloc.get_traced_memory()[1] - before
    assert [t.path for t in plan.texts][-2:] == ["index.json", "feed.json"]
    plan.close()
    return peak


def test_rendering_twice_the_posts_takes_no_more_memory_than_a_fraction_of_their_text() -> None:
    few = [post(i) for i in range(150)]  # ~10 MB of text: past what a spool keeps in memory
    many = [post(i) for i in range(300)]
    tracemalloc.start()
    try:
        traced_peak(few[:5])  # first calls' caches (YAML, ISO times) are not the posts'
        grown = traced_peak(many) - traced_peak(few)
    finally:
        tracemalloc.stop()
    more_text = (len(many) - len(few)) * BODY
    assert grown < more_text / 5, f"{grown / 2**20:.1f} MiB more for {more_text / 2**20:.1f} MiB more text"
