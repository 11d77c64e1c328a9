"""The filesystem store lists a folder while other processes delete in it: a folder removed between
being seen and being entered is passed over, never a failed listing (an erase's, the janitor's)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from shared.objectstore.fs import FilesystemStore


@pytest.fixture
def vanishing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Folders named here are deleted just as a walk opens them (another export's clean-up)."""
    doomed: list[str] = []
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if not isinstance(path, int) and os.fspath(path).endswith(tuple(doomed)) and os.path.isdir(path):
            shutil.rmtree(path)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return doomed


async def test_listing_and_leftovers_pass_over_a_folder_deleted_while_walked(tmp_path: Path,
                                                                            vanishing: list[str]) -> None:
    store = FilesystemStore(tmp_path)
    await store.put("b", "exports/t1/exp_a/work/parts/00001.json", b"{}")
    await store.put("b", "exports/t1/exp_b/archive.zip", b"zip")
    vanishing.append("exp_a/work")
    keys = [o.key for o in await store.list_keys("b", "exports/t1/")]
    assert keys == ["exports/t1/exp_b/archive.zip"]
    assert not os.path.exists(tmp_path / "b/exports/t1/exp_a/work")  # it was deleted mid-walk
    await store.put("b", "exports/t1/exp_a/work/parts/00002.json", b"{}")
    assert await store.leftovers("b", "exports/t1/") == []
    await store.remove_leftovers("b", "exports/t1/")
