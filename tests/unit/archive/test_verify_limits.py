"""What `grove-export verify` (and `import`, which verifies first) does with an archive is bounded by
what an export can write, so a small archive a stranger made cannot take minutes or gigabytes, and
no archive an export made is refused: each limit has a crafted archive it stops and a real export at
its edge that still verifies."""

from __future__ import annotations

import hashlib
import json
import re
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.archivetools import verify
from services.archivetools.documents import DocumentError, Errors, Index, Manifest, check
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
        tables = {t: list(rows) for t, rows in plan.tables.items()}  # posts are read from the open archive
    assert tables["posts"][0]["markdown_content"] == body.replace("t1/k.jpg", "https://cdn.example/t2/k.jpg")


# -- JSON documents: checked an entry at a time --------------------------------------------------
@pytest.mark.parametrize(("model", "doc", "problem"), [
    (Index, {"media": [{}] * 200_000}, None),
    (Manifest, {"members": [{}] * 200_000}, "manifest.json: members[0].path is missing"),
    (Errors, [[]] * 200_000, "manifest.json: item 0 is not an object"),
])
def test_a_long_list_of_entries_is_checked_in_bounded_memory(model: Any, doc: Any, problem: str | None) -> None:
    """Seen: index.json of 4 MiB of `{},` in media (a 5.6 KB archive): verify 8.2 s and 944 MB, pydantic
    building a model of every entry (and, for entries of the wrong shape, an error for each); the JSON
    parser's own objects were 150 MB of it. Now entries are checked one at a time, up to the first
    problem: the check's peak is a few kilobytes, whatever the number of entries."""
    doc = json.loads(json.dumps(doc))  # entries of their own, as the parser makes them
    tracemalloc.start()
    try:
        if problem is None:
            check(model, doc, "manifest.json")
        else:
            with pytest.raises(DocumentError, match=re.escape(problem)):
                check(model, doc, "manifest.json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # before: 110 MB, 152 MB and 248 MB


def test_a_real_export_with_many_images_left_out_verifies(tmp_path: Path) -> None:
    """An export without images lists every image in index.json's media, none in the archive (path
    null): checked an entry at a time, it verifies as before."""
    posts = [{"id": "p1", "slug": "hello", "title": "Hello", "markdown_content": "hi", "status": "published",
              "created_at": 1}]
    media = [{"id": f"m{i}", "filename": f"{i}.jpg", "r2_key": f"t1/{i}.jpg", "url": None, "size": 3,
              "uploaded_at": 1} for i in range(5000)]
    plan = plan_blog(posts, [], media, False, "img")
    path = encode_plan(plan, tmp_path / "a.zip", lambda m: iter([plan.spool.read(m.start, m.size)]))
    plan.close()
    report = verify_archive(path)
    assert report.ok, report.text()
    with zipfile.ZipFile(path) as zf:
        assert len(json.loads(zf.read("index.json"))["media"]) == 5000


def test_an_archive_of_many_members_verifies_in_time_linear_in_their_number(tmp_path: Path) -> None:
    """Seen: 200,000 empty members, each listed in manifest.json (a 44 MB archive), took verify 3 min 27 s
    (20,000: 2.5 s; 40,000: 8.1 s): each manifest entry was looked up in the list of names, so the work
    grew with the square of the members, a million of them (220 MB) some hours of a core, import's too.
    Now 4.4 s for the 200,000; the 80,000 here took 59 s before and about 2 s after."""
    path, n = tmp_path / "many.zip", 80_000
    empty = hashlib.sha256(b"").hexdigest()
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            info = zipfile.ZipInfo(f"media/{i:06d}")
            info.flag_bits |= 0x800  # marked UTF-8, as an export marks every name
            zf.writestr(info, b"")
        zf.writestr("manifest.json", json.dumps({"tenant_id": "t", "members": [
            {"path": f"media/{i:06d}", "size": 0, "sha256": empty} for i in range(n)]}))
        zf.writestr("errors.json", "[]")
    started = time.process_time()  # CPU time: a busy machine (two test workers, load 6) took 12.9 s of wall time
    report = verify_archive(path)
    took = time.process_time() - started
    assert report.ok, report.text()
    assert took < 10, f"verify took {took:.1f} s of CPU for {n} members"
