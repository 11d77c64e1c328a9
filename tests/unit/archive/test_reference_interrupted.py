"""``grove-export assemble --out FILE`` cut short by Ctrl-C stops, and writes nothing at FILE.

Seen: after Ctrl-C (asyncio.run cancels the command's task) the writing thread went on to the end
— the command did not exit until the whole archive was written, then put it at FILE (over whatever
was there) and said "interrupted; assemble did not finish", exit 130. Reading from S3 it never
exited: the thread waited for the event loop, which had closed. Found by sending SIGINT to it
mid-way. Here the encoder is a slow stand-in; what is checked is the thread and the files."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.archivetools import reference


class _Store:
    async def read(self, bucket: str, key: str) -> bytes:
        return b""

    def get_blocking(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        return iter(())


class _Snapshot:
    members = ()


def _slow(snapshot: Any, opener: Any, point: Any) -> Iterator[bytes]:
    for _ in range(400):  # 8 s in all
        time.sleep(0.02)
        yield b"x" * 1000


def _writing() -> bool:
    return any(t.name.startswith("reference") and t.is_alive() for t in threading.enumerate())


async def test_an_interrupted_assemble_stops_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference, "Snapshot", type("S", (), {"loads": staticmethod(lambda data: _Snapshot())}))
    monkeypatch.setattr(reference, "ArchiveStream", _slow)
    out = tmp_path / "ref.zip"
    task = asyncio.create_task(reference.assemble_to_file(_Store(), "exports", "k", out))  # type: ignore[arg-type]
    await asyncio.sleep(0.5)
    assert (tmp_path / "ref.zip.part").exists()  # under way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for thread in [t for t in threading.enumerate() if t.name.startswith("reference")]:
        await asyncio.to_thread(thread.join, 2)
    assert not _writing(), "the writing thread went on after the command was interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == []
