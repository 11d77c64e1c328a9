"""Deflate a member of more than one block on every core: each 1 MiB block is a deflate run of its
own, primed with the 32 KiB of input before it and ended with a sync flush (the last block with
``Z_FINISH``) — pigz's scheme. The runs are independent, so they compress at once on a pool of
threads (zlib releases the GIL while it compresses), and their concatenation is one ordinary raw
deflate stream any inflater reads: a sync flush ends on a byte boundary with an empty stored block,
and the next run's back-references reach into the 32 KiB it was primed with, which the inflater has
just written.

Why: a large deflated member (a big blog's ``feed.json``, a CSV, an SVG, an uncompressed TIFF or WAV)
was one compressobj on one thread, ~40 MB/s at level 6 — the whole export waited for it while the
other cores idled. Now it compresses at up to that rate times the cores.

The bytes depend only on the input, the level and the block size — not on the pool, its size, the
order the runs finish in, or how the source was chunked: the encoder feeds exactly ``BLOCK``-byte
blocks (``zipmember.reblock``), and output is handed back strictly in block order. A member of one
block is one run ended with ``Z_FINISH``: exactly the plain compressobj's bytes, as before. The
cost of the scheme: 5 bytes per block for the sync flush and the matches a run cannot find across
its start beyond the 32 KiB primer (well under 0.1 % on text). The scheme is part of the archive
format: ``SCHEME`` is in the encoder fingerprint, so a resume by an encoder that writes otherwise
restarts the straddling member instead of mixing two encodings in it.
"""

from __future__ import annotations

import zlib
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import cache

BLOCK = 1024 * 1024
PRIMER = 32 * 1024  # deflate's window: a run's matches reach this far back
SCHEME = f"P{PRIMER // 1024}K"


def compressor(level: int) -> zlib._Compress:
    """The compressobj every deflate run is written with: raw deflate, 32 KiB window."""
    return zlib.compressobj(level=level, wbits=-zlib.MAX_WBITS)


def deflate_run(block: bytes, primer: bytes, level: int, last: bool) -> bytes:
    """One block's run: primed with ``primer`` (the input just before it; empty for the first
    block), sync-flushed unless it is the member's last. Runs in any thread."""
    c = zlib.compressobj(level=level, wbits=-zlib.MAX_WBITS, zdict=primer) if primer else compressor(level)
    return c.compress(block) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


@cache
def shared_pool() -> Executor | None:
    """One pool per process, as many threads as this process may use cores (its affinity and its
    cgroup's CPU quota: a container held to 2 CPUs on a 64-core host gets 2, not 64 threads each
    holding runs); None on one core (the runs are then compressed in the caller's thread, the same
    bytes). Threads start as runs are submitted: an export without a large deflated member starts none."""
    from shared.runtime.cpus import usable_cpus

    cores = usable_cpus()
    return ThreadPoolExecutor(max_workers=cores, thread_name_prefix="deflate") if cores > 1 else None


def final_block(level: int) -> bytes:
    """The empty last block a stream needs when its declared last block never came (a source
    shorter than the snapshot said: the member is dropped, but what was written stays valid)."""
    return compressor(level).flush()


class BlockDeflate:
    """A compressobj stand-in (``compress`` per block, then ``flush``) for a member of ``size`` bytes,
    fed by stream-zip exactly ``BLOCK``-byte blocks. At most ``ahead`` runs are in the pool at once
    (each holds its block and its output): ``compress`` hands back the runs finished so far, in
    order, waiting for the oldest only when that many are out."""

    __slots__ = ("_ahead", "_finished", "_left", "_level", "_pending", "_pool", "_primer")

    def __init__(self, level: int, size: int, pool: Executor | None = None, ahead: int = 0) -> None:
        self._level, self._left, self._pool = level, size, pool
        self._ahead = ahead or ((getattr(pool, "_max_workers", 1) + 1) if pool is not None else 1)
        self._primer = b""
        self._pending: deque[Future[bytes]] = deque()
        self._finished = False

    def compress(self, block: bytes) -> bytes:
        self._left -= len(block)
        last = self._left <= 0
        primer, self._primer = self._primer, bytes(block[-PRIMER:])
        self._finished = last
        if self._pool is None:
            return deflate_run(block, primer, self._level, last)
        self._pending.append(self._pool.submit(deflate_run, block, primer, self._level, last))
        out = []
        while self._pending and (self._pending[0].done() or len(self._pending) > self._ahead):
            out.append(self._pending.popleft().result())
        return b"".join(out)

    def flush(self) -> bytes:
        out = [f.result() for f in self._pending]
        self._pending.clear()
        if not self._finished:
            out.append(final_block(self._level))
        return b"".join(out)
