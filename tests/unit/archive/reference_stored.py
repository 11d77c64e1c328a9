"""The stored-deflate compressobj that wrote level-0 members through stream-zip (``S1``, until the
encoder wrote level-0 members itself): kept, unchanged, as the reference those members' bytes are
held to, so archives begun before the change resume into the same bytes."""

from __future__ import annotations

import struct

MAX_STORED = 65535
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
