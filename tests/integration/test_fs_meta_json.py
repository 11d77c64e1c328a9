"""An upload's ``meta.json`` is written whole or not at all: a write cut short (the process killed
mid-write, a full disk) leaves no half-written meta.json, and a damaged one (written by an older
version before a power loss) is no upload (NoSuchUpload, as the contract says of an unknown one),
never a JSON error from every reader. The other uploads are left as they were."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shared.objectstore import CompletedPart, NoSuchUpload
from shared.objectstore.fs import FilesystemStore

STRIDE = 16 * 4096
KEY = "out/a.zip"
ROOT = Path(__file__).resolve().parents[2]

# A child process whose files may not grow past 20 bytes: meta.json (some 80) is cut short mid-write,
# by the kernel. "kill": SIGXFSZ at its default ends the process there (a crash); "full": ignored, the
# write fails with EFBIG (a full disk) and the process lives on.
CHILD = """
import asyncio, resource, signal, sys
from pathlib import Path
from shared.objectstore.fs import FilesystemStore

store = FilesystemStore(Path(sys.argv[1]))
signal.signal(signal.SIGXFSZ, signal.SIG_DFL if sys.argv[2] == "kill" else signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_FSIZE, (20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    asyncio.run(store.create_multipart("b", "out/cut.zip", None, 65536))
except OSError as e:
    print(e.errno)
    sys.exit(3)
"""


def _create_cut_short(root: Path, how: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", CHILD, str(root), how], env=env, capture_output=True, text=True,
                          timeout=60)


async def _healthy(store: FilesystemStore) -> tuple[str, list[CompletedPart]]:
    uid = await store.create_multipart("b", KEY, None, STRIDE)
    data = os.urandom(STRIDE)
    return uid, [CompletedPart(1, await store.upload_part("b", KEY, uid, 1, data))]


def _folders(root: Path) -> list[Path]:
    return sorted(p for p in (root / ".uploads" / "b").iterdir())


async def test_a_process_killed_while_writing_meta_json_leaves_no_half_written_upload(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    uid, parts = await _healthy(store)
    child = _create_cut_short(tmp_path, "kill")
    assert child.returncode == -signal.SIGXFSZ, (child.returncode, child.stderr)  # killed mid-write
    # Seen: the killed create left a folder with no meta.json among the uploads — no upload to anyone,
    # its id never handed out, so nothing could abort it, and no run of the janitor ever removed it.
    assert _folders(tmp_path) == [tmp_path / ".uploads" / "b" / uid]
    [cut] = list((tmp_path / ".uploads" / ".creating").iterdir())  # out of sight, where it was being made
    meta = cut / "meta.json"
    if meta.exists():  # whole, or not there at all
        json.loads(meta.read_text())
    assert [u.upload_id for u in await store.list_uploads("b", "out/")] == [uid]
    await store.abort_multipart("b", "out/other.zip", "0" * 32)  # any abort: a young one may be a create under way
    assert cut.exists()
    os.utime(cut, (cut.stat().st_atime - 7200, cut.stat().st_mtime - 7200))  # two hours on
    await store.abort_multipart("b", "out/other.zip", "0" * 32)
    assert not cut.exists() and list((tmp_path / ".uploads" / ".creating").iterdir()) == []
    assert _folders(tmp_path) == [tmp_path / ".uploads" / "b" / uid]
    assert await store.list_parts("b", KEY, uid) != []  # the other upload is as it was, and completes
    await store.complete_multipart("b", KEY, uid, parts)
    assert (tmp_path / "b" / KEY).stat().st_size == STRIDE


async def test_a_meta_json_write_that_fails_leaves_no_upload_folder(tmp_path: Path) -> None:
    """A full disk (EFBIG here) fails the create: nothing of it is left behind, half written."""
    store = FilesystemStore(tmp_path)
    uid, _ = await _healthy(store)
    child = _create_cut_short(tmp_path, "full")
    assert child.returncode == 3 and child.stdout.strip() == str(27), (child.returncode, child.stdout, child.stderr)
    assert _folders(tmp_path) == [tmp_path / ".uploads" / "b" / uid]
    assert not [p for p in (tmp_path / ".uploads" / "b" / uid).iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damaged", [b"", b'{"key": "out/a.z', b"[]", b'{"initiated": 1}', b"\xff\xfe"],
                         ids=["empty", "cut short", "a list", "no key", "not UTF-8"])
async def test_a_damaged_meta_json_is_no_upload_for_every_reader(tmp_path: Path, damaged: bytes) -> None:
    """What a kill or a power loss left of meta.json written in place (before this wave): every
    reader failed on it with a JSON error (resume, complete, abort, the janitor's listing)."""
    store = FilesystemStore(tmp_path)
    uid, parts = await _healthy(store)
    other, _ = await _healthy(store)
    (tmp_path / ".uploads" / "b" / uid / "meta.json").write_bytes(damaged)
    for call in (store.list_parts("b", KEY, uid), store.upload_part("b", KEY, uid, 2, b"x"),
                 store.complete_multipart("b", KEY, uid, parts)):
        with pytest.raises(NoSuchUpload):
            await call
    assert [u.upload_id for u in await store.list_uploads("b", "out/")] == [other]
    await store.abort_multipart("b", KEY, uid)
    assert _folders(tmp_path) == [tmp_path / ".uploads" / "b" / other]


async def test_meta_json_is_written_beside_and_renamed_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written whole into a temp file beside it, then renamed into place: a process killed at any
    point leaves no meta.json or the whole one, never a short one."""
    seen: list[str] = []
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(f"{os.fspath(src)} -> {os.fspath(dst)}")
        assert json.loads(Path(src).read_text())["key"] == KEY  # whole before it is in place
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    uid = await FilesystemStore(tmp_path).create_multipart("b", KEY, None, STRIDE)
    folder = tmp_path / ".uploads" / "b" / uid
    staging = tmp_path / ".uploads" / ".creating" / f"b-{uid}"  # then renamed to ``folder``, meta.json and all
    [rename] = [r for r in seen if r.endswith(f"{staging}/meta.json")]
    assert Path(rename.split(" -> ")[0]).parent == staging
    assert json.loads((folder / "meta.json").read_text())["key"] == KEY
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json"]  # no temp file left
