"""An image that changed in storage after the catalog named it: the assembler leaves it out and lists
it in errors.json, while index.json and the posts, rendered before, still name it. Such an export is
sound as made: verify says OK and import restores the rest."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from services.archivetools.importer import plan_restore
from services.archivetools.verify import verify_archive
from services.catalog.render import plan_blog
from shared.archive.frontmatter import parse_markdown
from shared.core.snapshot import SnapshotMember
from shared.objectstore import PreconditionFailed
from tests.support.archives import encode_plan

CDN = "https://cdn.example/t1/media"
IMG = b"\xff\xd8" + b"x" * 100


def exported(tmp_path: Path) -> Path:
    """The archive the pipeline makes when media/cat.jpg changed between the catalog and the assembler."""
    body = f"![c]({CDN}/cat.jpg) and ![d]({CDN}/dog.jpg)\n"
    post = {"id": "p1", "slug": "p", "title": "P", "markdown_content": body, "status": "published",
            "created_at": 1, "featured_image": f"{CDN}/cat.jpg"}
    media = [{"id": f"m{i}", "filename": f"{n}.jpg", "r2_key": f"t1/media/{n}.jpg", "url": f"{CDN}/{n}.jpg",
              "size": len(IMG), "mime_type": "image/jpeg", "uploaded_at": 1} for i, n in enumerate(("cat", "dog"))]
    heads = {("img", f"t1/media/{n}.jpg"): (len(IMG), "e") for n in ("cat", "dog")}
    plan = plan_blog([post], [], media, True, "img", heads=heads)
    def open_source(m: SnapshotMember) -> Iterator[bytes]:
        if m.key == "texts":
            return iter([plan.spool.read(m.start, m.size)])
        if m.key == "t1/media/cat.jpg":
            raise PreconditionFailed("changed")  # its ETag is no longer the one the catalog's HEAD found
        return iter([IMG])

    path = encode_plan(plan, tmp_path / "a.zip", open_source)
    plan.close()
    return path


def test_an_export_that_left_a_changed_image_out_verifies(tmp_path: Path) -> None:
    path = exported(tmp_path)
    with zipfile.ZipFile(path) as zf:
        assert "media/cat.jpg" not in zf.namelist() and "media/dog.jpg" in zf.namelist()
        assert b'"path": "media/cat.jpg"' in zf.read("errors.json")
    report = verify_archive(path)
    assert report.ok, report.text()
    assert "2 links to images errors.json lists as not included" in report.text()  # the body's and the featured image


def test_a_damaged_archive_missing_an_image_errors_json_does_not_list_still_fails(tmp_path: Path) -> None:
    path = exported(tmp_path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, b"[]\n" if name == "errors.json" else data)
    assert not verify_archive(damaged).ok


def test_import_restores_the_rest_and_gives_the_left_out_images_links_their_urls_back(tmp_path: Path) -> None:
    with zipfile.ZipFile(exported(tmp_path)) as zf:
        restore = plan_restore(zf, "t2", "https://new.example/{key}", "img", "amber")
        tables = {t: list(rows) for t, rows in restore.tables.items()}  # posts are read from the open archive
        meta, _ = parse_markdown(zf.read("posts/p.md").decode())
    assert meta["featured_image"] == "../media/cat.jpg"  # what the catalog wrote
    assert [m["r2_key"] for m in tables["media"]] == ["t2/media/dog.jpg"]
    assert any("m0" in note for note in restore.notes), restore.notes
    [post] = tables["posts"]
    assert post["markdown_content"] == f"![c]({CDN}/cat.jpg) and ![d](https://new.example/t2/media/dog.jpg)\n"
    assert post["featured_image"] == f"{CDN}/cat.jpg"
