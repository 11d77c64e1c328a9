"""Deflate "level 0" without zlib: raw deflate stored blocks (RFC 1951 §3.2.4), written directly.

Why: zlib's level-0 path runs its full deflate machinery (window copies, pending buffer) and measured
235–430 MB/s here — the most expensive per-byte step of an export — although a stored block is just
a 5-byte header and the bytes. This writer costs one copy per byte.

Determinism by construction: blocks are cut every ``MAX_STORED`` bytes of the *stream*, whatever the
chunking of the input (zlib's level 0 depends on it, which is why the encoder fed it fixed blocks);
the last block (possibly empty) carries BFINAL. The output is a valid raw deflate stream
(``wbits=-15``) that every inflater reads; its bytes differ from zlib's level 0, so the encoder
fingerprint names this writer (``STORED_ID``).

The object has the two methods stream-zip calls on a ``zlib.compressobj``: ``compress`` and ``flush``.
"""

from __future__ import annotations

import struct

MAX_STORED = 65535
STORED_ID = "S1"  # bump when the block layout changes: it is part of the encoder fingerprint
_HEADER = struct.Struct("<BHH")
_FULL = _HEADER.pack(0, MAX_STORED, MAX_STORED ^ 0xFFFF)


class StoredDeflate:
    """A compressobj-like writer of stored deflate blocks of ``MAX_STORED`` bytes (the last shorter)."""

    __slots__ = ("_done", "_have", "_pending")

    def __init__(self) -> None:
        self._pending: list[bytes | memoryview] = []  # fewer than MAX_STORED bytes, held for the next block
        self._have = 0
        self._done = False

    def compress(self, data: bytes) -> bytes:
        if self._done:
            raise ValueError("compress() after flush()")
        n = len(data)
        if self._have + n < MAX_STORED:
            if n:
                self._pending.append(bytes(data) if not isinstance(data, bytes) else data)
                self._have += n
            return b""
        view = memoryview(data)
        out: list[bytes | memoryview] = []
        pos = 0
        if self._have:  # complete the block begun by earlier calls
            take = MAX_STORED - self._have
            out.append(_FULL)
            out.extend(self._pending)
            out.append(view[:take])
            self._pending, self._have = [], 0
            pos = take
        while n - pos >= MAX_STORED:
            out.append(_FULL)
            out.append(view[pos:pos + MAX_STORED])
            pos += MAX_STORED
        if pos < n:
            # a copy: the caller may reuse its buffer; at most one block's worth per call
            self._pending.append(bytes(view[pos:]))
            self._have = n - pos
        return b"".join(out)

    def flush(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        header = _HEADER.pack(1, self._have, self._have ^ 0xFFFF)
        out = b"".join([header, *self._pending])
        self._pending, self._have = [], 0
        return out


def compressobj_for(level: int):  # type: ignore[no-untyped-def]  # zlib's Compress type is private
    """What stream-zip's ``get_compressobj`` returns for ``level``: stored blocks for 0, zlib otherwise."""
    import zlib

    if level == 0:
        return StoredDeflate()
    return zlib.compressobj(level=level, wbits=-zlib.MAX_WBITS)
