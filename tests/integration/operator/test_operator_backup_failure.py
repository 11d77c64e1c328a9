"""``grove-export backup DIR`` that fails part-way (the server stops answering one stream's snapshot,
the disk fills) leaves no half-written backup behind. Seen: the first stream's files stayed in DIR
without a manifest, and running the same command again was refused ("DIR is not empty and holds no
backup") until the operator found and removed them by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.operator import backup as bk
from shared.bus.connect import Bus
from shared.runtime.settings import Settings


@pytest.mark.parametrize("existing", [False, True], ids=["a new folder", "an empty folder"])
async def test_a_backup_that_fails_part_way_leaves_nothing_behind(
        bus: Bus, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool) -> None:
    real, calls = bk.snapshot, []

    async def failing(nc: Any, stream: str, out: Path) -> bk.Saved:
        calls.append(stream)
        if len(calls) == 2:  # the second stream: part of its snapshot written, then the server goes away
            (out / f"{stream}.tar.s2").write_bytes(b"half")
            raise bk.BackupError(f"snapshot of {stream}: timed out")
        return await real(nc, stream, out)

    out = tmp_path / "backup"
    if existing:
        out.mkdir()
    monkeypatch.setattr(bk, "snapshot", failing)
    with pytest.raises(bk.BackupError, match="timed out"):
        await bk.backup(bus.nc, settings, out)
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else None) == ([] if existing else None)

    monkeypatch.setattr(bk, "snapshot", real)  # and the same command runs again
    saved = await bk.backup(bus.nc, settings, out)
    assert [s.stream for s in saved] == bk.streams(settings)
    assert (out / "manifest.json").is_file()


async def test_the_manifest_goes_in_last_whole_after_every_file_is_on_disk(
        bus: Bus, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A power cut after "backup in …" must not leave a manifest naming files the disk never got: each
    stream's files are fsynced, then the manifest is written under another name, fsynced, renamed into
    place, and the folder's entry fsynced."""
    out = tmp_path / "backup"
    synced: list[str] = []
    real_fsync, real_replace = bk.os.fsync, bk.os.replace

    def fsync(fd: int) -> None:
        synced.append(Path(bk.os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        synced.append(f"rename {Path(src).name} -> {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(bk.os, "fsync", fsync)
    monkeypatch.setattr(bk.os, "replace", replace)
    saved = await bk.backup(bus.nc, settings, out)
    files = [name for s in saved for name in (s.file, f"{s.stream}.json")]
    # the folder the backup made, then its parent (the folder's own entry)
    assert synced == [*files, bk.MANIFEST_TMP, f"rename {bk.MANIFEST_TMP} -> manifest.json", "backup", tmp_path.name]
    assert sorted(p.name for p in out.iterdir()) == sorted([*files, "manifest.json"])


async def test_a_parent_folder_that_cannot_be_opened_does_not_cost_a_whole_backup(
        bus: Bus, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent's entry of a folder the backup made is fsynced best effort: a parent this user may
    write but not read (``-wx``; root reads anything, so the refusal is made here) cannot be opened,
    and failing there, after the manifest was in place, had the clean-up delete a complete backup."""
    out = tmp_path / "backup"
    real_open = bk.os.open

    def refusing(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path) == tmp_path and flags & bk.os.O_DIRECTORY:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(bk.os, "open", refusing)
    saved = await bk.backup(bus.nc, settings, out)
    monkeypatch.undo()
    assert (out / "manifest.json").is_file()
    assert bk.check_backup(out, settings) and len(saved) == len(bk.streams(settings))
