"""A row whose id is null: SQLite's ``id TEXT PRIMARY KEY`` (the spec's schema) holds NULL, in any
number of rows, as a platform's content can. The export must complete, like any odd value: the
snapshot's source ids are text, so a null id is "" there; index.json keeps the id as stored (null)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.catalog.render import Plan, plan_blog, plan_storage
from shared.archive import layout
from shared.core.snapshot import Snapshot, SnapshotHeader

T = datetime(2026, 2, 22, 10, 30, tzinfo=UTC)


def _post(slug: str) -> dict:
    return {"id": None, "slug": slug, "title": "T", "description": None, "markdown_content": "![a](https://cdn/a.jpg)",
            "tags": None, "status": "published", "featured_image": None, "published_at": 1, "created_at": 1,
            "updated_at": None}


def _media(key: str, **kw: object) -> dict:
    return {"id": None, "filename": "a.jpg", "original_name": None, "r2_key": key, "url": "https://cdn/" + key,
            "size": 3, "mime_type": "image/jpeg", "alt_text": None, "uploaded_at": 1, **kw}


def _snapshot(plan: Plan, mode: str) -> Snapshot:
    header = SnapshotHeader(export_id="exp_1", tenant_id="t1", mode=mode, username="u", include_images=True,
                            created_at=T, archive_key="k.zip", item_counts=plan.counts, generator="test")
    members = layout.snapshot_members(layout.in_archive_order(plan.texts), plan.objects,
                                      layout.TextsObject("exports", "texts", "etag"))
    return Snapshot(header=header, members=tuple(members), errors=tuple(plan.errors))


def test_posts_pages_and_media_with_a_null_id_are_exported() -> None:
    heads = {("img", "a.jpg"): (3, "e")}  # b.jpg is missing: an error with the null id
    plan = plan_blog([_post("one"), _post("two")], [{**_post("page"), "type": None, "display_order": 0}],
                     [_media("a.jpg"), _media("b.jpg", filename="b.jpg")], True, "img", heads)
    snap = Snapshot.loads(_snapshot(plan, "blog").dumps())
    assert [m.path for m in snap.members if m.kind in ("post", "page", "media")] == \
        ["posts/one.md", "posts/two.md", "pages/page.md", "media/a.jpg"]
    assert {m.source_id for m in snap.members if m.kind != "readme" and m.kind != "index"} == {""}
    assert [(e.source_id, e.path) for e in snap.errors] == [("", "media/b.jpg")]
    index = json.loads(next(t.data for t in plan.texts if t.path == layout.INDEX_PATH))
    assert [p["id"] for p in index["posts"]] == [None, None] and index["media"][0]["id"] is None


def test_stored_files_with_a_null_id_are_exported() -> None:
    row = {"id": None, "filename": "x.txt", "original_name": None, "r2_key": "k1", "size": 1, "mime_type": None,
           "category": None, "product": None, "uploaded_at": 1}
    plan = plan_storage([row, {**row, "r2_key": "k2"}], "amber", {("amber", "k1"): (1, "e")})
    snap = _snapshot(plan, "storage")
    assert [m.path for m in snap.members if m.kind == "file"] == ["files/uncategorized/x.txt"]
    assert [e.source_id for e in snap.errors] == [""]


def test_a_feed_item_of_a_post_with_a_null_id_has_its_path_as_id() -> None:
    """JSON Feed 1.1 requires every item's id (a string, unique in the feed): a post with a null id
    had none, so the whole feed.json was invalid for readers that check. Its member path is unique."""
    plan = plan_blog([_post("one"), _post("two"), {**_post("three"), "id": "post_3"}], [], [], True, "img", {})
    feed = json.loads(next(t.data for t in plan.texts if t.path == layout.FEED_PATH))
    assert [item["id"] for item in feed["items"]] == ["posts/one.md", "posts/two.md", "post_3"]
    assert all(isinstance(item["id"], str) for item in feed["items"])
