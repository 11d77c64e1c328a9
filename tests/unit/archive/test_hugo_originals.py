"""Slugs and tags Hugo cannot build (layout.hugo_unsafe) are given to Hugo as it can build them, and
kept as stored beside them (``slug_original``, ``tags_original``), as ``featured_image`` is beside
``featured_image_original``: the archive verifies and import restores every one exactly."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.archivetools.documents import DocumentError, PageMeta, PostMeta, check
from services.archivetools.importer import plan_restore
from services.archivetools.verify import verify_archive
from services.catalog.render import plan_blog
from shared.archive import layout
from shared.archive.frontmatter import parse_markdown
from shared.core.snapshot import SnapshotMember
from tests.support.archives import encode_plan

UNSAFE_SLUGS = ["..", "../../tags", "../c", "x/../../y", "/", ".", "index.html", "../index.xml", "-."]
TAGS = [["..", "a"], [" .. ", "../x"], ["/", "."], ["index.html", "ok", "..."], []]


def exported(tmp_path: Path, posts: list[dict[str, Any]], pages: list[dict[str, Any]]) -> Path:
    """The archive the pipeline makes of these posts and pages (no media)."""
    plan = plan_blog(posts, pages, [], True, "img")

    def open_source(m: SnapshotMember) -> Iterator[bytes]:
        return iter([plan.spool.read(m.start, m.size)])

    path = encode_plan(plan, tmp_path / "a.zip", open_source)
    plan.close()
    return path


def rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    posts = [{"id": f"p{i}", "slug": slug, "title": f"T{i}", "markdown_content": "hi", "status": "published",
              "created_at": 1, "tags": json.dumps(TAGS[i % len(TAGS)])} for i, slug in enumerate([*UNSAFE_SLUGS, "ok"])]
    pages = [{"id": f"g{i}", "slug": slug, "title": f"G{i}", "markdown_content": "hi", "created_at": 1}
             for i, slug in enumerate(UNSAFE_SLUGS)]
    return posts, pages


def test_import_restores_the_slugs_and_tags_hugo_could_not_build_exactly_as_stored(tmp_path: Path) -> None:
    posts, pages = rows()
    path = exported(tmp_path, posts, pages)
    report = verify_archive(path)
    assert report.ok, report.text()
    with zipfile.ZipFile(path) as zf:
        index = json.loads(zf.read("index.json"))
        feed = json.loads(zf.read("feed.json"))
        for entry in index["posts"] + index["pages"]:
            meta, _ = parse_markdown(zf.read(entry["path"]).decode())
            if entry["id"] == "p9":  # an ordinary post: nothing beside its slug and tags
                assert (meta["slug"], meta["tags"]) == ("ok", []) and "slug_original" not in meta
                continue
            stem = entry["path"].rsplit("/", 1)[1].removesuffix(".md")
            assert (meta["slug"], entry["slug"]) == (stem, stem)  # what Hugo builds: the file's own name
            assert meta["slug_original"] == entry["slug_original"] == UNSAFE_SLUGS[int(entry["id"][1:])]
            for tags in (meta.get("tags"), entry.get("tags")):
                assert tags is None or not any(layout.hugo_unsafe_tag(t) for t in tags)
        restore = plan_restore(zf, "t2", "https://new.example/{key}", "img", "amber")
        tables = {t: list(rows) for t, rows in restore.tables.items()}  # posts are read from the open archive
    assert [(r["slug"], json.loads(r["tags"])) for r in tables["posts"]] == \
        [(p["slug"], json.loads(p["tags"])) for p in posts]
    assert [r["slug"] for r in tables["pages"]] == UNSAFE_SLUGS
    assert [item.get("tags") for item in feed["items"]] == [json.loads(p["tags"]) or None for p in posts]
    assert [item["_grove"]["slug"] for item in feed["items"]] == [p["slug"] for p in posts]


def test_an_archive_made_before_slug_original_still_imports_its_slug_and_tags(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, the slug and tags in front matter were the stored ones, whatever Hugo made of them.
    monkeypatch.setattr(layout, "hugo_slug", lambda slug, path, taken=None: slug)
    monkeypatch.setattr(layout, "hugo_tags", lambda tags: tags)
    posts, pages = rows()
    path = exported(tmp_path, posts, pages)
    with zipfile.ZipFile(path) as zf:
        assert b"slug_original" not in zf.read("index.json") and b"tags_original" not in zf.read("index.json")
        restore = plan_restore(zf, "t2", "https://new.example/{key}", "img", "amber")
        tables = {t: list(rows) for t, rows in restore.tables.items()}  # posts are read from the open archive
    assert [(r["slug"], json.loads(r["tags"])) for r in tables["posts"]] == \
        [(p["slug"], json.loads(p["tags"])) for p in posts]
    assert [r["slug"] for r in tables["pages"]] == UNSAFE_SLUGS


@pytest.mark.parametrize(("model", "extra", "says"), [
    (PostMeta, {"slug_original": 5}, "slug_original is not a string"),
    (PostMeta, {"tags_original": "a, b"}, "tags_original is not a list"),
    (PostMeta, {"tags_original": ["a", {"b": 1}]}, "tags_original[1] is not a string"),
    (PostMeta, {"tags": [], "tags_original": [".."], "unreadable": {"tags": "{}"}},
     "tags_original and unreadable.tags both hold a value"),
    (PageMeta, {"slug_original": ["../c"]}, "slug_original is not a string"),
])
def test_slug_original_and_tags_original_are_checked_like_the_fields_beside_them(
        model: type[PostMeta] | type[PageMeta], extra: dict[str, Any], says: str) -> None:
    meta = {"slug": "post-p1", "title": "T", "created_at": "2026-01-01T00:00:00Z", "status": "published", **extra}
    with pytest.raises(DocumentError) as refused:
        check(model, meta, "posts/post-p1.md: front matter")
    assert str(refused.value) == f"posts/post-p1.md: front matter: {says}"


def test_import_restores_the_slugs_that_shared_an_address_in_hugo_exactly_as_stored(tmp_path: Path) -> None:
    slugs = ["hello", "Hello", "hello!", "", "post-p3", "x"]
    posts = [{"id": f"p{i}", "slug": slug, "title": f"T{i}", "markdown_content": "hi", "status": "published",
              "created_at": 1} for i, slug in enumerate(slugs)]
    pages = [{"id": f"g{i}", "slug": slug, "title": f"G{i}", "markdown_content": "hi", "created_at": 1}
             for i, slug in enumerate(["about", "About"])]
    path = exported(tmp_path, posts, pages)
    report = verify_archive(path)
    assert report.ok, report.text()
    with zipfile.ZipFile(path) as zf:
        index = json.loads(zf.read("index.json"))
        moved = [e["slug_original"] for e in index["posts"] + index["pages"] if "slug_original" in e]
        assert moved == ["Hello", "hello!", "post-p3", "About"]  # the first of each address keeps its slug
        restore = plan_restore(zf, "t2", "https://new.example/{key}", "img", "amber")
        tables = {t: list(rows) for t, rows in restore.tables.items()}  # posts are read from the open archive
    assert [r["slug"] for r in tables["posts"]] == slugs
    assert [r["slug"] for r in tables["pages"]] == ["about", "About"]
