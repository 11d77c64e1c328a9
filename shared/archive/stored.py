"""Deflate "level 0" without zlib: raw deflate stored blocks (RFC 1951 §3.2.4), written directly.

Why: zlib's level-0 path runs its full deflate machinery (window copies, pending buffer) and measured
235–430 MB/s here — the most expensive per-byte step of an export — although a stored block is just
a 5-byte header and the bytes. Here the blocks are the source's own bytes between headers: views of
the input, not copies (the one copy of each byte is into the part).

Determinism by construction: blocks are cut every ``MAX_STORED`` bytes of the *stream*, whatever the
chunking of the input; the last block (possibly empty) carries BFINAL. The output is a valid raw
deflate stream (``wbits=-15``) that every inflater reads; its bytes differ from zlib's level 0, so the
encoder fingerprint names this layout (``STORED_ID``). Archives written since ``S1`` hold exactly
these bytes (a unit test holds them to the compressobj that wrote them through stream-zip before).
"""

from __future__ import annotations

import struct
from collections.abc import Generator, Iterable

MAX_STORED = 65535
STORED_ID = "S1"  # bump when the block layout changes: it is part of the encoder fingerprint
_HEADER = struct.Struct("<BHH")
_FULL = _HEADER.pack(0, MAX_STORED, MAX_STORED ^ 0xFFFF)


def stored_size(size: int) -> int:
    """Bytes of the stored-block stream of ``size`` input bytes: a header per full block, and one
    for the last block (empty when ``size`` is a multiple of ``MAX_STORED``)."""
    return size + _HEADER.size * (size // MAX_STORED + 1)


def stored_blocks(chunks: Iterable[bytes]) -> Generator[bytes | memoryview, None, None]:
    """The stored-block stream of ``chunks`` as pieces: each block's 5-byte header, then views of
    the input's bytes. The views are read after this generator moves on (by whoever consumes the
    pieces), so the chunks must be immutable (``bytes``)."""
    held: list[memoryview] = []  # the open block's bytes so far: fewer than MAX_STORED
    have = 0
    for chunk in chunks:
        view = memoryview(chunk)
        n, pos = len(view), 0
        if have:
            if have + n < MAX_STORED:
                if n:
                    held.append(view)
                    have += n
                continue
            pos = MAX_STORED - have  # complete the block begun by earlier chunks
            yield _FULL
            yield from held
            yield view[:pos]
            held, have = [], 0
        while n - pos >= MAX_STORED:
            yield _FULL
            yield view[pos:pos + MAX_STORED]
            pos += MAX_STORED
        if pos < n:
            held.append(view[pos:])
            have = n - pos
    yield _HEADER.pack(1, have, have ^ 0xFFFF)
    yield from held
