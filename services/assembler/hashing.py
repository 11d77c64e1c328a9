"""SHA-256 on a second core: the encoder thread queues bytes, a hashing thread digests them.

Why: per byte, an export must CRC (the ZIP), copy (the part) and SHA-256 twice (each member for
manifest.json, the whole archive for ArchiveAssembled). The two SHA-256s are the largest share, and
``hashlib`` releases the GIL on buffers over 2 KiB, so a second thread runs them truly in parallel
while the encoder thread does the rest.

Order is kept per hash object (one FIFO); ``hexdigest`` waits until every queued update of that
object is done. Memory is bounded: ``update`` blocks while more than ``limit`` bytes are queued.
Queued buffers must not change afterwards (the encoder hands immutable ``bytes``; a part buffer is
reused only after the event ``update_buffer`` returns is set).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

Buffer = bytes | memoryview


class HasherClosed(RuntimeError):
    """An update or a digest asked of a hasher after :meth:`ThreadHasher.close` (a step that was
    stopped while its encoder thread still ran): nothing more is hashed."""


class _Hash(Protocol):
    def update(self, data: Buffer, /) -> None: ...
    def hexdigest(self) -> str: ...


class InlineHasher:
    """The same interface, hashing at once in the caller's thread (tools, tests)."""

    def update(self, h: _Hash, data: bytes) -> None:
        h.update(data)

    def update_buffer(self, h: _Hash, data: memoryview) -> threading.Event | None:
        h.update(data)
        return None

    def mark(self) -> threading.Event | None:
        return None  # every update is already done

    def hexdigest(self, h: _Hash, upto: threading.Event | None = None) -> str:
        return h.hexdigest()

    def close(self) -> None:
        return None

    @property
    def running(self) -> bool:
        return False


class ThreadHasher:
    def __init__(self, limit: int = 2 << 20) -> None:  # member chunks only: part buffers are not counted
        self._queue: deque[tuple[_Hash, Buffer, int, threading.Event | None] | threading.Event | None] = deque()
        self._queued = 0
        self._limit = limit
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None  # started by the first update: an export of
        # small files never hashes here, and a thread per export is not free in a burst of thousands
        self._closed = False

    def _start(self) -> None:  # under self._cond
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
            self._thread.start()

    def update(self, h: _Hash, data: bytes) -> None:
        self._put(h, data, len(data))

    def update_buffer(self, h: _Hash, data: memoryview) -> threading.Event:
        """``update`` with a buffer the caller already holds (a part buffer): not counted against
        the queue's bound (it adds no memory), and the caller must not change it until the
        returned event is set."""
        done = threading.Event()
        self._put(h, data, 0, done)
        return done

    def _put(self, h: _Hash, data: Buffer, size: int, done: threading.Event | None = None) -> None:
        with self._cond:
            while size and self._queued > self._limit and self._error is None and not self._closed:
                self._cond.wait()
            if self._closed:  # never queued behind the stop marker, where no thread would read it
                if done is not None:
                    done.set()  # the caller's buffer is free again
                raise HasherClosed("the hasher was closed")
            self._raise()
            self._start()
            self._queue.append((h, data, size, done))
            self._queued += size
            self._cond.notify_all()

    def mark(self) -> threading.Event | None:
        """An event set once every update queued so far is done (None: nothing was ever queued)."""
        with self._cond:
            if self._closed:
                raise HasherClosed("the hasher was closed")
            self._raise()
            if self._thread is None:
                return None
            done = threading.Event()
            self._queue.append(done)
            self._cond.notify_all()
        return done

    def hexdigest(self, h: _Hash, upto: threading.Event | None = None) -> str:
        """The digest once the queue is drained up to now — or up to ``upto``, a :meth:`mark` taken
        after ``h``'s last update (read in the caller's thread)."""
        done = upto or self.mark()
        if done is not None:
            done.wait()
        self._raise()
        return h.hexdigest()

    @property
    def running(self) -> bool:
        """A hashing thread was started (so :meth:`close` has one to join)."""
        return self._thread is not None

    def close(self) -> None:
        """Stop the thread after what is queued; later updates and marks raise :class:`HasherClosed`."""
        with self._cond:
            thread = self._thread
            self._closed = True
            self._queue.append(None)
            self._cond.notify_all()
        if thread is not None:
            thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise RuntimeError("the hashing thread failed") from self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                item = self._queue.popleft()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            h, data, size, done = item
            try:
                h.update(data)  # outside the lock, GIL released by hashlib: the parallel part
            except BaseException as e:  # never leave a waiter hanging
                self._error = e
            if done is not None:
                done.set()
            with self._cond:
                self._queued -= size
                self._cond.notify_all()


Hasher = InlineHasher | ThreadHasher
