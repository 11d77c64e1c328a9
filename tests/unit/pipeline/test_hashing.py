from __future__ import annotations

import hashlib
import threading
import time

import pytest

from services.assembler.hashing import InlineHasher, ThreadHasher

CHUNKS = [bytes([i]) * (4096 + i) for i in range(200)]


def test_the_thread_hasher_gives_the_digests_of_hashing_in_order() -> None:
    hasher = ThreadHasher(limit=64 * 1024)
    try:
        a, b = hashlib.sha256(), hashlib.sha256()
        for i, chunk in enumerate(CHUNKS):
            hasher.update(a, chunk)
            if i % 3 == 0:
                hasher.update(b, chunk)
        assert hasher.hexdigest(a) == hashlib.sha256(b"".join(CHUNKS)).hexdigest()
        assert hasher.hexdigest(b) == hashlib.sha256(b"".join(CHUNKS[::3])).hexdigest()
    finally:
        hasher.close()


def test_batched_and_single_updates_keep_their_order() -> None:
    """The pump hands small chunks as one batch and large ones singly, interleaved."""
    for hasher in (ThreadHasher(limit=64 * 1024), InlineHasher()):
        try:
            h = hashlib.sha256()
            for i in range(0, len(CHUNKS), 7):
                hasher.update_many(h, CHUNKS[i:i + 5])
                for chunk in CHUNKS[i + 5:i + 7]:
                    hasher.update(h, chunk)
            assert hasher.hexdigest(h) == hashlib.sha256(b"".join(CHUNKS)).hexdigest()
        finally:
            hasher.close()


class SlowHash:
    """Records how many bytes were queued (not yet hashed) whenever it runs."""

    def __init__(self) -> None:
        self.seen = 0
        self.gate = threading.Event()

    def update(self, data: bytes) -> None:
        self.gate.wait(5)
        self.seen += len(data)

    def hexdigest(self) -> str:
        return str(self.seen)


def test_update_blocks_while_more_than_the_limit_is_queued() -> None:
    hasher = ThreadHasher(limit=10_000)
    slow = SlowHash()
    done = threading.Event()

    def produce() -> None:
        for _ in range(10):
            hasher.update(slow, b"x" * 4000)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.3)
    assert not done.is_set()  # the hashing thread is held: the producer must be waiting
    slow.gate.set()
    producer.join(5)
    assert done.is_set()
    assert hasher.hexdigest(slow) == "40000"
    hasher.close()


def test_a_failing_hash_is_raised_to_the_caller_instead_of_hanging() -> None:
    class Broken:
        def update(self, data: bytes) -> None:
            raise ValueError("boom")

        def hexdigest(self) -> str:
            return ""

    hasher = ThreadHasher()
    hasher.update(Broken(), b"x")
    with pytest.raises(RuntimeError):
        hasher.hexdigest(Broken())
    hasher.close()


def test_the_inline_hasher_hashes_at_once() -> None:
    h = hashlib.sha256()
    InlineHasher().update(h, b"abc")
    assert InlineHasher().hexdigest(h) == hashlib.sha256(b"abc").hexdigest()
