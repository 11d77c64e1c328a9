"""The filesystem store completes an upload by growing part 1 into the object and renaming it; an
interrupted completion is undone (or, once the object is in place, counts as done)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from shared.objectstore import CompletedPart, NoSuchUpload
from shared.objectstore import fs as fsmod
from shared.objectstore.fs import FilesystemStore

P1, P2, P3 = os.urandom(300_000), os.urandom(200_000), os.urandom(1234)


async def _upload(store: FilesystemStore) -> tuple[str, list[CompletedPart]]:
    uid = await store.create_multipart("b", "out/a.zip")
    parts = [CompletedPart(n, await store.upload_part("b", "out/a.zip", uid, n, memoryview(d)))
             for n, d in ((1, P1), (2, P2), (3, P3))]
    return uid, parts


async def test_completion_moves_part_one_into_place_without_rehashing_parts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path)
    uid, parts = await _upload(store)
    part1 = tmp_path / ".uploads" / "b" / uid / "00001.part"
    inode = part1.stat().st_ino

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(fsmod, "_hash_file", no_hashing)
    assert [p.etag for p in await store.list_parts("b", "out/a.zip", uid)] == [p.etag for p in parts]
    await store.complete_multipart("b", "out/a.zip", uid, parts)
    target = tmp_path / "b" / "out" / "a.zip"
    assert target.read_bytes() == P1 + P2 + P3
    assert target.stat().st_ino == inode  # renamed, not copied
    assert not (tmp_path / ".uploads" / "b" / uid).exists()


async def test_a_completion_interrupted_while_appending_is_undone(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path)
    uid, parts = await _upload(store)
    calls = []

    def crash_after_one(src: int, dst: int, size: int) -> None:
        calls.append(size)
        os.write(dst, os.read(src, size))
        raise KeyboardInterrupt("killed mid-completion")  # not an Exception: nothing cleans up

    monkeypatch.setattr(fsmod, "_append", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        await store.complete_multipart("b", "out/a.zip", uid, parts)
    monkeypatch.undo()
    listed = await store.list_parts("b", "out/a.zip", uid)  # the next call finds the journal: undo
    assert [(p.part_number, p.size) for p in listed] == [(1, len(P1)), (2, len(P2)), (3, len(P3))]
    assert listed[0].etag == fsmod.part_etag(P1)
    await store.complete_multipart("b", "out/a.zip", uid, parts)
    assert (tmp_path / "b" / "out" / "a.zip").read_bytes() == P1 + P2 + P3


async def test_a_completion_interrupted_after_the_rename_counts_as_done(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path)
    uid, parts = await _upload(store)

    def killed(*_: object, **__: object) -> None:
        raise KeyboardInterrupt("killed before the upload folder was removed")

    monkeypatch.setattr(fsmod.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        await store.complete_multipart("b", "out/a.zip", uid, parts)
    monkeypatch.undo()
    with pytest.raises(NoSuchUpload):  # as S3 answers for a completed upload
        await store.list_parts("b", "out/a.zip", uid)
    head = await store.head("b", "out/a.zip")
    assert head.size == len(P1 + P2 + P3) and head.etag.endswith("-3")


# -- an upload laid out by part size (the assembler's): parts at their offsets in one file --------
STRIDE = 16 * 4096
S1, S2, S3 = os.urandom(STRIDE), os.urandom(STRIDE), os.urandom(5000)


def _aligned(data: bytes) -> memoryview:
    """A page-aligned buffer, as the assembler's part buffers for this store are."""
    import mmap

    buf = mmap.mmap(-1, STRIDE)
    buf[:len(data)] = data
    return memoryview(buf)[:len(data)]


async def _staged(store: FilesystemStore, parts: tuple[bytes, ...] = (S1, S2, S3),
                  aligned: bool = True) -> tuple[str, list[CompletedPart]]:
    uid = await store.create_multipart("b", "out/s.zip", "application/zip", STRIDE)
    done = [CompletedPart(n, await store.upload_part("b", "out/s.zip", uid, n, _aligned(d) if aligned else d))
            for n, d in enumerate(parts, start=1)]
    return uid, done


async def test_a_staged_upload_writes_parts_at_their_offsets_with_o_direct_and_completes_by_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path)
    flags: dict[int, int] = {}  # fd → its open flags
    written: list[tuple[bool, int, int]] = []  # (O_DIRECT?, offset, bytes) of each pwrite
    real_open, real_pwrite = os.open, os.pwrite

    def watch_open(path: object, flag: int, *args: object) -> int:
        fd = real_open(path, flag, *args)  # type: ignore[arg-type]
        flags[fd] = flag
        return fd

    def watch_pwrite(fd: int, data: memoryview, offset: int) -> int:
        n = real_pwrite(fd, data, offset)
        written.append((bool(flags.get(fd, 0) & fsmod._O_DIRECT), offset, n))
        return n

    monkeypatch.setattr(fsmod.os, "open", watch_open)
    monkeypatch.setattr(fsmod.os, "pwrite", watch_pwrite)
    uid, parts = await _staged(store)
    monkeypatch.undo()
    # the two whole parts and the last part's whole page with O_DIRECT; only its last 904 bytes are
    # written through the page cache (a small export's archive is one such last part)
    assert fsmod._O_DIRECT and written == [(True, 0, STRIDE), (True, STRIDE, STRIDE), (True, 2 * STRIDE, 4096),
                                           (False, 2 * STRIDE + 4096, 5000 - 4096)]
    d = tmp_path / ".uploads" / "b" / uid
    assert not list(d.glob("*.part"))  # no file per part
    staged = d / "upload.bin"
    inode = staged.stat().st_ino
    listed = await store.list_parts("b", "out/s.zip", uid)
    assert [(p.part_number, p.size, p.etag) for p in listed] == [
        (1, STRIDE, fsmod.part_etag(S1)), (2, STRIDE, fsmod.part_etag(S2)), (3, 5000, fsmod.part_etag(S3))]
    etag = await store.complete_multipart("b", "out/s.zip", uid, parts)
    target = tmp_path / "b" / "out" / "s.zip"
    assert target.read_bytes() == S1 + S2 + S3
    assert target.stat().st_ino == inode  # renamed, not copied
    assert (await store.head("b", "out/s.zip")).etag == etag
    assert not d.exists()


async def test_a_staged_upload_refuses_a_part_larger_than_its_part_size(tmp_path: Path) -> None:
    from shared.objectstore import StoreError

    store = FilesystemStore(tmp_path)
    uid = await store.create_multipart("b", "out/s.zip", None, STRIDE)
    with pytest.raises(StoreError, match="more than the upload's part size"):
        await store.upload_part("b", "out/s.zip", uid, 1, os.urandom(STRIDE + 1))


async def test_a_staged_upload_with_a_short_middle_part_is_gathered_into_the_object(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    short = os.urandom(3000)
    uid, parts = await _staged(store, (S1, short, S3), aligned=False)  # bytes: written through the page cache
    await store.complete_multipart("b", "out/s.zip", uid, parts)
    assert (tmp_path / "b" / "out" / "s.zip").read_bytes() == S1 + short + S3


async def test_a_staged_completion_interrupted_before_the_rename_is_undone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path)
    uid, parts = await _staged(store)
    real_replace = os.replace

    def killed_at_the_rename(src: object, dst: object) -> None:
        if str(dst).endswith("s.zip"):
            raise KeyboardInterrupt("killed after the cut, before the rename")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(fsmod.os, "replace", killed_at_the_rename)
    with pytest.raises(KeyboardInterrupt):  # completing parts 1-2 only: the file was cut after part 2
        await store.complete_multipart("b", "out/s.zip", uid, parts[:2])
    monkeypatch.undo()
    listed = await store.list_parts("b", "out/s.zip", uid)  # the journal is found: part 3 was cut away
    assert [(p.part_number, p.size) for p in listed] == [(1, STRIDE), (2, STRIDE)]
    parts[2] = CompletedPart(3, await store.upload_part("b", "out/s.zip", uid, 3, S3))  # re-sent, as on resume
    await store.complete_multipart("b", "out/s.zip", uid, parts)
    assert (tmp_path / "b" / "out" / "s.zip").read_bytes() == S1 + S2 + S3


async def test_a_staged_completion_interrupted_after_the_rename_counts_as_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path)
    uid, parts = await _staged(store)

    def killed(*_: object, **__: object) -> None:
        raise KeyboardInterrupt("killed before the upload folder was removed")

    monkeypatch.setattr(fsmod.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        await store.complete_multipart("b", "out/s.zip", uid, parts)
    monkeypatch.undo()
    with pytest.raises(NoSuchUpload):
        await store.list_parts("b", "out/s.zip", uid)
    assert (tmp_path / "b" / "out" / "s.zip").read_bytes() == S1 + S2 + S3


async def test_a_part_written_while_an_abort_deletes_the_upload_is_no_such_upload(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen twice in full runs: an abort deleting the upload's folder file by file while a part was
    written, and the write failed with FileNotFoundError — its folder half-deleted, meta.json still
    there, so it could not tell "aborted" from a broken store. Here the deletion stops half-way (all
    but meta.json gone) while a part is written: the abort must have taken the folder away first."""
    store = FilesystemStore(tmp_path)
    uid = await store.create_multipart("b", "out/s.zip", None, STRIDE)
    await store.upload_part("b", "out/s.zip", uid, 1, os.urandom(STRIDE))
    real_rmtree = fsmod.shutil.rmtree
    racing: list[BaseException | str] = []

    def slow_rmtree(path: Path, ignore_errors: bool = False) -> None:
        for p in Path(path).iterdir():  # everything but meta.json first, as rmtree may
            if p.name != "meta.json":
                p.unlink()
        try:  # a part write lands now, while the deletion is half done
            asyncio.run(store.upload_part("b", "out/s.zip", uid, 2, os.urandom(STRIDE)))
            racing.append("written")
        except BaseException as e:  # noqa: BLE001 (what it raised is the assertion)
            racing.append(e)
        real_rmtree(path, ignore_errors)

    monkeypatch.setattr(fsmod.shutil, "rmtree", slow_rmtree)
    await store.abort_multipart("b", "out/s.zip", uid)
    assert len(racing) == 1 and isinstance(racing[0], NoSuchUpload), racing
    assert await store.list_uploads("b", "out/") == []


async def test_an_abort_cut_short_before_its_deletion_is_finished_by_the_next_abort(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An abort renames the upload's folder into ``.uploads/.aborting/`` and then deletes it; killed
    between the two, the folder stayed there for good — no listing shows it, nothing else deletes it.
    The next abort (the janitor's of an orphan, a cancel's) removes it, and leaves live uploads be."""
    store = FilesystemStore(tmp_path)
    cut = await store.create_multipart("b", "out/cut.zip", None, STRIDE)
    await store.upload_part("b", "out/cut.zip", cut, 1, os.urandom(STRIDE))
    with monkeypatch.context() as killed:  # the process dies after the rename, before the deletion
        killed.setattr(fsmod.shutil, "rmtree", lambda path, ignore_errors=False: None)
        await store.abort_multipart("b", "out/cut.zip", cut)
    trash = tmp_path / ".uploads" / ".aborting"
    assert [p.name.split("-")[1] for p in trash.iterdir()] == [cut]  # left behind, listed nowhere

    live = await store.create_multipart("b", "out/live.zip", None, STRIDE)
    data = os.urandom(STRIDE)
    etag = await store.upload_part("b", "out/live.zip", live, 1, data)
    plain = await store.create_multipart("b", "out/plain.zip")
    await store.upload_part("b", "out/plain.zip", plain, 1, b"plain part")
    orphan = await store.create_multipart("b", "out/orphan.zip")
    await store.abort_multipart("b", "out/orphan.zip", orphan)

    assert list(trash.iterdir()) == []
    assert sorted(u.upload_id for u in await store.list_uploads("b", "out/")) == sorted([live, plain])
    assert [p.etag for p in await store.list_parts("b", "out/live.zip", live)] == [etag]
    assert await store.complete_multipart("b", "out/live.zip", live, [CompletedPart(1, etag)])
    assert (tmp_path / "b" / "out" / "live.zip").read_bytes() == data
    assert len(await store.list_parts("b", "out/plain.zip", plain)) == 1
