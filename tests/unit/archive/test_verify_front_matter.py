"""`grove-export verify` holds each post's and page's front matter to its index.json entry: import
restores a row's fields from the front matter, so an archive whose front matter says otherwise than
index.json (the archive's own account of its rows) is a problem naming the member and the fields —
"verify passed" means import restores what index.json says. Hugo's stand-ins (``slug`` beside
``slug_original``, ``tags`` beside ``tags_original``) are the same row: agreement, not a problem."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from services.archivetools.importer import plan_restore
from services.archivetools.verify import verify_archive
from shared.archive.frontmatter import parse_markdown, render_markdown
from tests.unit.archive.test_hugo_originals import exported
from tests.unit.archive.test_verify import rewrite


def rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    posts = [{"id": "p1", "slug": "hello", "title": "Hello", "markdown_content": "hi", "status": "published",
              "created_at": 1, "published_at": 2, "tags": json.dumps(["a", "b"])},
             {"id": "p2", "slug": "../c", "title": "C", "markdown_content": "c", "status": "draft",
              "created_at": 1, "tags": json.dumps(["..", "x"])}]
    pages = [{"id": "g1", "slug": "about", "title": "About", "markdown_content": "me", "created_at": 1,
              "display_order": 3}]
    return posts, pages


def member(path: Path, name: str) -> tuple[dict[str, Any], str]:
    with zipfile.ZipFile(path) as zf:
        return parse_markdown(zf.read(name).decode())


def with_front_matter(src: Path, dst: Path, name: str, **change: Any) -> Path:
    """``src`` with ``name``'s front matter changed (``None``: the field removed) and manifest.json
    listing the new bytes: an archive sound in every other way."""
    meta, body = member(src, name)
    meta = {k: v for k, v in {**meta, **change}.items() if v is not None}
    return rewrite(src, dst, extra={name: render_markdown(meta, body).encode()})


def test_front_matter_that_says_otherwise_than_index_json_is_a_problem_naming_the_member(tmp_path: Path) -> None:
    # Seen: a post's title edited in its file (not in index.json) verified OK, and import restored
    # the edited title, not the one index.json gives.
    path = exported(tmp_path, *rows())
    assert verify_archive(path).ok, verify_archive(path).text()
    bad = with_front_matter(path, tmp_path / "title.zip", "posts/hello.md", title="Edited", tags=["a"])
    report = verify_archive(bad)
    assert report.problems == ["posts/hello.md: its front matter and index.json disagree on title, tags "
                               "(import restores the front matter's)"], report.text()
    with zipfile.ZipFile(bad) as zf:  # what import would have restored without the check
        restored = plan_restore(zf, "t2", "https://new.example/{key}", "img", "amber").tables["posts"][0]
    assert (restored["title"], restored["tags"]) == ("Edited", '["a"]')
    page = with_front_matter(path, tmp_path / "page.zip", "pages/about.md", display_order=4, description="new")
    assert verify_archive(page).problems == ["pages/about.md: its front matter and index.json disagree on "
                                             "description, display_order (import restores the front matter's)"]
    times = with_front_matter(path, tmp_path / "times.zip", "posts/hello.md", published_at="2001-01-01T00:00:00Z",
                             date="2001-01-01T00:00:00Z")  # Hugo's date with it: only index.json says otherwise
    assert verify_archive(times).problems == ["posts/hello.md: its front matter and index.json disagree on "
                                              "published_at (import restores the front matter's)"]


def test_hugos_stand_ins_for_a_slug_or_tag_agree_with_the_stored_ones_in_index_json(tmp_path: Path) -> None:
    path = exported(tmp_path, *rows())
    meta, _ = member(path, "posts/_c.md")
    assert (meta["slug"], meta["slug_original"], meta["tags"], meta["tags_original"]) == \
        ("_c", "../c", ["x"], ["..", "x"])

    def as_stored(entry: dict[str, Any]) -> None:  # index.json giving only the values as stored
        entry.update(slug=entry.pop("slug_original"), tags=entry.pop("tags_original"))

    with zipfile.ZipFile(path) as zf:
        index = json.loads(zf.read("index.json"))
    as_stored(index["posts"][1])
    stored = rewrite(path, tmp_path / "stored.zip", extra={"index.json": json.dumps(index).encode()})
    assert verify_archive(stored).ok, verify_archive(stored).text()
    # an original changed is a disagreement (a stand-in changed is Hugo's site changed: below)
    moved = with_front_matter(path, tmp_path / "moved.zip", "posts/_c.md", slug_original="../d")
    assert verify_archive(moved).problems == ["posts/_c.md: its front matter and index.json disagree on slug "
                                              "(import restores the front matter's)"]
    lost = with_front_matter(path, tmp_path / "lost.zip", "posts/_c.md", tags_original=None)
    assert verify_archive(lost).problems == ["posts/_c.md: its front matter and index.json disagree on tags "
                                             "(import restores the front matter's)"]


STAND_IN = ("its front matter's {shown} says otherwise than its other fields (Hugo builds the site from it; an export "
            "writes draft as 'status is not published', date as published_at or created_at, lastmod as updated_at, a slug "
            "beside slug_original as the file's name, tags beside tags_original as those of them Hugo can build)")


def test_hugos_draft_date_and_lastmod_saying_otherwise_than_their_fields_are_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for an export whose draft post (status: draft, as index.json says) had
    ``draft: false`` in its front matter: import restored a draft, and Hugo published it on the site
    built from the archive. Likewise a ``date`` in 2099 hid a published post (Hugo leaves out the
    future), and a page said ``draft: true``. The export derives them from the fields (render.py); an
    archive whose stand-ins say otherwise was altered; agreeing, they are sound."""
    path = exported(tmp_path, *rows())
    draft_name = next(n for n in zipfile.ZipFile(path).namelist() if n.startswith("posts/") and n != "posts/hello.md")
    assert member(path, draft_name)[0]["draft"] is True
    cases = [(draft_name, {"draft": False}, "draft: False"),
             ("posts/hello.md", {"date": "2099-01-01T00:00:00Z"}, "date: '2099-01-01T00:00:00Z'"),
             ("posts/hello.md", {"lastmod": "2001-01-01T00:00:00Z"}, "lastmod: '2001-01-01T00:00:00Z'"),
             ("pages/about.md", {"draft": True}, "draft: True")]
    for n, (name, change, shown) in enumerate(cases):
        bad = with_front_matter(path, tmp_path / f"{n}.zip", name, **change)
        assert verify_archive(bad).problems == [f"{name}: " + STAND_IN.format(shown=shown)], (name, change)
    created = member(path, "posts/hello.md")[0]["created_at"]  # a post's date may be its created_at (published_at 0)
    assert verify_archive(with_front_matter(path, tmp_path / "ok.zip", "posts/hello.md", date=created)).ok


def test_hugos_slug_beside_slug_original_saying_otherwise_than_the_file_name_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for an export whose post said ``slug: login`` beside its ``slug_original``:
    import restored the original, and Hugo built the post at /posts/login/. Beside ``slug_original``
    an export writes the file's name (layout.hugo_slug), with ``-2``, ``-3``… when that address was
    taken; anything else was altered. A slug with no original is the stored one, checked against
    index.json above."""
    posts, pages = rows()
    pages.append({"id": "g2", "slug": "../../login", "title": "L", "markdown_content": "l", "created_at": 1})
    posts.append({"id": "p3", "slug": "Hello", "title": "H", "markdown_content": "h", "status": "published",
                  "created_at": 1, "published_at": 2})  # hello's address: built at its file's name
    path = exported(tmp_path, posts, pages)
    assert verify_archive(path).ok, verify_archive(path).text()
    names = zipfile.ZipFile(path).namelist()
    taken = next(n for n in names if n.startswith("posts/") and member(path, n)[0].get("slug_original") == "Hello")
    page = next(n for n in names if n.startswith("pages/") and "slug_original" in member(path, n)[0])
    cases = [("posts/_c.md", "login"), ("posts/_c.md", "_c2"), ("posts/_c.md", "../c"), (page, "login"),
             (taken, "hello")]
    for n, (name, slug) in enumerate(cases):
        bad = with_front_matter(path, tmp_path / f"{n}.zip", name, slug=slug)
        assert verify_archive(bad).problems == [f"{name}: " + STAND_IN.format(shown=f"slug: {slug!r}")], (name, slug)
    again = member(path, "posts/_c.md")[0]["slug"] + "-2"  # what it would be had its address been taken
    assert verify_archive(with_front_matter(path, tmp_path / "ok.zip", "posts/_c.md", slug=again)).ok


def test_hugos_tags_beside_tags_original_saying_otherwise_than_those_hugo_can_build_are_a_problem(
        tmp_path: Path) -> None:
    """Seen: "archive OK" for an export whose post said ``tags: [login]`` beside its ``tags_original``:
    import restored the originals, and Hugo built the tag page /tags/login/ (and none of the others).
    Beside ``tags_original`` an export writes the tags of it Hugo can build (layout.hugo_tags, the
    renderer's rule: order, case and repeats as stored, the unbuildable left out); anything else was
    altered. Tags with no original are the stored ones, checked against index.json above."""
    posts, pages = rows()
    posts.append({"id": "p3", "slug": "many", "title": "M", "markdown_content": "m", "status": "published",
                  "created_at": 1, "published_at": 2, "tags": json.dumps(["Go", "etc.", "go", "Go", "b", "w.!"])})
    path = exported(tmp_path, posts, pages)
    assert verify_archive(path).ok, verify_archive(path).text()
    meta = member(path, "posts/many.md")[0]
    assert (meta["tags"], meta["tags_original"]) == (["Go", "go", "Go", "b"], ["Go", "etc.", "go", "Go", "b", "w.!"])
    cases = [("posts/_c.md", ["login"]), ("posts/_c.md", []), ("posts/_c.md", ["x", "login"]),
             ("posts/_c.md", ["..", "x"]), ("posts/_c.md", "x"), ("posts/_c.md", None),
             ("posts/many.md", ["go", "b"]), ("posts/many.md", ["b", "Go", "go", "Go"])]
    for n, (name, tags) in enumerate(cases):
        bad = with_front_matter(path, tmp_path / f"{n}.zip", name, tags=tags)  # None: the key removed
        assert verify_archive(bad).problems == [f"{name}: " + STAND_IN.format(shown=f"tags: {tags!r}")], (name, tags)
    # the export's own, written again; an original whose tags Hugo can all build needs no other
    same = with_front_matter(path, tmp_path / "same.zip", "posts/many.md", tags=list(meta["tags"]))
    assert verify_archive(same).ok, verify_archive(same).text()
    whole = with_front_matter(path, tmp_path / "whole.zip", "posts/hello.md", tags_original=["a", "b"])
    assert verify_archive(whole).ok, verify_archive(whole).text()


def _crafted(src: Path, dst: Path, name: str, **change: Any) -> Path:
    """``src`` with ``name``'s front matter and its index.json entry both changed: an archive made by
    hand that agrees with itself, as no other check here can tell."""
    meta, body = member(src, name)
    with zipfile.ZipFile(src) as zf:
        index = json.loads(zf.read("index.json"))
    for entry in index["posts"] + index["pages"]:
        if entry["path"] == name:
            entry.update(change)
    return rewrite(src, dst, extra={name: render_markdown({**meta, **change}, body).encode(),
                                    "index.json": json.dumps(index).encode()})


UNBUILDABLE = ("its front matter's {shown} is one Hugo cannot build as a page of its own (it would be built "
               "outside its section, over another page, or end the build: an export gives Hugo the file's name "
               "as slug, and keeps such a slug as slug_original and such tags as tags_original)")


def test_a_slug_or_tag_hugo_cannot_build_is_a_problem_though_index_json_agrees(tmp_path: Path) -> None:
    """Seen: "archive OK" for an archive whose post said ``slug: ../login`` in its front matter and in
    index.json alike, with no slug_original: Hugo built the post at /login.html, outside posts/ — the page
    at /login/ that verify refuses an ``aliases`` key for (``../index`` is the site's /index.html, over
    its home page). An export never gives Hugo such a slug or tag (layout.hugo_slug, hugo_tags): the one
    stored goes beside as slug_original or tags_original. So such an archive was made by hand."""
    from tests.unit.archive.test_verify_index import refused_by_import

    path = exported(tmp_path, *rows())
    assert verify_archive(path).ok, verify_archive(path).text()
    cases = [("posts/hello.md", {"slug": "../login"}, "slug: '../login'"),
             ("posts/hello.md", {"slug": "../index"}, "slug: '../index'"),
             ("pages/about.md", {"slug": "../../login"}, "slug: '../../login'"),
             ("posts/hello.md", {"tags": ["a", "../login"]}, "tags: ['a', '../login']"),
             ("posts/hello.md", {"tags": [".."]}, "tags: ['..']")]
    for n, (name, change, shown) in enumerate(cases):
        bad = _crafted(path, tmp_path / f"{n}.zip", name, **change)
        assert verify_archive(bad).problems == [f"{name}: " + UNBUILDABLE.format(shown=shown)], (name, change)
    refused_by_import(tmp_path, bad, f"posts/hello.md: {UNBUILDABLE.format(shown=shown)}")
    # slugs and tags Hugo builds, made by hand as well, stay sound
    fine = _crafted(path, tmp_path / "fine.zip", "posts/hello.md", slug="hello-again", tags=["a", "c.d"])
    assert verify_archive(fine).ok, verify_archive(fine).text()


def test_a_featured_image_saying_otherwise_than_its_original_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for an archive whose post said ``featured_image: https://tracker.example/p.gif``
    beside its ``featured_image_original`` (the person's image, in media/): import restored the original,
    and a Hugo theme that shows it (Ananke, Hugo's own quickstart theme, reads ``featured_image``) loaded
    the other address on the site built from the archive — as ``slug`` and ``tags`` beside their originals,
    which verify holds to them. An export writes the image's path in the archive when it holds the image
    the original names, else the original (catalog/render.py)."""
    from services.catalog.render import plan_blog
    from tests.support.archives import encode_plan

    img, cdn = b"\xff\xd8" + b"x" * 100, "https://cdn.example/t1/media"
    posts = [{"id": f"p{i}", "slug": slug, "title": slug, "markdown_content": "hi", "status": "published",
              "created_at": 1, "published_at": 2, "featured_image": featured}
             for i, (slug, featured) in enumerate((("hello", f"{cdn}/cat.jpg?w=600"), ("two", "https://elsewhere.example/x.png")))]
    media = [{"id": "m1", "filename": "cat.jpg", "r2_key": "t1/media/cat.jpg", "url": f"{cdn}/cat.jpg",
              "size": len(img), "mime_type": "image/jpeg", "uploaded_at": 1}]
    plan = plan_blog(posts, [], media, True, "img", heads={("img", "t1/media/cat.jpg"): (len(img), "e")})
    path = encode_plan(plan, tmp_path / "a.zip", lambda m: iter([plan.spool.read(m.start, m.size)]) if m.key == "texts"
                       else iter([img]))
    plan.close()
    assert verify_archive(path).ok, verify_archive(path).text()
    assert member(path, "posts/hello.md")[0]["featured_image"] == "../media/cat.jpg"
    shown = "featured_image: {value!r}"
    cases = [("posts/hello.md", "https://tracker.example/p.gif"), ("posts/hello.md", f"{cdn}/cat.jpg?w=600"),
             ("posts/two.md", "../media/cat.jpg"), ("posts/two.md", None)]
    for n, (name, value) in enumerate(cases):
        meta, body = member(path, name)
        meta = {k: v for k, v in {**meta, "featured_image": value}.items() if v is not None}
        bad = rewrite(path, tmp_path / f"{n}.zip", extra={name: render_markdown(meta, body).encode()})
        line = (f"{name}: its front matter's {shown.format(value=value)} says otherwise than its "
                "featured_image_original (a theme shows it on the site built from the archive; an export writes "
                "the path in the archive of the image the original names, when it holds it, else the original)")
        assert verify_archive(bad).problems == [line], (name, value, verify_archive(bad).text())


def test_a_featured_image_0_1_0_pointed_at_a_placeholder_media_row_is_a_fact_in_its_archive(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Until 3 December (release 0.1.0) a media row whose URL names no file (``https://cdn.example/t1/``,
    a platform's placeholder: ownmedia.names_a_file) was matched like any other, so a post whose
    ``featured_image`` was that URL got ``featured_image: ../media/cat.jpg``. Today's export writes the
    original, and verify, holding 0.1.0's archive to today's rule, refused it ("says otherwise than its
    featured_image_original") and import with it: the archive as its release made it, the image its own.
    In an archive of 0.1.0 that is a fact; of any other generator, still a problem."""
    from services.catalog.render import plan_blog
    from shared.archive import ownmedia
    from tests.support.archives import encode_plan

    img, cdn = b"\xff\xd8" + b"x" * 100, "https://cdn.example/t1/"
    posts = [{"id": "p1", "slug": "hello", "title": "hello", "markdown_content": "hi", "status": "published",
              "created_at": 1, "published_at": 2, "featured_image": cdn}]
    media = [{"id": "m1", "filename": "cat.jpg", "r2_key": "t1/media/cat.jpg", "url": cdn,
              "size": len(img), "mime_type": "image/jpeg", "uploaded_at": 1}]
    with monkeypatch.context() as m:
        m.setattr(ownmedia, "names_a_file", lambda name: True)  # as 0.1.0 matched before 3 December
        plan = plan_blog(posts, [], media, True, "img", heads={("img", "t1/media/cat.jpg"): (len(img), "e")})
        made = encode_plan(plan, tmp_path / "a.zip", lambda m: iter([plan.spool.read(m.start, m.size)])
                           if m.key == "texts" else iter([img]))
        plan.close()
    assert member(made, "posts/hello.md")[0]["featured_image"] == "../media/cat.jpg"
    line = ("posts/hello.md: its front matter's featured_image: '../media/cat.jpg' says otherwise than its "
            "featured_image_original (a theme shows it on the site built from the archive; an export writes the path "
            "in the archive of the image the original names, when it holds it, else the original)")
    for generator in ("grove-export 0.2.0", None):
        today = rewrite(made, tmp_path / "today.zip", edit=lambda m, g=generator: m.update(generator=g))
        assert verify_archive(today).problems == [line], (generator, verify_archive(today).text())
    old = rewrite(made, tmp_path / "old.zip", edit=lambda m: m.update(generator="grove-export 0.1.0"))
    report = verify_archive(old)
    assert report.ok, report.text()
    assert [f for f in report.facts if f.startswith(line)] == [
        f"{line} — as grove-export 0.1.0 wrote it (it matched a media row whose address names no file); import "
        "restores featured_image_original"], report.text()
    with zipfile.ZipFile(old) as zf:
        restored = list(plan_restore(zf, "t2", "https://new.example/{key}", "img", "amber").tables["posts"])
    assert [r["featured_image"] for r in restored] == [cdn]
    # an archive of 0.1.0 holds no other image there: a featured_image of none of its rows is a problem still
    other = rewrite(old, tmp_path / "other.zip", extra={"posts/hello.md": render_markdown(
        {**member(old, "posts/hello.md")[0], "featured_image": "https://tracker.example/p.gif"}, "hi").encode()})
    assert [p for p in verify_archive(other).problems if "featured_image" in p], verify_archive(other).text()
