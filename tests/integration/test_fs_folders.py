"""The filesystem store leaves no empty folders behind: a key's folders go with its last object (S3
has no folders to leave), and a write into a folder being removed at that moment still lands."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from shared.objectstore import fs as fsmod
from shared.objectstore.fs import FilesystemStore

B = "exports"


async def test_deleting_a_folders_last_object_removes_the_folder_and_its_empty_parents(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    await store.put(B, "exports/t1/e1/work/parts/00001.json", b"[]")
    await store.put(B, "exports/t1/e1/archive.zip", b"zip")
    await store.put(B, "exports/t1/e2/archive.zip", b"zip")

    await store.delete_many(B, ["exports/t1/e1/work/parts/00001.json"])
    assert not (tmp_path / B / "exports/t1/e1/work").exists()
    assert (tmp_path / B / "exports/t1/e1/archive.zip").is_file()  # a folder with an object stays

    await store.delete(B, "exports/t1/e1/archive.zip")
    assert not (tmp_path / B / "exports/t1/e1").exists()
    assert (tmp_path / B / "exports/t1/e2").is_dir()

    await store.delete(B, "exports/t1/e2/archive.zip")
    assert list((tmp_path / B).iterdir()) == []  # the bucket's own folder stays
    await store.delete(B, "exports/t1/e2/archive.zip")  # deleting a key that is gone is no error


async def test_a_write_whose_folder_is_removed_just_before_it_writes_makes_it_again(tmp_path: Path) -> None:
    """The race driven deliberately: a delete prunes the folder right after the writer made it."""
    store = FilesystemStore(tmp_path)
    await store.put(B, "exports/t1/e1/other.json", b"{}")
    made = fsmod.Path.mkdir
    pruned = []

    def mkdir_then_pruned(self: Path, *args: object, **kw: object) -> None:
        made(self, *args, **kw)  # type: ignore[arg-type]
        if self == tmp_path / B / "exports/t1/e1" and not pruned:
            pruned.append(self)
            (self / "other.json").unlink()
            (self / ".other.json.etag").unlink(missing_ok=True)
            fsmod._prune(self, tmp_path / B)  # what a concurrent delete of the folder's last object does

    fsmod.Path.mkdir = mkdir_then_pruned  # type: ignore[method-assign]
    try:
        await store.put(B, "exports/t1/e1/new.json", b"new")
    finally:
        fsmod.Path.mkdir = made  # type: ignore[method-assign]
    assert pruned, "the folder was never pruned under the writer"
    assert (await store.read(B, "exports/t1/e1/new.json")) == b"new"


async def test_puts_and_deletes_in_one_folder_at_once_never_fail(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    stop = threading.Event()
    errors: list[BaseException] = []

    async def churn(name: str) -> int:
        n = 0
        while not stop.is_set():
            try:
                await store.put(B, f"exports/t1/e1/work/{name}", b"x")
                await store.delete(B, f"exports/t1/e1/work/{name}")
            except BaseException as e:  # noqa: BLE001 - any failure is the finding
                errors.append(e)
                return n
            n += 1
        return n

    tasks = [asyncio.create_task(churn(f"k{i}")) for i in range(4)]
    await asyncio.sleep(2)
    stop.set()
    counts = await asyncio.gather(*tasks)
    assert not errors, errors[:3]
    assert min(counts) > 10, counts
    assert not (tmp_path / B / "exports").exists()
