"""The filesystem store's ``get`` opens, checks the ETag, seeks and reads its first chunk in one hop
to a thread, and stops at a short read: a small object (a snapshot, a part record) costs one hop
instead of five. The bytes are the same for every range and every size around the chunk edges."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.objectstore import PreconditionFailed
from shared.objectstore import fs as fsmodule
from shared.objectstore.fs import FilesystemStore

CHUNK = 4096


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = asyncio.to_thread

    async def counted(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(fsmodule.asyncio, "to_thread", counted)
    return seen


async def read(store: FilesystemStore, key: str, **kwargs: Any) -> bytes:
    return b"".join([c async for c in store.get("b", key, chunk_size=CHUNK, **kwargs)])


async def test_a_small_object_is_read_in_one_hop(tmp_path: Path, hops: list[str]) -> None:
    store = FilesystemStore(tmp_path)
    data = os.urandom(700)
    etag = await store.put("b", "small.json", data)
    hops.clear()
    assert await read(store, "small.json", if_match=etag) == data
    assert len(hops) == 1
    hops.clear()
    assert await read(store, "small.json", start=100, end=300) == data[100:300]
    assert len(hops) == 1


async def test_a_larger_object_takes_one_hop_per_chunk_and_none_for_the_end(tmp_path: Path, hops: list[str]) -> None:
    store = FilesystemStore(tmp_path)
    data = os.urandom(2 * CHUNK + 10)
    await store.put("b", "big.bin", data)
    hops.clear()
    assert await read(store, "big.bin") == data
    assert len(hops) == 3


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
async def test_every_range_reads_the_same_bytes(tmp_path: Path, size: int) -> None:
    store = FilesystemStore(tmp_path)
    data = os.urandom(size)
    etag = await store.put("b", "o", data)
    assert await read(store, "o", if_match=etag) == data
    for start, end in [(0, size), (0, None), (1, None), (size, None), (0, CHUNK), (CHUNK - 1, CHUNK + 2),
                       (size // 2, size), (0, 0), (size + 5, None)]:
        assert await read(store, "o", start=start, end=end) == data[start:end]


async def test_a_wrong_etag_is_refused_before_any_byte(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    await store.put("b", "o", b"x" * 100)
    with pytest.raises(PreconditionFailed):
        await read(store, "o", if_match="not-the-etag")
