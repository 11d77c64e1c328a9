"""`grove-export import` holds one post's text at a time, not the archive's: every post's and page's
row was built (body read, links rewritten) into the plan before a row was written, and both content
adapters gathered every row again before writing, so a 1 MB archive of 64 posts of 16 MiB of one
letter each (deflate shrinks them a thousandfold) took import 1.17 GB (verify: 95 MB). Rows are
checked one at a time first, then built again one at a time as they are written, inside the
transaction."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from services.archivetools.importer import ImportRefused
from shared.archive.frontmatter import render_markdown
from shared.content.factory import open_content, sqlite_dsn
from shared.content.port import ContentSource
from shared.objectstore.fs import FilesystemStore
from tests.integration.archive.test_import_refusals import archive, assert_nothing_left, post_meta, run_import

POSTS, MIB = 24, 16  # 384 MiB of text in an archive of some 400 KB


def _archive(path: Path) -> Path:
    body = "a" * (MIB << 20)
    index = {"format": "grove-export-index", "version": 1, "pages": [], "media": [],
             "posts": [{"id": f"post_{n}_src", "path": f"posts/p{n}.md", "media_links": []} for n in range(POSTS)]}
    digests = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for n in range(POSTS):
            raw = render_markdown(post_meta(slug=f"p{n}", title=f"P{n}"), body).encode()
            zf.writestr(f"posts/p{n}.md", raw)
            digests.append((f"posts/p{n}.md", raw))
            del raw
        raw = json.dumps(index).encode()
        zf.writestr("index.json", raw)
        members = [{"path": name, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                   for name, b in [*digests, ("index.json", raw)]]
        zf.writestr("manifest.json", json.dumps({"tenant_id": "src", "username": "u", "mode": "blog",
                                                 "item_counts": {"posts": POSTS, "pages": 0, "images": 0},
                                                 "members": members}))
        zf.writestr("errors.json", "[]")
    return path


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_import_holds_one_post_at_a_time(tmp_path: Path, request: pytest.FixtureRequest, db: str) -> None:
    dsn = str(request.getfixturevalue("postgres_dsn")) if db == "postgresql" else sqlite_dsn(tmp_path / "c.db")
    path = _archive(tmp_path / "a.zip")
    env = {**os.environ, "GROVE_STORE": "fs", "GROVE_STORE_ROOT": str(tmp_path / "store"), "GROVE_CONTENT_DSN": dsn}
    done = subprocess.run(["/usr/bin/time", "-f", "peak_rss_kb=%M", sys.executable, "-m", "services.cli", "import",
                           str(path), "--tenant", "tgt"], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert f"restored 0 media, {POSTS} posts, 0 pages" in done.stdout, done.stdout
    peak = int(done.stderr.rsplit("peak_rss_kb=", 1)[1].split()[0]) >> 10
    assert peak < 300, f"import peaked at {peak} MiB for {POSTS * MIB} MiB of text in a {path.stat().st_size:,}-byte archive"


class RewrittenMeanwhile:
    """The real content source; before its write, the archive is written to in place (a post's text
    changed, as `rsync --inplace` of a newer copy would): the posts are read again as they are written."""

    def __init__(self, inner: ContentSource, path: Path, old: bytes, new: bytes) -> None:
        self.inner, self.path, self.old, self.new = inner, path, old, new
        self.rewrote = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def insert_tables(self, batches: Sequence[tuple[str, Iterable[Mapping[str, Any]]]]) -> int:
        data = self.path.read_bytes()
        assert data.count(self.old) == 1
        with open(self.path, "r+b") as f:  # in place: the import's open file reads these bytes
            f.seek(data.index(self.old))
            f.write(self.new)
        self.rewrote = True
        return await self.inner.insert_tables(batches)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_an_archive_written_to_while_its_rows_are_written_is_refused(
        tmp_path: Path, request: pytest.FixtureRequest, db: str) -> None:
    dsn = str(request.getfixturevalue("postgres_dsn")) if db == "postgresql" else sqlite_dsn(tmp_path / "c.db")
    path = archive(tmp_path / "a.zip")  # stored: the post's text is in the file as it is
    await _refused_as_written_to(tmp_path, dsn, path, lambda content: RewrittenMeanwhile(
        content, path, b"# Hello\n", b"# Hallo\n"))


async def _refused_as_written_to(tmp_path: Path, dsn: str, path: Path,
                                 rewriter: Callable[[ContentSource], RewrittenMeanwhile]) -> None:
    """Import ``path`` through ``rewriter`` (which writes to the archive as the rows are written): refused
    as written to meanwhile, the rewrite done, nothing left in the content source or the store."""
    content = open_content(dsn, pool_max=2)
    await content.init()
    store = FilesystemStore(tmp_path / "store")
    rewriting = rewriter(content)
    try:
        with pytest.raises(ImportRefused, match="written to while it was imported"):
            await run_import(path, "tgt", rewriting, store)  # type: ignore[arg-type]
        assert rewriting.rewrote
        await assert_nothing_left(content, store, "tgt")
    finally:
        await content.close()


class StreamBrokenMeanwhile(RewrittenMeanwhile):
    """As :class:`RewrittenMeanwhile`, but the bytes written over are a deflated post's stream itself:
    reading the post again fails in zlib, not on its CRC-32."""

    def __init__(self, inner: ContentSource, path: Path, member: str) -> None:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(member)
        with open(path, "rb") as f:
            f.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
            start = info.header_offset + 30 + name_len + extra_len
            f.seek(start)
            old = f.read(8)
        super().__init__(inner, path, old, b"\xff" * 8)  # block type 3: "invalid block type"


async def test_an_archive_whose_deflated_post_is_broken_meanwhile_is_refused_as_written_to(tmp_path: Path) -> None:
    """Not only a CRC-32 that no longer matches: a post that no longer inflates (zlib.error) is the
    archive changed since it was checked too, and said so, not as zlib's own message."""
    path = archive(tmp_path / "a.zip", compression=zipfile.ZIP_DEFLATED)
    await _refused_as_written_to(tmp_path, sqlite_dsn(tmp_path / "c.db"), path,
                                 lambda content: StreamBrokenMeanwhile(content, path, "posts/hello.md"))
