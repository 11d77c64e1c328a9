from __future__ import annotations

import hashlib
import threading
import time

import pytest

from services.assembler.hashing import HasherClosed, InlineHasher, ThreadHasher

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


def test_part_buffers_and_single_updates_keep_their_order() -> None:
    """The encoder hands member chunks singly and the archive's part buffers whole, interleaved."""
    for hasher in (ThreadHasher(limit=64 * 1024), InlineHasher()):
        try:
            h, member = hashlib.sha256(), hashlib.sha256()
            for i in range(0, len(CHUNKS), 7):
                hasher.update_buffer(h, memoryview(b"".join(CHUNKS[i:i + 5])))
                for chunk in CHUNKS[i + 5:i + 7]:
                    hasher.update(h, chunk)
                    hasher.update(member, chunk)
            assert hasher.hexdigest(h) == hashlib.sha256(b"".join(CHUNKS)).hexdigest()
            tail = b"".join(c for i in range(0, len(CHUNKS), 7) for c in CHUNKS[i + 5:i + 7])
            assert hasher.hexdigest(member) == hashlib.sha256(tail).hexdigest()
        finally:
            hasher.close()


def test_a_part_buffer_is_not_held_to_the_bound_and_its_event_says_when_it_was_read() -> None:
    hasher = ThreadHasher(limit=1000)
    slow = SlowHash()
    try:
        read = hasher.update_buffer(slow, memoryview(b"x" * 100_000))  # far over the bound: queued anyway
        queued = threading.Event()

        def more() -> None:
            read2 = hasher.update_buffer(slow, memoryview(b"y" * 5000))
            assert read2 is not None
            queued.set()

        producer = threading.Thread(target=more)
        producer.start()
        producer.join(5)
        assert queued.is_set() and not read.is_set()  # not blocked by the bound; not read yet
        slow.gate.set()
        assert read.wait(5)
        assert hasher.hexdigest(slow) == "105000"
    finally:
        slow.gate.set()
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


def test_a_hasher_never_fed_starts_no_thread() -> None:
    import hashlib
    import threading

    before = threading.active_count()
    hasher = ThreadHasher()
    h = hashlib.sha256(b"x")
    assert hasher.hexdigest(h) == hashlib.sha256(b"x").hexdigest()
    assert threading.active_count() == before  # an export of small files costs no thread
    hasher.close()


def test_a_hasher_starts_its_thread_on_first_use_only() -> None:
    """The assembler joins (a hop off the event loop) only a hasher that is running."""
    hasher = ThreadHasher()
    assert not hasher.running and not InlineHasher().running
    assert hasher.mark() is None  # nothing queued: no thread for it either
    assert not hasher.running
    h = hashlib.sha256()
    hasher.update(h, b"abc")
    assert hasher.running
    assert hasher.hexdigest(h) == hashlib.sha256(b"abc").hexdigest()
    hasher.close()
    assert hasher._thread is not None and not hasher._thread.is_alive()


def test_after_close_an_update_frees_its_buffer_and_raises_instead_of_queueing_behind_the_stop() -> None:
    """A stopped step closes its hashers while its encoder thread may still hash a part: that part
    buffer must come back (its event set), not wait 30 s in the pool for a thread that has gone."""
    for started in (False, True):
        hasher = ThreadHasher()
        h = hashlib.sha256()
        if started:
            hasher.update(h, b"x" * 5000)
        hasher.close()
        done = threading.Event()
        with pytest.raises(HasherClosed):
            hasher._put(h, memoryview(bytearray(4096)), 0, done)  # what update_buffer does
        assert done.is_set()
        with pytest.raises(HasherClosed):
            hasher.update(h, b"more")
        with pytest.raises(HasherClosed):
            hasher.mark()
        assert list(hasher._queue) in ([], [None])  # nothing queued behind the stop marker
