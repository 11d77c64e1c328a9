"""One big post costs the catalog what its size says, not many times that: its links are scanned
once (for its Markdown file and feed.json together), not at all when no link can be rewritten."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.catalog.render import plan_blog
from shared.archive import ownmedia
from shared.archive.layout import FEED_PATH
from shared.archive.ownmedia import MediaRef, OwnMedia, export_bodies, export_body

URL = "https://cdn.example/t1/media"


def post(body: str, i: int = 1) -> dict[str, Any]:
    return {"id": f"p{i}", "slug": f"s{i}", "title": f"T{i}", "markdown_content": body, "status": "published",
            "created_at": 1_600_000_000}


def media(i: int) -> dict[str, Any]:
    return {"id": f"m{i}", "filename": f"f{i}.jpg", "r2_key": f"t1/media/f{i}.jpg", "url": f"{URL}/f{i}.jpg",
            "size": 10, "uploaded_at": 1_500_000_000}


def texts(plan: Any) -> dict[str, bytes]:
    return {t.path: t.data for t in plan.texts}


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = ownmedia.rewrite_links

    def counting(body: str, resolve: Any) -> Any:
        calls.append(len(body))
        return real(body, resolve)

    monkeypatch.setattr(ownmedia, "rewrite_links", counting)
    return calls


def test_a_post_is_scanned_once_for_its_file_and_feed_json(scans: list[int]) -> None:
    body = f"![one]({URL}/f1.jpg) [two](t1/media/f2.jpg?w=3) <img src=\"{URL}/f1.jpg\"> [x](https://e.org/a)\n"
    plan = plan_blog([post(body)], [], [media(1), media(2)], True, "img")
    assert scans == [len(body)]  # was two: the post's file, then its feed.json item
    feed = json.loads(texts(plan)["feed.json"])["items"][0]["content_text"]
    assert feed == export_body(body, FEED_PATH, OwnMedia(
        [MediaRef("m1", "t1/media/f1.jpg", f"{URL}/f1.jpg", "media/f1.jpg"),
         MediaRef("m2", "t1/media/f2.jpg", f"{URL}/f2.jpg", "media/f2.jpg")]))[0]
    assert feed.startswith("![one](media/f1.jpg) [two](media/f2.jpg)")
    assert texts(plan)["posts/s1.md"].decode().endswith("![one](../media/f1.jpg) [two](../media/f2.jpg) "
                                                       "<img src=\"../media/f1.jpg\"> [x](https://e.org/a)\n")


def test_without_media_of_theirs_no_body_is_scanned(scans: list[int]) -> None:
    body = f"![one]({URL}/f1.jpg) [x](https://e.org/a)\n"
    for plan in (plan_blog([post(body)], [], [], True, "img"), plan_blog([post(body)], [], [media(1)], False, "img")):
        assert texts(plan)["posts/s1.md"].decode().endswith(body)
        assert json.loads(texts(plan)["feed.json"])["items"][0]["content_text"] == body
    assert scans == []


@pytest.mark.parametrize("body", [
    "", "no links", "![a](k/1.jpg) ![b](k/2.jpg#x) [c](u/1.jpg?w=1) ![d](k/missing.jpg)\n[r]: k/1.jpg\n",
    "<a href='k/1.jpg'>x</a> `![a](k/1.jpg)` ![a](<k/1.jpg>) ![e](k/1.jpg \"t\")",
])
def test_export_bodies_gives_what_export_body_gives_for_each_file(body: str) -> None:
    own = OwnMedia([MediaRef("m1", "k/1.jpg", "u/1.jpg", "media/one 1.jpg"), MediaRef("m2", "k/2.jpg", None, "m/2.jpg"),
                    MediaRef("m3", "k/missing.jpg", None, None)])
    paths = ("posts/a.md", FEED_PATH, "pages/deep/b.md")
    bodies, links, left = export_bodies(body, paths, own)
    singles = [export_body(body, p, own) for p in paths]
    assert bodies == [s[0] for s in singles]
    assert (links, left) == singles[0][1:]


def test_a_body_over_the_limit_is_exported_byte_for_byte_and_index_json_says_its_links_were_left(
        scans: list[int]) -> None:
    link = f"![one]({URL}/f1.jpg) "
    big = link * (ownmedia.REWRITE_LIMIT // len(link) + 1)
    small = f"![one]({URL}/f1.jpg)"
    page = dict(post(big, 3), type="page")
    plan = plan_blog([post(big), post(small, 2)], [page], [media(1)], True, "img")
    files = texts(plan)
    assert files["posts/s1.md"].endswith(big.encode()) and files["pages/s3.md"].endswith(big.encode())
    assert files["posts/s2.md"].endswith(b"![one](../media/f1.jpg)")  # a small one still is rewritten
    assert json.loads(files["feed.json"])["items"][0]["content_text"] == big
    index = json.loads(files["index.json"])
    first, second = index["posts"]
    assert first["media_links"] == [] and first["media_links_not_rewritten"] == ownmedia.NOT_REWRITTEN
    assert "2,097,152 characters" in ownmedia.NOT_REWRITTEN
    assert index["pages"][0]["media_links_not_rewritten"] == ownmedia.NOT_REWRITTEN
    assert "media_links_not_rewritten" not in second and second["media_links"] == [
        {"url": f"{URL}/f1.jpg", "path": "media/f1.jpg"}]
    assert scans == [len(small)]  # the big ones were not scanned at all
    assert plan.errors == []  # nothing is missing: the post is there, whole
    again = plan_blog([post(big), post(small, 2)], [page], [media(1)], True, "img")
    assert texts(again) == files  # same rows, same bytes


def test_without_media_of_theirs_a_big_body_needs_no_note() -> None:
    big = "x" * (ownmedia.REWRITE_LIMIT + 1)
    index = json.loads(texts(plan_blog([post(big)], [], [], True, "img"))["index.json"])
    assert "media_links_not_rewritten" not in index["posts"][0]  # nothing could have been rewritten


def test_rendering_a_big_link_heavy_post_costs_a_few_copies_of_it_not_tens() -> None:
    # Seen: a 20 MB post of links raised the catalog's memory by ~800 MB (its links' spans, twice);
    # 100 MB took 166 s and ~1.09 GB. Now the cost is its copies: the row's text, the post file's
    # text and bytes, and feed.json's bytes.
    import tracemalloc

    link = f"word [x]({URL}/f1.jpg) "
    body = link * (8 * 2**20 // len(link))
    tracemalloc.start()
    try:
        plan_blog([post(body)], [], [media(1)], True, "img")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(body), peak / len(body)  # was ~40x (and minutes under tracemalloc)
