"""What `grove-export verify` (and `import`, which verifies first) does with an archive is bounded by
what an export can write, so a small archive a stranger made cannot take minutes or gigabytes, and
no archive an export made is refused: each limit has a crafted archive it stops and a real export at
its edge that still verifies."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.archivetools import verify
from services.archivetools.importer import plan_restore
from services.archivetools.verify import verify_archive
from services.catalog.render import plan_blog
from shared.archive.frontmatter import parse_markdown, render_markdown
from shared.archive.ownmedia import REWRITE_LIMIT
from shared.core.snapshot import SnapshotMember
from tests.integration.archive.test_import_refusals import archive, cli, files_in, post_meta
from tests.support.archives import encode_plan


def exported(tmp_path: Path, posts: list[dict[str, Any]], media: list[dict[str, Any]], image: bytes = b"img") -> Path:
    """The archive the pipeline makes of these posts and images."""
    heads = {("img", m["r2_key"]): (len(image), "e") for m in media}
    plan = plan_blog(posts, [], media, True, "img", heads=heads)

    def open_source(m: SnapshotMember) -> Iterator[bytes]:
        return iter([plan.spool.read(m.start, m.size)]) if m.key == "texts" else iter([image])

    path = encode_plan(plan, tmp_path / "a.zip", open_source)
    plan.close()
    return path


def scanned(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The lengths of the bodies verify scans for links."""
    lengths: list[int] = []
    real = verify.find_links

    def counting(body: str) -> Any:
        lengths.append(len(body))
        return real(body)

    monkeypatch.setattr(verify, "find_links", counting)
    return lengths


# -- links: scanned where an export rewrites them ----------------------------------------------------
def test_a_body_over_the_rewrite_limit_is_not_scanned_for_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: a post of 8 MiB of `[a]: b` lines (an archive of 14 KB) took verify 17 s and 488 MB,
    scanning for links an export never rewrites past 2 MiB (REWRITE_LIMIT); 64 MiB would take minutes
    and gigabytes. Its links keep their URLs: nothing in it points into the archive."""
    body = "[a]: b\n" + "x" * REWRITE_LIMIT
    path = archive(tmp_path / "big.zip", raw_post=render_markdown(post_meta(), body).encode(),
                   compression=zipfile.ZIP_DEFLATED)
    lengths = scanned(monkeypatch)
    report = verify_archive(path)
    assert report.ok, report.text()
    assert max(lengths) <= REWRITE_LIMIT, lengths
    assert f"1 posts or pages over {REWRITE_LIMIT:,} characters: their links were not checked (an export rewrites " \
           "none there; they keep their URLs)" in report.facts


def test_links_index_json_says_were_rewritten_in_a_body_over_the_limit_are_refused(tmp_path: Path) -> None:
    """import restores the links index.json lists (media_links) by scanning the body for them: a body
    over what an export rewrites links in, with links listed, is no export's, and is refused in one
    line by verify and import alike, before anything is written."""
    body = "[a]: b\n" * (REWRITE_LIMIT // 7 + 1000)
    links = [{"url": "https://cdn.example/x", "path": "media/a.jpg"}]
    path = archive(tmp_path / "listed.zip", raw_post=render_markdown(post_meta(), body).encode(),
                   edit_index=lambda i: i["posts"][0].update(media_links=links), compression=zipfile.ZIP_DEFLATED)
    most = REWRITE_LIMIT + len("../media/a.jpg")
    line = (f"posts/hello.md: its body is {len(body):,} characters, over the {most:,} an export rewrites links in, "
            "yet index.json lists links rewritten in it (media_links)")
    assert line in verify_archive(path).problems
    out = cli(tmp_path, "--data", str(tmp_path), "import", str(path), "--tenant", "tenant_b")
    assert (out.returncode, out.stdout) == (2, ""), out.stdout + out.stderr
    assert out.stderr == f"grove-export: import refused: the archive does not verify: {line}\n", out.stderr
    assert not files_in(tmp_path / "store")
    with zipfile.ZipFile(path) as zf, pytest.raises(Exception, match="over the"):  # and import's own check
        plan_restore(zf, "tenant_b", "https://cdn.example/{key}", "images", "amber")


def test_a_real_export_whose_rewritten_links_took_its_body_past_the_limit_verifies_and_imports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body of exactly REWRITE_LIMIT characters whose links name the image by its short object key:
    rewritten to the image's longer relative path, the archive's body is over the limit, and its links
    are still scanned (verify checks them, import restores them)."""
    name = "a-rather-long-file-name-for-a-photo-of-the-cat.jpg"
    link = "![c](t1/k.jpg)\n"
    body = link * 3 + "x" * (REWRITE_LIMIT - 3 * len(link))
    posts = [{"id": "p1", "slug": "hello", "title": "Hello", "markdown_content": body, "status": "published",
              "created_at": 1}]
    media = [{"id": "m1", "filename": name, "r2_key": "t1/k.jpg", "url": None, "size": 3, "uploaded_at": 1}]
    path = exported(tmp_path, posts, media)
    with zipfile.ZipFile(path) as zf:
        _, written = parse_markdown(zf.read("posts/hello.md").decode())
        assert len(written) > REWRITE_LIMIT and f"../media/{name}" in written
    lengths = scanned(monkeypatch)
    report = verify_archive(path)
    assert report.ok, report.text()
    assert "3 links to media checked" in report.facts and max(lengths) > REWRITE_LIMIT
    with zipfile.ZipFile(path) as zf:
        plan = plan_restore(zf, "t2", "https://cdn.example/{key}", "images", "amber")
    assert plan.tables["posts"][0]["markdown_content"] == body.replace("t1/k.jpg", "https://cdn.example/t2/k.jpg")
