"""The filesystem store completes an upload by growing part 1 into the object and renaming it; an
interrupted completion is undone (or, once the object is in place, counts as done)."""

from __future__ import annotations

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
