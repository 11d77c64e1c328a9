"""Nothing the database holds is dropped: front matter for static-site generators, index.json with
every media/file column, feed.json (JSON Feed 1.1), and links that follow what is really archived."""

from __future__ import annotations

import json
import sys

from services.catalog.index import iso
from services.catalog.render import plan_blog, plan_storage
from shared.archive.frontmatter import parse_markdown

URL = "https://cdn.example/t1/media"


def post(i: int, status: str = "published", body: str = "", featured: str | None = None) -> dict:
    return {"id": f"p{i}", "slug": f"s{i}", "title": f"T{i}", "description": None, "markdown_content": body,
            "tags": '["a"]', "status": status, "featured_image": featured,
            "published_at": 1_700_000_000 if status == "published" else None,
            "created_at": 1_600_000_000, "updated_at": 1_650_000_000}


def media(i: int) -> dict:
    return {"id": f"m{i}", "filename": f"f{i}.jpg", "original_name": f"Original {i}.JPG", "r2_key": f"t1/media/f{i}.jpg",
            "url": f"{URL}/f{i}.jpg", "size": 10, "mime_type": "image/jpeg", "alt_text": f"alt {i}",
            "uploaded_at": 1_500_000_000 + i}


def texts(plan: object) -> dict[str, bytes]:
    return {t.path: t.data for t in plan.texts}  # type: ignore[attr-defined]


def heads(*present: int) -> dict:
    return {("img", f"t1/media/f{i}.jpg"): (10, f"e{i}") for i in present}


def test_posts_keep_the_spec_fields_and_add_date_lastmod_and_draft() -> None:
    plan = plan_blog([post(1), post(2, status="draft")], [], [], True, "img", heads())
    published, _ = parse_markdown(texts(plan)["posts/s1.md"].decode())
    draft, _ = parse_markdown(texts(plan)["posts/s2.md"].decode())
    assert published["published_at"] == published["date"] == "2023-11-14T22:13:20Z"
    assert published["lastmod"] == published["updated_at"] == "2022-04-15T05:20:00Z"
    assert published["draft"] is False and published["status"] == "published"
    assert draft["draft"] is True and draft["date"] == draft["created_at"] == "2020-09-13T12:26:40Z"


def test_index_holds_every_media_column_and_says_which_files_are_missing() -> None:
    body = f"![one]({URL}/f1.jpg) ![two]({URL}/f2.jpg?w=3)\n"
    plan = plan_blog([post(1, body=body, featured="t1/media/f2.jpg")], [], [media(1), media(2)], True, "img", heads(1))
    index = json.loads(texts(plan)["index.json"])
    one, two = index["media"]
    assert one == {"id": "m1", "path": "media/f1.jpg", "in_archive": True, "filename": "f1.jpg",
                   "original_name": "Original 1.JPG", "alt_text": "alt 1", "source_url": f"{URL}/f1.jpg",
                   "object_key": "t1/media/f1.jpg", "mime_type": "image/jpeg", "size": 10,
                   "uploaded_at": "2017-07-14T02:40:01Z"}
    assert two["in_archive"] is False and two["path"] is None and two["alt_text"] == "alt 2"
    assert [e.reason for e in plan.errors] == ["missing: the file is not in storage"]
    meta, new_body = parse_markdown(texts(plan)["posts/s1.md"].decode())
    assert new_body == f"![one](../media/f1.jpg) ![two]({URL}/f2.jpg?w=3)\n"  # the missing one is left alone
    assert meta["featured_image"] == "t1/media/f2.jpg"
    entry = index["posts"][0]
    assert entry["media_links"] == [{"url": f"{URL}/f1.jpg", "path": "media/f1.jpg"}]
    assert [x["url"] for x in entry["media_links_left"]] == [f"{URL}/f2.jpg?w=3", "t1/media/f2.jpg"]
    assert plan.counts == {"posts": 1, "pages": 0, "images": 1}
    assert plan.objects[0].meta["alt_text"] == "alt 1"  # copied into manifest.json by the assembler


def test_feed_json_is_a_json_feed_1_1_with_links_relative_to_itself() -> None:
    body = f"Hi ![one]({URL}/f1.jpg)\n"
    plan = plan_blog([post(1, body=body, featured="t1/media/f1.jpg"), post(2, status="draft")], [], [media(1)],
                     True, "img", heads(1), "Posts by autumn")
    feed = json.loads(texts(plan)["feed.json"])
    assert feed["version"] == "https://jsonfeed.org/version/1.1" and feed["title"] == "Posts by autumn"
    first, second = feed["items"]
    assert first["id"] == "p1" and first["content_text"] == "Hi ![one](media/f1.jpg)\n"
    assert first["image"] == "media/f1.jpg" and first["date_published"] == "2023-11-14T22:13:20Z"
    assert first["_grove"]["path"] == "posts/s1.md" and second["_grove"]["draft"] is True
    assert "date_published" not in second and all(isinstance(i["id"], str) for i in feed["items"])


def test_without_images_links_keep_their_urls_but_the_metadata_still_travels() -> None:
    body = f"![one]({URL}/f1.jpg)\n"
    plan = plan_blog([post(1, body=body, featured="t1/media/f1.jpg")], [], [media(1)], False, "img", {})
    meta, new_body = parse_markdown(texts(plan)["posts/s1.md"].decode())
    assert new_body == body and meta["featured_image"] == "t1/media/f1.jpg"
    assert json.loads(texts(plan)["index.json"])["media"][0]["alt_text"] == "alt 1"
    assert plan.objects == [] and plan.errors == []


def test_stored_files_keep_category_product_and_original_name() -> None:
    row = {"id": "f1", "filename": "x.txt", "original_name": "X (final).TXT", "r2_key": "t1/u/x.txt",
           "mime_type": "text/plain", "size": 3, "category": "uploads", "product": "amber", "uploaded_at": 1}
    plan = plan_storage([row], "amber", {("amber", "t1/u/x.txt"): (3, "e")})
    entry = json.loads(texts(plan)["index.json"])["files"][0]
    assert (entry["original_name"], entry["category"], entry["product"], entry["path"]) == \
        ("X (final).TXT", "uploads", "amber", "files/uploads/x.txt")
    assert plan.objects[0].meta["product"] == "amber"


def test_iso_answers_repeated_column_values_from_its_cache_with_the_same_text() -> None:
    from services.catalog import index

    for value in (1764500000, "2024-05-01T12:00:00Z", "2024-05-01 12:00:00+02:00", True, 0, "", None, 1.5):
        assert index.iso(value) == index._iso(value)
    hits = index._iso_cached.cache_info().hits
    index.iso(1764500000)
    index.iso("2024-05-01T12:00:00Z")
    assert index._iso_cached.cache_info().hits == hits + 2


def test_a_time_no_calendar_holds_is_null_and_kept_as_stored_under_unreadable() -> None:
    # published_at in milliseconds (year ~55,000), NaN, text that is no ISO time: each made
    # datetime raise and the whole export fail (4 attempts, then "An internal error occurred").
    ms = 1_700_000_000_000
    rows = [post(1) | {"published_at": ms}, post(2) | {"created_at": float("nan"), "updated_at": "yesterday"},
            post(3) | {"published_at": -10**12}, post(4)]
    plan = plan_blog(rows, [{"id": "g1", "slug": "g", "title": "G", "markdown_content": "", "created_at": "2024-13-45",
                             "updated_at": 1_650_000_000}],
                     [media(1) | {"uploaded_at": 10**15}], True, "img", heads(1))
    index = json.loads(texts(plan)["index.json"])
    one, two, three, four = index["posts"]
    assert one["published_at"] is None and one["unreadable"] == {"published_at": ms}
    assert one["date"] == one["created_at"] == "2020-09-13T12:26:40Z"  # a published post keeps a date
    assert two["created_at"] is None and two["updated_at"] is None and two["lastmod"] is None
    assert two["unreadable"] == {"created_at": "nan", "updated_at": "yesterday"}
    assert three["unreadable"] == {"published_at": -10**12} and "unreadable" not in four
    meta, _ = parse_markdown(texts(plan)["posts/s1.md"].decode())
    assert meta["published_at"] is None and meta["unreadable"] == {"published_at": ms}
    assert index["pages"][0]["created_at"] is None and index["pages"][0]["unreadable"] == {"created_at": "2024-13-45"}
    assert index["media"][0]["uploaded_at"] is None and index["media"][0]["unreadable"] == {"uploaded_at": 10**15}
    assert plan.objects[0].meta["unreadable"] == {"uploaded_at": 10**15}  # manifest.json too
    feed = json.loads(texts(plan)["feed.json"])
    assert "date_published" not in feed["items"][0] and plan.errors == []


def test_tags_are_a_list_of_words_and_anything_else_is_kept_as_stored_under_unreadable() -> None:
    deep = "[" * 2000 + "]" * 2000  # valid JSON: json.loads raised RecursionError
    cases = {'["a", "b"]': (["a", "b"], None), "a, b": (["a", "b"], None), '"solo"': (["solo"], None),
             "[1, 2.5, true]": (["1", "2.5", "true"], None), "null": ([], None),
             deep: ([], deep), '{"a": 1}': ([], '{"a": 1}'), '["a", ["b"]]': ([], '["a", ["b"]]'),
             '["a", null]': ([], '["a", null]'), "[" + "9" * 5000 + "]": ([], "[" + "9" * 5000 + "]")}
    rows = [post(i) | {"tags": column} for i, column in enumerate(cases)]
    plan = plan_blog(rows, [], [], True, "img")
    index = json.loads(texts(plan)["index.json"])
    for entry, (column, (tags, kept)) in zip(index["posts"], cases.items(), strict=True):
        assert entry["tags"] == tags, column[:20]
        assert entry.get("unreadable") == (None if kept is None else {"tags": kept}), column[:20]
        meta, _ = parse_markdown(texts(plan)[entry["path"]].decode())
        assert meta["tags"] == tags and "{'a'" not in json.dumps(meta)


def test_tags_json_spelling_a_lone_surrogate_are_kept_as_stored_under_unreadable() -> None:
    """JSON spells a lone surrogate in plain ASCII (``["\\ud83c"]``: what JavaScript's JSON.stringify
    writes for half an emoji), which both databases hold as text. Read as a tag it is text no document
    can hold: the front matter refused it ("frontmatter strings must not contain lone surrogates") and
    every export of the tenant failed at the catalog. Such a column is kept as stored, like tags that
    are no list of words, so import puts it back as it was."""
    cases = ['["ok", "\\ud83c"]', '"\\udc00"', '["a\\ud800b"]', '["\\u00e9t\\u00e9"]']
    plan = plan_blog([post(i) | {"tags": column} for i, column in enumerate(cases)], [], [], True, "img")
    index = json.loads(texts(plan)["index.json"])
    assert [(e["tags"], e.get("unreadable")) for e in index["posts"]] == [
        ([], {"tags": cases[0]}), ([], {"tags": cases[1]}), ([], {"tags": cases[2]}), (["\u00e9t\u00e9"], None)]
    meta, _ = parse_markdown(texts(plan)["posts/s0.md"].decode())
    assert meta["tags"] == [] and meta["unreadable"] == {"tags": cases[0]}
    assert plan.errors == []


def test_a_row_with_more_tags_than_the_limit_keeps_them_as_stored_under_unreadable() -> None:
    """Each tag cost the catalog ~270 bytes and, past ASCII words, ~15 us of YAML while its post was
    rendered: one post's tags column of 6 MB ("é,é,…") took 29 s and 570 MiB over the catalog's usual
    RSS, past its 512 MiB limit, and the export could never complete. Past TAGS_LIMIT the column is
    kept as stored, like tags that are no list of words."""
    import tracemalloc

    from services.catalog.render import TAGS_LIMIT, post_markdown

    words, many = ",".join(["a"] * TAGS_LIMIT), json.dumps(["a"] * (TAGS_LIMIT + 1))
    plan = plan_blog([post(1) | {"tags": words}, post(2) | {"tags": words + ",b"}, post(3) | {"tags": many}],
                     [], [], True, "img")
    index = json.loads(texts(plan)["index.json"])
    assert len(index["posts"][0]["tags"]) == TAGS_LIMIT and "unreadable" not in index["posts"][0]
    assert [(e["tags"], e["unreadable"]) for e in index["posts"][1:]] == [([], {"tags": words + ",b"}),
                                                                          ([], {"tags": many})]
    meta, _ = parse_markdown(texts(plan)["posts/s3.md"].decode())
    assert meta["tags"] == [] and meta["unreadable"] == {"tags": many}

    column = "a," * 50_000  # 50,000 tags in 100 KB
    tracemalloc.start()
    try:
        rendered = post_markdown(post(4) | {"tags": column})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rendered.meta["unreadable"] == {"tags": column}
    assert peak < 8 * len(column), peak  # 147 times before


def test_a_time_with_an_offset_is_given_in_utc_with_a_four_digit_year() -> None:
    from services.catalog.index import iso

    assert iso("2024-05-01 12:00:00+02:00") == "2024-05-01T10:00:00Z"
    assert iso(-62_000_000_000) == "0005-04-19T09:46:40Z"


def test_a_long_value_in_a_time_column_is_not_kept_after_its_export() -> None:
    """iso() caches the few values a time column usually holds (4,096 of them); it kept any value,
    so a tenant's posts with a megabyte of text in published_at stayed in the catalog's memory after
    their export (200 such posts: 193 MiB, until 4,096 other values pushed them out)."""
    value = "not a time " * 100_000
    before = sys.getrefcount(value)
    assert iso(value) is None and iso("2024-05-01T10:00:00+02:00") == "2024-05-01T08:00:00Z"
    assert sys.getrefcount(value) == before  # nothing holds it now
