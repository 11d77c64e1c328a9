"""The catalog's rendered bytes, kept off the heap: a :class:`Spool` holds what is written to it in
memory up to ``in_memory`` bytes, then in an unlinked temporary file in the system temp folder (gone
when it is closed or the process dies: a crash leaves nothing behind).

Why: the catalog held every rendered post, then index.json and feed.json (each feed item with a copy
of its body), then all of them joined into the texts object — about 11 KB of memory per post of
1 KB, 1.1 GB for 100,000 posts. Written here as they are rendered, only their byte ranges stay.
A small export (every export of a few thousand posts) never touches the disk.

:func:`store_spool` stores one: a single PUT from memory, or a multipart upload read from the file
one part at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

from shared.objectstore import CompletedPart, ObjectStore

MiB = 1024 * 1024
IN_MEMORY = 8 * MiB  # the texts object up to this size is one PUT from memory, as before
LIST_IN_MEMORY = 1 * MiB  # each list of index.json and feed.json (read once, into the texts)
CHUNK = 1 * MiB


class Spool:
    """Bytes appended in order; read back by range. Written by one thread at a time."""

    def __init__(self, in_memory: int | None = None) -> None:
        self.in_memory = IN_MEMORY if in_memory is None else in_memory
        self.size = 0
        self._memory: io.BytesIO | None = io.BytesIO()
        self._file: BinaryIO | None = None

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def write(self, data: bytes, /) -> int:
        """Append ``data``; returns where it begins."""
        start = self.size
        if self._memory is not None and start + len(data) > self.in_memory:
            file = tempfile.TemporaryFile(prefix="grove-catalog-")  # noqa: SIM115 (held until close)
            file.write(self._memory.getbuffer())
            self._file, self._memory = file, None
        if self._memory is not None:
            self._memory.write(data)
        elif self._file is not None:
            self._file.write(data)
        else:
            raise ValueError("the spool is closed")
        self.size += len(data)
        return start

    def read(self, start: int, size: int) -> bytes:
        """Bytes ``[start, start + size)`` of what was written."""
        if start < 0 or size < 0 or start + size > self.size:
            raise ValueError(f"bytes {start}+{size} are not in a spool of {self.size}")
        if self._memory is not None:
            with self._memory.getbuffer() as view:
                return bytes(view[start:start + size])
        if self._file is None:
            raise ValueError("the spool is closed")
        self._file.flush()
        pieces, fd = [], self._file.fileno()
        while size:
            piece = os.pread(fd, size, start)
            if not piece:
                raise OSError(f"the spool's temporary file ends before byte {start}")
            pieces.append(piece)
            start, size = start + len(piece), size - len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def chunks(self) -> Iterator[bytes]:
        """Everything written, in pieces of at most :data:`CHUNK` bytes."""
        for start in range(0, self.size, CHUNK):
            yield self.read(start, min(CHUNK, self.size - start))

    def getvalue(self) -> bytes:
        """Everything written, at once: only while it is in memory (the disk's is read by range)."""
        if self._memory is None:
            raise ValueError("the spool is on disk: read it by range")
        return self._memory.getvalue()

    def close(self) -> None:
        """Release the memory or the temporary file (idempotent); the spool cannot be used after."""
        memory, file, self._memory, self._file = self._memory, self._file, None, None
        if memory is not None:
            memory.close()
        if file is not None:
            file.close()


MAX_PARTS = 9000  # as the assembler's: 10% headroom under S3's 10,000


async def store_spool(store: ObjectStore, bucket: str, key: str, spool: Spool, content_type: str,
                      min_part: int, moved: Callable[[], None] = lambda: None) -> str:
    """Store everything written to ``spool`` at ``key``; returns the object's ETag.

    In memory (up to :data:`IN_MEMORY`): one PUT, as the texts object always was. On disk: a
    multipart upload, its parts (``max(min_part, ceil(size / 9000))`` bytes but the last) read from
    the file one at a time, ``moved`` after each. The same bytes give the same parts, so the same
    ETag: a rerun after a crash writes the same snapshot. An upload that fails is aborted here; one
    a crash leaves open is aborted by the janitor once the export has ended (and by the bucket's
    lifecycle rule after 2 days)."""
    if not spool.on_disk:
        return await store.put(bucket, key, spool.getvalue(), content_type)
    size = max(min_part, math.ceil(spool.size / MAX_PARTS))
    upload_id = await store.create_multipart(bucket, key, content_type, size)
    try:
        parts = []
        for number, start in enumerate(range(0, spool.size, size), start=1):
            data = await asyncio.to_thread(spool.read, start, min(size, spool.size - start))
            parts.append(CompletedPart(number, await store.upload_part(bucket, key, upload_id, number, data)))
            del data
            moved()
        return await store.complete_multipart(bucket, key, upload_id, parts)
    except BaseException:
        with contextlib.suppress(Exception):  # the error that ended the upload is the one to report
            await store.abort_multipart(bucket, key, upload_id)
        raise
