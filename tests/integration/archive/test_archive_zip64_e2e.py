"""Issue 8, ZIP64 through the real pipeline (running services, filesystem store). Both slow.

(i)  65,600 posts inserted straight into the content database: more members than the classic end
     record can count, so the archive needs the zip64 end record and locator; catalog + assembly
     must finish in < 4 min.
(ii) One generated media object of 4 GiB + 64 MiB written as a plain file into the store (the
     filesystem store computes its ETag lazily): a member over 4 GiB (ZIP_64 sizes and data
     descriptor) that straddles the 4 GiB offset, with a small image before it and small images,
     manifest.json and errors.json after it — ZIP_32 members whose local headers are past 4 GiB, so
     their central-directory offsets need a zip64 extra — and a central directory past 4 GiB.
     Part size 64 MiB. Needs 30 GB free (source, parts and the completed archive exist at once;
     ~13 GB); skips with a message otherwise and removes every file it made, pass or fail.

Both archives are checked by zipfile, ``unzip -t``, ``bsdtar -xOf``, ``7z t`` and stream_unzip.
Durations and sizes are printed (run with ``-s``).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import struct
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.devtools.stack.natsserver import NatsServer
from services.devtools.stack.supervisor import Stack
from shared.archive.trailer import EOCD, EOCD_SIG, ZIP64_EOCD, ZIP64_EOCD_SIG, ZIP64_LOCATOR, ZIP64_LOCATOR_SIG
from shared.bus.connect import connect
from shared.content.port import ContentSource
from shared.content.seed import make_image
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.integration.archive.archive_e2e_support import (
    Exported,
    cli_names,
    cli_test,
    export_through_stack,
    free_gb,
    run_async,
    stream_unzip_digests,
    zipfile_digests,
)
from tests.support.env import settings_for
from tests.support.stack import logs_of, start_stack

pytestmark = pytest.mark.slow

MiB = 1 << 20
GiB = 1 << 30
FOUR_GIB = 1 << 32
NEEDED_FREE_GB = 30
POSTS = 65_600
OVER = FOUR_GIB + 64 * MiB  # one member over 4 GiB (and over stream-zip's ZIP_64 threshold)


def _tail_records(path: Path) -> dict[str, Any]:
    """The end records as written: classic EOCD, and the zip64 locator + record when present."""
    with path.open("rb") as f:
        f.seek(-(EOCD.size + ZIP64_LOCATOR.size + ZIP64_EOCD.size), 2)
        tail = f.read()
    eocd = EOCD.unpack_from(tail, len(tail) - EOCD.size)
    assert eocd[0] == EOCD_SIG
    out: dict[str, Any] = {"eocd_entries": eocd[4], "eocd_cd_size": eocd[5], "eocd_cd_offset": eocd[6]}
    locator = ZIP64_LOCATOR.unpack_from(tail, ZIP64_EOCD.size)
    record = ZIP64_EOCD.unpack_from(tail, 0)
    out["zip64"] = locator[0] == ZIP64_LOCATOR_SIG and record[0] == ZIP64_EOCD_SIG
    if out["zip64"]:
        out.update(entries=record[7], cd_size=record[8], cd_offset=record[9], locator_points_to=locator[2])
    return out


def _history(values: dict[str, Any], e: Exported) -> dict[str, float]:
    """Seconds from ExportRequested to each milestone, from the events' own timestamps."""
    async def go() -> dict[str, float]:
        bus = await connect(e.settings, "archive-e2e-history", ensure=True)
        try:
            events = [ev async for _, ev in bus.log.history(e.tenant_id, e.export_id)]
        finally:
            await bus.close()
        t0 = events[0].occurred_at
        return {ev.name(): (ev.occurred_at - t0).total_seconds() for ev in events
                if ev.name() in ("CatalogStarted", "ExportCataloged", "UploadStarted", "ArchiveAssembled",
                                 "ExportCompleted")}

    return run_async(go)


def _all_cli_readers(path: Path, timeout: float) -> dict[str, float]:
    """unzip -t, bsdtar -xOf and 7z t at once (each in its own thread); seconds each."""
    took: dict[str, float] = {}
    failures: list[BaseException] = []

    def one(reader: str) -> None:
        try:
            took[reader] = cli_test(reader, path, timeout)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=one, args=(r,)) for r in ("unzip", "bsdtar", "7z")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return took


# -- (i) more than 65,535 members -------------------------------------------------------------------

@pytest.fixture(scope="module")
def many_stack(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer) -> Iterator[tuple[dict, Stack]]:
    tmp = tmp_path_factory.mktemp("zip64-many")
    values = settings_for(tmp, nats_server.url)
    stack = start_stack(tmp / "stack", values)
    yield values, stack
    stack.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.timeout(600)
def test_65600_posts_get_zip64_end_records_and_open_in_every_reader(
        many_stack: tuple[dict, Stack], tmp_path: Path) -> None:
    async def prepare(content: ContentSource, store: ObjectStore, settings: Settings) -> tuple[str, dict]:
        tenant = f"many_{uuid.uuid4().hex[:10]}"
        now = 1_700_000_000
        await content.insert("tenants", [{"id": tenant, "username": "many", "display_name": "Many",
                                          "email": "m@example.org", "created_at": now}])
        started = time.monotonic()
        await content.insert("posts", [{
            "id": f"p{i:05d}", "tenant_id": tenant, "slug": f"post-{i:05d}", "title": f"Post {i}",
            "description": None, "markdown_content": f"Body {i}\n", "tags": None, "status": "published",
            "featured_image": None, "published_at": now - i, "created_at": now - i, "updated_at": None,
        } for i in range(POSTS)])  # executemany
        return tenant, {"insert_s": time.monotonic() - started}

    values, stack = many_stack
    try:
        e = export_through_stack(values, tmp_path / "many.zip", prepare, timeout=300)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{logs_of(stack)}") from None
    steps = _history(values, e)
    members = 1 + POSTS + 4  # README.md, the posts, index.json, feed.json, manifest.json, errors.json
    tail = _tail_records(e.path)
    size = e.path.stat().st_size
    print(f"\n65,600 posts: insert {e.info['insert_s']:.1f}s; cataloged at {steps['ExportCataloged']:.1f}s, "
          f"assembled at {steps['ArchiveAssembled']:.1f}s, complete at {steps['ExportCompleted']:.1f}s; "
          f"archive {size / 1e6:.1f} MB, {members} members, {len(e.state.parts)} parts")
    assert steps["ArchiveAssembled"] < 240, f"catalog + assembly took {steps['ArchiveAssembled']:.0f}s"

    assert tail["eocd_entries"] == 0xFFFF, "the classic EOCD must say 'look in zip64'"
    assert tail["zip64"], "no zip64 end record + locator"
    assert tail["entries"] == members
    assert tail["locator_points_to"] == tail["cd_offset"] + tail["cd_size"]

    started = time.monotonic()
    expected = zipfile_digests(e.path)
    zipfile_s = time.monotonic() - started
    names = [n for n, _, _ in expected]
    assert len(names) == members and names[0] == "README.md" and names[-2:] == ["manifest.json", "errors.json"]
    assert len(set(names)) == members
    readers = _all_cli_readers(e.path, 300)
    for reader in ("unzip", "bsdtar", "7z"):
        assert cli_names(reader, e.path, 300) == names, f"{reader} lists different names"
    started = time.monotonic()
    assert stream_unzip_digests(e.path) == expected
    stream_s = time.monotonic() - started
    with zipfile.ZipFile(e.path) as zf:
        assert zf.read("posts/post-65599.md").decode().endswith("Body 65599\n")
        assert zf.read("errors.json") == b"[]\n"
    print(f"readers: zipfile {zipfile_s:.1f}s, stream_unzip {stream_s:.1f}s, "
          + ", ".join(f"{k} {v:.1f}s" for k, v in readers.items()))


# -- (ii) a > 4 GiB archive with a > 4 GiB member -----------------------------------------------------

def write_generated(path: Path, size: int, seed: int) -> str:
    """``size`` bytes that deflate cannot shrink and that differ in every MiB (a 1 MiB random block
    with a per-MiB counter), written fast; returns their SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = bytearray(hashlib.shake_256(seed.to_bytes(8, "little")).digest(MiB))
    sha = hashlib.sha256()
    left, i = size, 0
    with path.open("wb") as f:
        while left:
            struct.pack_into("<QQ", block, 0, seed, i)
            chunk = memoryview(block)[:min(MiB, left)]
            f.write(chunk)
            sha.update(chunk)
            left -= len(chunk)
            i += 1
    return sha.hexdigest()


@pytest.fixture(scope="module")
def big_stack(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer) -> Iterator[tuple[dict, Stack]]:
    base = tmp_path_factory.getbasetemp()
    free = free_gb(base)
    if free < NEEDED_FREE_GB:
        pytest.skip(f"the > 4 GiB archive test needs {NEEDED_FREE_GB} GB free under {base}, only {free:.1f} GB")
    tmp = tmp_path_factory.mktemp("zip64-big")
    values = settings_for(tmp, nats_server.url, min_part_size=64 * MiB)
    stack = start_stack(tmp / "stack", values)
    try:
        yield values, stack
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # the sources, parts and archive: ~20 GB
        assert not tmp.exists(), f"could not remove {tmp}"


@pytest.mark.timeout(900)
def test_an_archive_over_4_gib_with_a_member_over_4_gib_opens_in_every_reader(
        big_stack: tuple[dict, Stack], tmp_path: Path) -> None:
    values, stack = big_stack

    async def prepare(content: ContentSource, store: ObjectStore, settings: Settings) -> tuple[str, dict]:
        tenant = f"big_{uuid.uuid4().hex[:10]}"
        now = 1_700_000_000
        await content.insert("tenants", [{"id": tenant, "username": "big", "display_name": "Big",
                                          "email": "b@example.org", "created_at": now}])
        rng = random.Random(4)
        media, want = [], {}
        # newest first = first in the archive: one small image, the big one, then small ones past 4 GiB
        for i, name in enumerate(["before.jpg", "over-4-gib.jpg", "after-0.jpg", "after-1.jpg", "after-2.jpg"]):
            key = f"{tenant}/media/{name}"
            if name == "over-4-gib.jpg":
                started = time.monotonic()
                path = Path(settings.store_root) / settings.buckets.images / key
                want[f"media/{name}"] = (OVER, write_generated(path, OVER, seed=9))  # plain file I/O
                generate_s = time.monotonic() - started
                size = OVER
            else:
                data = make_image(rng, 64 + i, 48)
                await store.put(settings.buckets.images, key, data, "image/jpeg")
                want[f"media/{name}"] = (size := len(data), hashlib.sha256(data).hexdigest())
            media.append({"id": f"m{i}", "tenant_id": tenant, "filename": name, "original_name": name,
                          "r2_key": key, "url": None, "size": size, "mime_type": "image/jpeg", "alt_text": None,
                          "uploaded_at": now - i})
        await content.insert("media", media)
        await content.insert("posts", [{
            "id": f"p{i}", "tenant_id": tenant, "slug": f"post-{i}", "title": f"Post {i}", "description": None,
            "markdown_content": f"Body {i}\n", "tags": None, "status": "published", "featured_image": None,
            "published_at": now, "created_at": now - i, "updated_at": None} for i in range(3)])
        return tenant, {"want": want, "generate_s": generate_s}

    try:
        e = export_through_stack(values, tmp_path / "unused.zip", prepare, timeout=780, copy_out=False)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{logs_of(stack)}") from None
    steps = _history(values, e)
    size = e.path.stat().st_size
    c = e.state.completed
    assert c is not None and c.error_count == 0
    assert e.state.upload is not None
    print(f"\n> 4 GiB archive: generated {OVER / GiB:.3f} GiB source in {e.info['generate_s']:.1f}s; "
          f"cataloged at {steps['ExportCataloged']:.1f}s, assembled at {steps['ArchiveAssembled']:.1f}s, "
          f"complete at {steps['ExportCompleted']:.1f}s; archive {size} B ({size / GiB:.3f} GiB), "
          f"{len(e.state.parts)} parts of {e.state.upload.part_size // MiB} MiB")
    assert size > FOUR_GIB

    # structure: zip64 where it is needed
    tail = _tail_records(e.path)
    assert tail["zip64"] and tail["cd_offset"] > FOUR_GIB and tail["eocd_cd_offset"] == 0xFFFFFFFF
    assert tail["locator_points_to"] == tail["cd_offset"] + tail["cd_size"]
    want: dict[str, tuple[int, str]] = e.info["want"]
    with zipfile.ZipFile(e.path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        names = list(infos)
        assert names[-2:] == ["manifest.json", "errors.json"]
        over = infos["media/over-4-gib.jpg"]
        assert over.file_size == OVER and over.compress_size > FOUR_GIB
        assert over.compress_type == zipfile.ZIP_DEFLATED  # level 0 for image/jpeg: ~same size
        assert over.header_offset < FOUR_GIB < over.header_offset + over.compress_size  # straddles 4 GiB
        past = ["media/after-0.jpg", "media/after-1.jpg", "media/after-2.jpg", "manifest.json", "errors.json"]
        assert [n for n in names if infos[n].header_offset > FOUR_GIB] == past
        # every member but the big one: read through the central directory, CRC-checked
        for name in names:
            if name != "media/over-4-gib.jpg":
                data = zf.read(name)
                if name in want:
                    assert (len(data), hashlib.sha256(data).hexdigest()) == want[name], name
        manifest = json.loads(zf.read("manifest.json"))
        assert zf.read("errors.json") == b"[]\n"
    listed = {m["path"]: (m["size"], m["sha256"]) for m in manifest["members"]}
    for name, expected in want.items():
        assert listed[name] == expected, f"manifest.json is wrong about {name}"

    # the CLI readers run concurrently with our own streamed read of the big member through zipfile
    results: dict[str, Any] = {}

    def cli() -> None:
        try:
            results["cli"] = _all_cli_readers(e.path, 780)
        except BaseException as err:  # noqa: BLE001
            results["cli_error"] = err

    runner = threading.Thread(target=cli)
    runner.start()
    started = time.monotonic()
    with zipfile.ZipFile(e.path) as zf, zf.open("media/over-4-gib.jpg") as member:  # CRC checked at EOF
        sha, n = hashlib.sha256(), 0
        while block := member.read(4 * MiB):
            sha.update(block)
            n += len(block)
    zipfile_s = time.monotonic() - started
    runner.join()
    if "cli_error" in results:
        raise results["cli_error"]
    assert (n, sha.hexdigest()) == want["media/over-4-gib.jpg"]
    started = time.monotonic()
    streamed = {name: (s, h) for name, s, h in stream_unzip_digests(e.path)}
    stream_s = time.monotonic() - started
    assert list(streamed) == names
    assert {name: streamed[name] for name in want} == want
    print("readers: zipfile (stream-hash of the big member) {:.1f}s, stream_unzip {:.1f}s, {}".format(
        zipfile_s, stream_s, ", ".join(f"{k} {v:.1f}s" for k, v in results["cli"].items())))
