"""Large deflated members compressed ahead, on the core the text members leave idle.

Why: an export's text members come first (README, posts, pages, then index.json and feed.json) and
are encoded one at a time on the encoder thread, while the hashing threads, and with them the
second core, have nothing to do until the first image. Measured on the bench's export (1,000
posts, 200 images, filesystem store): those text members took 0.20 s of a 0.7 s stream, and
after them the stream ran at the required-work reference. The two JSON indexes are 3 MB of its
4.9 MB of text, ~80 ms of deflate at level 6. They are compressed here instead, in a thread of
this stream's own, while the encoder is still at the posts before them (zlib releases the GIL, so
both run at once); the encoder then has stream-zip frame the finished deflate stream.

The bytes are the same either way: :func:`shared.archive.zipmember.deflate` is the encoder's own
compressobj fed the same 1 MiB blocks, and the encoder checks the size and CRC-32 of what it reads
itself against those of what was compressed here (a source that changed in between is a changed
member, as it is without this). Anything that goes wrong here (a read that fails, a stop) only
means the encoder deflates that member itself. Memory: members of at most ``maximum`` bytes, one
at a time (the reader's window), and at most ``HELD`` bytes of finished output waiting for the
encoder.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence

from shared.archive.levels import STORE_LEVEL
from shared.archive.zipmember import Deflated, deflate
from shared.core.snapshot import SnapshotMember

log = logging.getLogger(__name__)

MINIMUM = 256 * 1024  # below this the hop to another thread costs more than it saves
HELD = 8 * 1024 * 1024  # finished output the encoder has not taken yet

_PENDING, _WORKING, _DONE, _CLAIMED = range(4)


def candidates(members: Sequence[SnapshotMember], start: int, skips: Collection[int],
               maximum: int) -> list[SnapshotMember]:
    """The members from ``start`` on that this compresses ahead: deflated, not skipped, large
    enough to be worth a thread and at most ``maximum`` bytes (read whole)."""
    return [m for m in members[start:]
            if m.level != STORE_LEVEL and MINIMUM <= m.size <= maximum and m.index not in skips]


class DeflateAhead:
    """Compresses ``members`` (in archive order) in a thread of its own; :meth:`take` gives the
    encoder a member's deflate stream, or None: deflate it yourself. ``read`` returns a member's
    bytes, or None when they cannot be had (called in this object's thread)."""

    def __init__(self, members: Sequence[SnapshotMember], read: Callable[[SnapshotMember], bytes | None],
                 stop: threading.Event) -> None:
        self._order = list(members)
        self._read = read
        self._stop = stop
        self._state = {m.index: _PENDING for m in self._order}
        self._done: dict[int, Deflated | None] = {}
        self._held = 0
        self._cond = threading.Condition()
        self._closed = False
        self.taken = 0  # members the encoder took from here (tests, logs)
        self._thread: threading.Thread | None = None
        if self._order:
            self._thread = threading.Thread(target=self._run, name="deflate-ahead", daemon=True)
            self._thread.start()

    def take(self, m: SnapshotMember) -> Deflated | None:
        """``m``'s deflate stream once ready; None if ``m`` is not compressed here, or not started
        yet (the encoder is first: it does it itself, and this skips it)."""
        with self._cond:
            state = self._state.get(m.index)
            if state is None or self._closed:
                return None
            if state == _PENDING:
                self._state[m.index] = _CLAIMED
                return None
            while self._state[m.index] == _WORKING and not self._closed and not self._stop.is_set():
                self._cond.wait(0.1)
            if self._state[m.index] != _DONE:
                return None
            del self._state[m.index]
            deflated = self._done.pop(m.index, None)
            if deflated is not None:
                self._held -= len(deflated.data)
                self.taken += 1
            self._cond.notify_all()
            return deflated

    @property
    def running(self) -> bool:
        """A thread was started (so :meth:`close` has one to join)."""
        return self._thread is not None

    def close(self) -> None:
        """Stop after the member in hand; what was computed and not taken is dropped."""
        with self._cond:
            self._closed = True
            self._done.clear()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        for m in self._order:
            with self._cond:
                while self._held > HELD and not self._closed and not self._stop.is_set():
                    self._cond.wait(0.1)
                if self._closed or self._stop.is_set():
                    return
                if self._state.get(m.index) != _PENDING:
                    continue  # the encoder got there first
                self._state[m.index] = _WORKING
            deflated = None
            try:
                data = self._read(m)
                if data is not None and len(data) == m.size:
                    deflated = deflate(data, m.level)
            except Exception:  # noqa: BLE001  (the encoder reads and reports the member itself)
                log.debug("deflating %s ahead failed; the encoder does it", m.path, exc_info=True)
            with self._cond:
                if self._closed:
                    return
                self._state[m.index] = _DONE
                self._done[m.index] = deflated
                if deflated is not None:
                    self._held += len(deflated.data)
                self._cond.notify_all()
