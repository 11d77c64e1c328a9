"""The filesystem store reads a folder others write (a tenant's media): what is in it is not trusted.
A key names a regular file in the bucket's folder, reached without following a symbolic link; a
link (to /etc/passwd, to another tenant's folder), a FIFO or a device is no object — never read,
never waited on."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from services.catalog.service import Catalog
from shared.objectstore import ObjectNotFound, PreconditionFailed
from shared.objectstore.fs import FilesystemStore
from shared.runtime.settings import Settings
from tests.support.tools import require_tool

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

SECRET = b"root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[FilesystemStore, Path]:
    """t1's media holds a link to a file outside the store and a link to t2's media folder."""
    outside = tmp_path / "etc-passwd"
    outside.write_bytes(SECRET)
    root = tmp_path / "store"
    (root / "img" / "t2" / "media").mkdir(parents=True)
    (root / "img" / "t2" / "media" / "private.jpg").write_bytes(b"t2's photo")
    media = root / "img" / "t1" / "media"
    media.mkdir(parents=True)
    (media / "own.jpg").write_bytes(b"t1's photo")
    (media / "passwd.jpg").symlink_to(outside)
    (media / "other").symlink_to(root / "img" / "t2" / "media")
    (root / "img" / "t3").symlink_to(root / "img" / "t2")  # a tenant's whole folder a link to another's
    return FilesystemStore(root), root


LINKED = ["t1/media/passwd.jpg", "t1/media/other/private.jpg", "t3/media/private.jpg"]


@pytest.mark.parametrize("key", LINKED)
async def test_a_key_through_a_symbolic_link_is_no_object(tree: tuple[FilesystemStore, Path], key: str) -> None:
    store, _ = tree
    with pytest.raises(ObjectNotFound):
        await store.head("img", key)
    with pytest.raises(ObjectNotFound):
        await store.read("img", key)
    with pytest.raises(ObjectNotFound):
        b"".join(store.get_blocking("img", key))
    assert await store.read("img", "t1/media/own.jpg") == b"t1's photo"


async def test_a_listing_shows_no_linked_file_and_walks_no_linked_folder(tree: tuple[FilesystemStore, Path]) -> None:
    store, _ = tree
    assert [o.key for o in await store.list_keys("img", "t1/")] == ["t1/media/own.jpg"]
    assert await store.list_keys("img", "t1/media/other/") == []
    assert await store.list_keys("img", "t3/") == []


async def test_the_catalog_never_takes_a_linked_file_into_an_export(tree: tuple[FilesystemStore, Path]) -> None:
    store, _ = tree
    wanted = [("img", k) for k in ["t1/media/own.jpg", *LINKED]]
    heads = await Catalog(Settings(), store, None)._head_all(wanted, lambda: None)  # type: ignore[arg-type]
    assert heads[("img", "t1/media/own.jpg")] == (10, (await store.head("img", "t1/media/own.jpg")).etag)
    assert all(heads[("img", k)] == "missing: the file is not in storage" for k in LINKED)


async def test_a_fifo_where_a_file_was_is_no_object_and_no_read_waits_on_it(tmp_path: Path) -> None:
    # The catalog saw a file; by the time the assembler reads it, it is a FIFO nobody writes:
    # opening it to read used to block the encoder's thread for good.
    store = FilesystemStore(tmp_path)
    etag = await store.put("img", "t1/media/a.jpg", b"photo")
    path = tmp_path / "img" / "t1" / "media" / "a.jpg"
    path.unlink()
    os.mkfifo(path)
    try:
        with pytest.raises(ObjectNotFound):
            await asyncio.wait_for(asyncio.to_thread(lambda: b"".join(
                store.get_blocking("img", "t1/media/a.jpg", if_match=etag))), 5)
        with pytest.raises(ObjectNotFound):
            await asyncio.wait_for(store.read("img", "t1/media/a.jpg", if_match=etag), 5)
        with pytest.raises(ObjectNotFound):
            await asyncio.wait_for(store.head("img", "t1/media/a.jpg"), 5)
    finally:  # a reader still blocked in open() is let go, so the test process can end
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


async def test_a_key_no_file_can_have_is_that_items_reason_not_the_exports_failure(tmp_path: Path) -> None:
    # A NUL byte, a segment over the filesystem's 255 bytes, a path over its 4,096: stat() raised
    # ValueError / OSError(ENAMETOOLONG), which failed the catalog step (every retry, the whole export).
    store = FilesystemStore(tmp_path)
    await store.put("img", "t1/media/ok.jpg", b"fine")
    odd = ["t1/media/a\0.jpg", "t1/media/" + "é" * 128 + ".jpg", "t1/" + "d/" * 2100 + "x.jpg"]
    heads = await Catalog(Settings(), store, None)._head_all(  # type: ignore[arg-type]
        [("img", "t1/media/ok.jpg"), *(("img", k) for k in odd)], lambda: None)
    assert heads[("img", "t1/media/ok.jpg")] == (4, (await store.head("img", "t1/media/ok.jpg")).etag)
    for key in odd:
        reason = heads[("img", key)]
        assert isinstance(reason, str) and reason.startswith("unreadable: its storage key cannot name a file"), key


async def test_a_file_whose_name_leaves_no_room_for_its_cached_digest_is_still_read(tmp_path: Path) -> None:
    # 250 bytes is a legal name; the digest kept beside it (".<name>.etag") is not: reading it raised
    # ENAMETOOLONG out of head and list_keys, failing the catalog for one long file name.
    name = "n" * 246 + ".jpg"
    media = tmp_path / "img" / "t1" / "media"
    media.mkdir(parents=True)
    (media / name).write_bytes(b"long-named photo")
    store = FilesystemStore(tmp_path)
    info = await store.head("img", f"t1/media/{name}")
    assert info.size == 16
    assert [o.key for o in await store.list_keys("img", "t1/media/")] == [f"t1/media/{name}"]
    assert await store.read("img", f"t1/media/{name}", if_match=info.etag) == b"long-named photo"


@pytest.mark.parametrize("folder", ["t1/a\0b/", "t1/" + "d/" * 2100, "t1/" + "n" * 300 + "/"])
async def test_listing_a_folder_no_key_can_be_in_is_empty(tmp_path: Path, folder: str) -> None:
    store = FilesystemStore(tmp_path)
    await store.put("img", "t1/media/ok.jpg", b"fine")
    assert await store.list_keys("img", folder) == []


@pytest.mark.parametrize("blocking", [True, False], ids=["get_blocking", "get"])
async def test_a_file_rewritten_in_place_while_it_is_read_is_changed_not_torn(tmp_path: Path, blocking: bool) -> None:
    # If-Match was checked when the file was opened; someone then wrote into it (same size) while
    # it was read: the reader got old bytes then new ones, a file that never existed, into the archive
    # with nothing said. The read now ends in PreconditionFailed (the encoder drops the member:
    # "changed: the file was modified while it was read").
    store = FilesystemStore(tmp_path)
    data = os.urandom(3 << 20)
    await store.put("img", "t1/media/big.jpg", data)
    path = tmp_path / "img" / "t1" / "media" / "big.jpg"
    then = time.time_ns() - 60 * 10**9
    os.utime(path, ns=(then, then))  # written a minute before the export, as the catalog saw it
    etag = (await store.head("img", "t1/media/big.jpg")).etag

    def rewrite() -> None:
        with open(path, "r+b") as f:
            f.seek(2 << 20)
            f.write(bytes(1000))

    with pytest.raises(PreconditionFailed):
        if blocking:
            chunks = store.get_blocking("img", "t1/media/big.jpg", if_match=etag, chunk_size=1 << 20)
            next(chunks)
            rewrite()
            list(chunks)
        else:
            agen = store.get("img", "t1/media/big.jpg", if_match=etag, chunk_size=1 << 20)
            await agen.__anext__()
            rewrite()
            [c async for c in agen]
    # untouched, the same reads pass
    await store.put("img", "t1/media/b.jpg", data)
    etag = (await store.head("img", "t1/media/b.jpg")).etag
    assert b"".join(store.get_blocking("img", "t1/media/b.jpg", if_match=etag, start=5, end=2 << 20)) == data[5:2 << 20]
    assert await store.read("img", "t1/media/b.jpg", if_match=etag) == data


async def test_a_listing_skips_a_file_no_key_can_name_and_one_deleted_while_it_is_walked(tmp_path: Path) -> None:
    # A name that is not UTF-8 (no key from a database names it) and a file deleted between the walk
    # and its stat (a tenant deleting a photo while the catalog lists its media): either one made the
    # whole listing raise, and the catalog step with it.
    class DeletedMeanwhile(FilesystemStore):
        def _head(self, bucket: str, key: str):  # type: ignore[no-untyped-def]
            if key.endswith("gone.jpg"):
                (self.root / bucket / key).unlink()
            return super()._head(bucket, key)

    store = DeletedMeanwhile(tmp_path)
    for name in ("a.jpg", "gone.jpg", "z.jpg"):
        await store.put("img", f"t1/media/{name}", name.encode())
    with open(os.path.join(os.fsencode(tmp_path / "img" / "t1" / "media"), b"\xff.jpg"), "wb") as f:
        f.write(b"latin-1 name")
    assert [o.key for o in await store.list_keys("img", "t1/media/")] == ["t1/media/a.jpg", "t1/media/z.jpg"]


async def test_a_digest_cache_that_cannot_be_read_or_written_is_passed_over(tmp_path: Path) -> None:
    # The digest kept beside a file (".<name>.etag") is a cache. A media folder the service may read
    # but not write (another user's, a read-only mount), or a folder where the cache file would be,
    # raised out of head: every export of that tenant failed its catalog step. As root only the
    # second can be set up; both take the same path.
    media = tmp_path / "img" / "t1" / "media"
    media.mkdir(parents=True)
    (media / "a.jpg").write_bytes(b"photo")
    (media / ".a.jpg.etag").mkdir()
    store = FilesystemStore(tmp_path)
    info = await store.head("img", "t1/media/a.jpg")
    assert info.size == 5
    assert await store.read("img", "t1/media/a.jpg", if_match=info.etag) == b"photo"
    assert [o.key for o in await store.list_keys("img", "t1/")] == ["t1/media/a.jpg"]


UNREADABLE = """
import asyncio, json, sys
from pathlib import Path
from services.catalog.service import Catalog
from shared.objectstore import StoreError
from shared.objectstore.fs import FilesystemStore
from shared.runtime.settings import Settings

async def main() -> None:
    store = FilesystemStore(Path(sys.argv[1]))
    wanted = [("img", "t1/media/a.jpg"), ("img", "t1/media/locked.jpg")]
    heads = await Catalog(Settings(), store, None)._head_all(wanted, lambda: None)
    out = [heads[w] for w in wanted]
    try:
        b"".join(store.get_blocking("img", "t1/media/locked.jpg"))
        out.append("read")
    except StoreError as e:
        out.append(type(e).__name__)
    try:
        await store.head("gone-bucket", "t1/media/a.jpg")
    except StoreError as e:
        out.append(type(e).__name__)
    print(json.dumps(out))

asyncio.run(main())
"""


async def test_a_file_the_service_may_not_read_is_that_items_reason(tmp_path: Path) -> None:
    # Another user's file without read permission for the service: open() raised PermissionError out
    # of head, and the catalog step failed for every export of that tenant. It is now that item's
    # `unreadable` entry in errors.json; a bucket folder the service may not read still fails the
    # step at once (StoreRefused). Root reads every file: the check runs without its override.
    media = tmp_path / "img" / "t1" / "media"
    media.mkdir(parents=True)
    (media / "a.jpg").write_bytes(b"photo")
    (media / "locked.jpg").write_bytes(b"private")
    (media / "locked.jpg").chmod(0)
    (tmp_path / "gone-bucket").mkdir(mode=0)
    command = [sys.executable, "-c", UNREADABLE, str(tmp_path)]
    if os.geteuid() == 0:
        # as root every file is readable: setpriv drops the override (skips, or fails under
        # GROVE_REQUIRE_ALL=1, when it is missing)
        setpriv = require_tool("setpriv", "util-linux")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search",
                   "--inh-caps=-dac_override,-dac_read_search", *command]
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2])
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    a, locked, read, bucket = json.loads(out)
    assert a[0] == 5
    assert locked == "unreadable: the storage service returned an error for this file"
    assert read == "StoreError"
    assert bucket == "StoreRefused"


async def test_a_file_dated_past_year_9999_is_headed_and_listed(tmp_path: Path) -> None:
    # tmpfs, XFS and btrfs keep 64-bit times (tar restores whatever an archive says): a media file
    # dated in the year 33658 made datetime.fromtimestamp raise ValueError out of head and list_keys,
    # and the catalog step failed. Its time is unknown now (as an S3 answer without one).
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no tmpfs at /dev/shm")
    root = Path(tempfile.mkdtemp(dir=shm))
    try:
        store = FilesystemStore(root)
        await store.put("img", "t1/media/a.jpg", b"photo")
        path = root / "img" / "t1" / "media" / "a.jpg"
        far = 10**12 * 10**9
        os.utime(path, ns=(far, far))
        if path.stat().st_mtime_ns != far:
            pytest.skip("this filesystem clamps times")
        info = await store.head("img", "t1/media/a.jpg")
        assert (info.size, info.last_modified) == (5, None)
        assert [o.key for o in await store.list_keys("img", "t1/")] == ["t1/media/a.jpg"]
    finally:
        shutil.rmtree(root)


async def test_a_store_whose_root_is_a_link_reads_by_walking_and_still_refuses_links_below(
        tree: tuple[FilesystemStore, Path], tmp_path: Path) -> None:
    # A root (or a bucket folder) that is a link is the deployment's choice: the one-call open sees
    # another name for the file and walks the key instead, with the same answers.
    _, root = tree
    (tmp_path / "root-link").symlink_to(root)
    store = FilesystemStore(tmp_path / "root-link")
    assert await store.read("img", "t1/media/own.jpg") == b"t1's photo"
    assert b"".join(store.get_blocking("img", "t1/media/own.jpg")) == b"t1's photo"
    for key in LINKED:
        with pytest.raises(ObjectNotFound):
            await store.head("img", key)


@pytest.mark.parametrize("call", ["head", "get", "get_blocking"])
async def test_a_file_swapped_for_a_fifo_after_it_was_opened_is_hashed_from_what_was_opened(
        tmp_path: Path, call: str) -> None:
    # A file without a cached digest (placed by hand) is hashed. That hash opened the path again:
    # a FIFO put there in between held the thread in open() for good (and a link there was hashed
    # in the opened file's place). It now reads the file already opened.
    class SwappedAfterOpen(FilesystemStore):
        def _open(self, bucket: str, key: str, path: str | Path) -> int:
            fd = super()._open(bucket, key, path)
            os.unlink(path)
            os.mkfifo(path)
            return fd

    media = tmp_path / "img" / "t1" / "media"
    media.mkdir(parents=True)
    (media / "a.jpg").write_bytes(b"photo")
    etag = hashlib.md5(b"photo", usedforsecurity=False).hexdigest()
    store = SwappedAfterOpen(tmp_path)

    def blocking() -> bytes:
        return b"".join(store.get_blocking("img", "t1/media/a.jpg", if_match=etag))

    try:
        if call == "head":
            assert (await asyncio.wait_for(store.head("img", "t1/media/a.jpg"), 5)).etag == etag
        elif call == "get":
            assert await asyncio.wait_for(store.read("img", "t1/media/a.jpg", if_match=etag), 5) == b"photo"
        else:
            assert await asyncio.wait_for(asyncio.to_thread(blocking), 5) == b"photo"
    finally:  # a reader still blocked in open() is let go, so the test process can end
        with contextlib.suppress(OSError):
            os.close(os.open(media / "a.jpg", os.O_WRONLY | os.O_NONBLOCK))


async def test_a_digest_cache_file_that_is_a_fifo_or_a_link_is_neither_waited_on_nor_written_through(
        tmp_path: Path) -> None:
    # ".<name>.etag" is read and written beside the tenant's file, in a folder others write. A FIFO
    # there held head() in open() for good; a link there (to a file of the system's) had the digest
    # written into the link's target — as whatever user the service runs as.
    media = tmp_path / "img" / "t1" / "media"
    media.mkdir(parents=True)
    (media / "a.jpg").write_bytes(b"photo")
    (media / "b.jpg").write_bytes(b"other")
    os.mkfifo(media / ".a.jpg.etag")
    target = tmp_path / "system-file"
    target.write_bytes(SECRET)
    (media / ".b.jpg.etag").symlink_to(target)
    store = FilesystemStore(tmp_path)
    try:
        a = await asyncio.wait_for(store.head("img", "t1/media/a.jpg"), 5)
        b = await asyncio.wait_for(store.head("img", "t1/media/b.jpg"), 5)
        assert a.etag == hashlib.md5(b"photo", usedforsecurity=False).hexdigest()
        assert b.etag == hashlib.md5(b"other", usedforsecurity=False).hexdigest()
        assert target.read_bytes() == SECRET
        assert await store.read("img", "t1/media/b.jpg", if_match=b.etag) == b"other"
    finally:  # a reader still blocked in open() is let go, so the test process can end
        with contextlib.suppress(OSError):
            os.close(os.open(media / ".a.jpg.etag", os.O_WRONLY | os.O_NONBLOCK))


async def test_a_file_changed_within_its_clock_tick_is_not_described_by_the_old_digest(tmp_path: Path) -> None:
    """The digest cached beside a file is trusted while the file's stamp matches. A file rewritten in
    place with the same size within one tick of the file system's clock keeps its mtime, so a digest
    cached just before the rewrite described the old bytes: the catalog froze that ETag, the
    assembler's If-Match passed on the new bytes, and a change between catalog and assembly went
    unseen. A digest is not cached while the file's mtime is that recent (git's "racily clean")."""
    media = tmp_path / "img" / "t1" / "media"
    media.mkdir(parents=True)
    photo = media / "a.jpg"
    photo.write_bytes(b"old photo")
    store = FilesystemStore(tmp_path)
    before = (await store.head("img", "t1/media/a.jpg")).etag
    assert before == hashlib.md5(b"old photo").hexdigest()
    tick = photo.stat().st_mtime_ns
    with open(photo, "r+b") as f:  # in place: same inode, same size
        f.write(b"new photo")
    os.utime(photo, ns=(tick, tick))  # the same tick of the clock
    after = (await store.head("img", "t1/media/a.jpg")).etag
    assert after == hashlib.md5(b"new photo").hexdigest() != before


async def test_a_file_replaced_by_one_with_the_same_size_and_mtime_is_hashed_again(tmp_path: Path) -> None:
    """A platform's sync that keeps times (rsync -t, cp -p, an unpacked backup) replaces a file by
    another of the same size with the same mtime: the cached digest of the old file matched its
    stamp and was served for the new one. The stamp holds the inode too."""
    media = tmp_path / "img" / "t1" / "media"
    media.mkdir(parents=True)
    photo = media / "a.jpg"
    photo.write_bytes(b"old photo")
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(photo, ns=(hour_ago, hour_ago))  # old enough to be cached
    store = FilesystemStore(tmp_path)
    assert (await store.head("img", "t1/media/a.jpg")).etag == hashlib.md5(b"old photo").hexdigest()
    assert (media / ".a.jpg.etag").is_file()  # cached
    staged = media / "a.jpg.sync-tmp"
    staged.write_bytes(b"new photo")
    os.utime(staged, ns=(hour_ago, hour_ago))
    os.replace(staged, photo)
    assert (await store.head("img", "t1/media/a.jpg")).etag == hashlib.md5(b"new photo").hexdigest()
