"""Part buffers and part CRCs under concurrency: the pool is shared by every export's encoder
thread, and a part's CRC comes from another thread that may fail."""

from __future__ import annotations

import hashlib
import threading
import zlib

import pytest

from services.assembler.hashing import ThreadHasher
from services.assembler.uploader import BufferPool, PartCrc, PartUploader


class _SlowCheck(list):  # type: ignore[type-arg]
    """A free list whose emptiness check waits until both takers made it (or 0.5 s passed): without
    the pool's lock both pass the check with one buffer free, and the second pop finds none."""

    def __init__(self, items: list, barrier: threading.Barrier) -> None:  # type: ignore[type-arg]
        super().__init__(items)
        self.barrier = barrier

    def __bool__(self) -> bool:
        try:
            self.barrier.wait(timeout=0.5)
        except threading.BrokenBarrierError:
            pass
        return len(self) > 0


def test_two_encoder_threads_taking_the_last_free_buffer_both_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    last = bytearray(64)
    barrier = threading.Barrier(2)
    monkeypatch.setattr(BufferPool, "_free", {(64, False): _SlowCheck([(last, None)], barrier)})
    pool = BufferPool(64, keep=2)
    got: list[bytearray] = []
    errors: list[BaseException] = []

    def take() -> None:
        try:
            got.append(pool.take())
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert errors == []
    assert len(got) == 2 and sum(b is last for b in got) == 1  # one reused, one new
    assert barrier.broken  # the first taker waited alone: the second was held at the lock


class _Breaks:
    """An archive hash whose second update fails (as a hashing thread could)."""

    def __init__(self) -> None:
        self.h, self.calls = hashlib.sha256(), 0

    def update(self, data: bytes | memoryview) -> None:
        self.calls += 1
        if self.calls == 2:
            raise MemoryError("hash failed")
        self.h.update(data)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


class _Store:
    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, data: memoryview) -> str:
        return "etag"


async def test_a_part_whose_hash_failed_is_logged_with_its_real_crc(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.steps.test_step_decisions import UPLOAD

    monkeypatch.setattr(BufferPool, "_free", {})  # the upload gives its buffer back: not to the shared pool

    part = bytearray(b"x" * 3000 + b"y" * 3000)
    hasher = ThreadHasher()
    crc = PartCrc(_Breaks())  # type: ignore[arg-type]
    hasher.update_buffer(crc, memoryview(part)[:3000])
    read = hasher.update_buffer(crc, memoryview(part)[3000:])
    assert read.wait(5)
    assert crc.failed and crc.value == zlib.crc32(part[:3000])  # half the part's CRC: must not be logged
    uploader = PartUploader(None, _Store(), "b", UPLOAD, 1, 0, 1)  # type: ignore[arg-type]
    await uploader.slots.acquire()
    etag, value = await uploader._upload(1, part, len(part), read, crc)
    assert (etag, value) == ("etag", zlib.crc32(part))
    with pytest.raises(RuntimeError, match="hashing thread failed"):
        hasher.hexdigest(crc)  # and the step fails on the archive digest
    hasher.close()
