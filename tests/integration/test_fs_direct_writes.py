"""The filesystem store writes a part's whole pages with O_DIRECT from a page-aligned buffer, and
falls back to a plain write for anything else — the bytes on disk are the same either way."""

from __future__ import annotations

import fcntl
import mmap
import os
from pathlib import Path

import pytest

from shared.objectstore import fs as fsmod
from shared.objectstore.fs import FilesystemStore

PAGE = 4096


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """(bytes, O_DIRECT set) of every pwrite the store makes."""
    calls: list[tuple[int, bool]] = []
    real = os.pwrite

    def pwrite(fd: int, data: memoryview, at: int) -> int:
        n = real(fd, data, at)
        calls.append((n, bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)))
        return n

    monkeypatch.setattr(fsmod.os, "pwrite", pwrite)
    return calls


def _aligned(data: bytes) -> memoryview:
    buf = mmap.mmap(-1, len(data) + PAGE)  # room to spare, like a part buffer only partly filled
    buf[:len(data)] = data
    return memoryview(buf)[:len(data)]


async def test_whole_pages_of_an_aligned_part_go_direct_and_the_tail_does_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(3 * PAGE + 100)
    store = FilesystemStore(tmp_path)
    uid = await store.create_multipart("b", "k.zip")
    calls = _spy(monkeypatch)
    etag = await store.upload_part("b", "k.zip", uid, 1, _aligned(data))
    assert calls == [(3 * PAGE, True), (100, False)]
    [part] = await store.list_parts("b", "k.zip", uid)
    assert (part.etag, part.size) == (etag, len(data))
    await store.complete_multipart("b", "k.zip", uid, [fsmod.CompletedPart(1, etag)])
    assert (tmp_path / "b" / "k.zip").read_bytes() == data


async def test_an_unaligned_buffer_is_written_plainly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(2 * PAGE)
    view = _aligned(b"x" + data)[1:]  # whole pages long, but not starting on a page: the kernel refuses
    store = FilesystemStore(tmp_path)
    uid = await store.create_multipart("b", "k.zip")
    calls = _spy(monkeypatch)
    etag = await store.upload_part("b", "k.zip", uid, 1, view)
    assert calls == [(2 * PAGE, False)]  # EINVAL on the direct attempt (not counted), then plain
    await store.complete_multipart("b", "k.zip", uid, [fsmod.CompletedPart(1, etag)])
    assert (tmp_path / "b" / "k.zip").read_bytes() == data
