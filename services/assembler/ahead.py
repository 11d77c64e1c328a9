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
compression (one compressobj under 1 MiB, from 1 MiB the block runs of :mod:`shared.archive.blocks`,
here one after another in this thread: the bytes do not depend on where the runs ran), and the encoder checks the size and CRC-32 of what it reads
itself against those of what was compressed here (a source that changed in between is a changed
member, as it is without this). Anything that goes wrong here (a read that fails, a stop) only
means the encoder deflates that member itself, as it does a member it reaches first. Memory: one
member read whole at a time, and at most ``HELD`` bytes of finished output waiting for the encoder.
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
TAIL = 2  # the layout puts index.json and feed.json last among the text members


def worth_it(m: SnapshotMember, maximum: int) -> bool:
    """Deflated, large enough to be worth a thread, and at most ``maximum`` bytes (read whole)."""
    return m.level != STORE_LEVEL and MINIMUM <= m.size <= maximum


def last_texts(members: Sequence[SnapshotMember], start: int, is_text: Callable[[SnapshotMember], bool],
               skips: Collection[int], maximum: int) -> list[SnapshotMember]:
    """The members worth compressing ahead among the last ``TAIL`` text members from ``start`` on.
    The text members are the snapshot's first (``layout.ORDER``: README, posts, pages, index.json,
    feed.json), so where they end is found by bisection: a handful of members parsed whatever the
    blog's size (a spilled snapshot parses a member on every access, and this runs on the loop)."""
    lo, hi = start, len(members)
    while lo < hi:
        mid = (lo + hi) // 2
        if is_text(members[mid]):
            lo = mid + 1
        else:
            hi = mid
    return [m for m in members[max(start, lo - TAIL):lo] if worth_it(m, maximum) and m.index not in skips]


class DeflateAhead:
    """Compresses ``members`` (in archive order) in a thread of its own; :meth:`take` gives the
    encoder a member's deflate stream, or None: deflate it yourself. ``read`` returns a member's
    bytes, or None when they cannot be had; ``finished`` is called once the thread is done with
    them (both in this object's thread)."""

    def __init__(self, members: Sequence[SnapshotMember], read: Callable[[SnapshotMember], bytes | None],
                 stop: threading.Event, finished: Callable[[], None] = lambda: None) -> None:
        self._members, self._read, self._stop, self._finished = members, read, stop, finished
        self._working: int | None = None  # the member being compressed
        self._done: dict[int, Deflated | None] = {}
        self._reached = -1  # the encoder's last member: nothing at or before it is started here
        self._held = 0
        self._cond = threading.Condition()
        self._closed = False
        self.taken = 0  # members the encoder took from here (tests, logs)
        self._thread = threading.Thread(target=self._run, name="deflate-ahead", daemon=True)
        self._thread.start()

    running = True  # a thread to join on close (the hashers' interface)

    def take(self, m: SnapshotMember) -> Deflated | None:
        """``m``'s deflate stream once ready; None if it is not compressed here, or not started yet
        (the encoder is first: it does it itself, and this thread skips it)."""
        with self._cond:
            self._reached = max(self._reached, m.index)
            while self._working == m.index and not self._closed and not self._stop.is_set():
                self._cond.wait(0.1)
            if self._closed or m.index not in self._done:
                return None
            deflated = self._done.pop(m.index)
            if deflated is not None:
                self._held -= len(deflated.data)
                self.taken += 1
            self._cond.notify_all()
            return deflated

    def close(self) -> None:
        """Stop after the member in hand; what was computed and not taken is dropped."""
        with self._cond:
            self._closed = True
            self._done.clear()
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        try:
            for m in self._members:
                with self._cond:
                    while self._held > HELD and not self._closed and not self._stop.is_set():
                        self._cond.wait(0.1)
                    if self._closed or self._stop.is_set():
                        return
                    if m.index <= self._reached:
                        continue  # the encoder got there first
                    self._working = m.index
                deflated = None
                try:
                    data = self._read(m)
                    if data is not None and len(data) == m.size:
                        deflated = deflate(data, m.level)
                except Exception:  # noqa: BLE001  (the encoder reads and reports the member itself)
                    log.debug("deflating %s ahead failed; the encoder does it", m.path, exc_info=True)
                with self._cond:
                    self._working = None
                    if self._closed:
                        return
                    self._done[m.index] = deflated
                    if deflated is not None:
                        self._held += len(deflated.data)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._working = None
                self._cond.notify_all()
            self._finished()
