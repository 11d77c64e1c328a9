"""Encode ONE ZIP member, deterministically, and without its trailer: with stream-zip, except at
level 0, whose stored blocks are written here inside stream-zip's own framing (`framing.py`, held
byte for byte to stream-zip's output by a unit test) without stream-zip's copies of every byte, and
deflated members of less than one block, compressed whole and framed the same way. Deflated members
of one block or more are framed by stream-zip, their blocks compressed as runs of their own on
every core (`blocks.py`).

Why one member at a time: stream-zip keeps the running offset and the central directory private, so
it cannot resume mid-archive. Member bytes do not depend on their offset, so our code concatenates
members and writes the central directory itself (`central.py`); resuming means re-encoding the
straddling member and skipping bytes already uploaded. That only works if the same inputs always give
the same bytes, hence: fixed 1 MiB input blocks (zlib output must not depend on input chunking, and
each block is a deflate run of its own;
level 0 is our own stored-block writer, `stored.py`, chunking-independent by construction),
clamped UTC timestamps, a fixed mode, ZIP64 chosen from the snapshot's real size, and a fingerprint of
everything else that can change the bytes.

Errors: `SourceSizeMismatch` (ValueError) when the source yields a different number of bytes than
the snapshot declared; `trailer.TrailerFormatError` (ValueError) if stream-zip's output changes shape.
"""

from __future__ import annotations

import stat
import sys
import zlib
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import version

from shared.archive.blocks import BLOCK, SCHEME, BlockDeflate, compressor, shared_pool
from shared.archive.crc import crc32
from shared.archive.framing import Framing
from shared.archive.levels import STORE_LEVEL, TABLE_DIGEST
from shared.archive.levels import level_for as level_for  # re-exported: the level is part of a member
from shared.archive.stored import STORED_ID, stored_blocks, stored_size
from shared.archive.streamzip import ZIP_32, ZIP_64, stream_zip
from shared.archive.trailer import max_trailer_length, parse_trailer

FORMAT_VERSION = 1
# stream-zip re-chunks its output to this size; it does not change the bytes, only speed (measured:
# 256 KiB ran ~2x faster than 1 MiB, which trips the allocator's mmap path on every chunk).
OUTPUT_CHUNK = 256 * 1024
# stream-zip's ZIP_AUTO bound: above this, deflate output might not fit 32-bit sizes.
ZIP64_THRESHOLD = 4293656841
MODE = stat.S_IFREG | 0o644
EARLIEST = datetime(1980, 1, 1, tzinfo=UTC)
# ZIP's DOS time reaches 2107, but stream-zip packs the extended timestamp as a signed 32-bit int.
LATEST = datetime.fromtimestamp(2**31 - 1, UTC)


class SourceSizeMismatch(ValueError):
    """The source gave a different number of bytes than the snapshot declared; drop the member."""


@dataclass(frozen=True)
class EncodedMember:
    crc32: int
    compressed_size: int
    uncompressed_size: int
    length: int  # local header + data + data descriptor
    zip64: bool
    cd_template: bytes  # stream-zip's central-directory record for this member, offset 0


@dataclass(frozen=True)
class Deflated:
    """A member's deflate stream computed before the encoder reached it (:func:`deflate`), with the
    size and CRC-32 of the bytes it was computed from."""

    data: bytes
    size: int
    crc32: int


def deflate(data: bytes, level: int, pool: Executor | None = None) -> Deflated:
    """``data`` deflated exactly as :class:`MemberEncoder` deflates it (under one block one
    compressobj, from one block the same runs of :mod:`blocks`), for a member to be framed later
    with ``MemberEncoder(deflated=...)``. Runs in any thread but ``pool``'s; the runs in this thread
    without a pool (the bytes are the same): a thread compressing ahead is already the core the
    encoder leaves idle, and the pool's threads beside it and the encoder were three on two cores —
    the bench's text members took 0.13–0.14 s instead of 0.12 s."""
    c = compressor(level) if len(data) < BLOCK else BlockDeflate(level, len(data), pool)
    out = [c.compress(block) for block in reblock([data])]
    out.append(c.flush())
    return Deflated(b"".join(out), len(data), crc32(data))


class _Replay:
    """Stands in for the compressobj inside stream-zip when the deflate stream is already known:
    stream-zip still reads the source (its CRC-32 and size), frames the member and counts its
    bytes; the compressed bytes are the ones computed ahead, given at the end."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def compress(self, _block: bytes) -> bytes:
        return b""

    def flush(self) -> bytes:
        return self.data


def reblock(chunks: Iterable[bytes], size: int = BLOCK) -> Iterator[bytes]:
    """Re-chunk into blocks of exactly `size` bytes (the last may be shorter, never empty).

    Chunks are held by reference between yields, so they must not be mutated afterwards; any
    non-bytes buffer is copied once to make that true.
    """
    parts: list[bytes | memoryview] = []
    have = 0
    for chunk in chunks:
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        if not have and len(chunk) == size:
            yield chunk  # the common aligned case: no copy at all
            continue
        view = memoryview(chunk)
        while view:
            take = min(size - have, len(view))
            parts.append(view[:take])
            have += take
            view = view[take:]
            if have == size:
                yield b"".join(parts)
                parts.clear()
                have = 0
    if have:
        yield b"".join(parts)


def clamp_time(modified_at: datetime) -> datetime:
    """UTC, whole seconds, inside what the ZIP headers stream-zip writes can hold."""
    if modified_at.tzinfo is None or modified_at.utcoffset() is None:
        raise ValueError("modified_at must be timezone-aware (naive times depend on the host zone)")
    moment = modified_at.astimezone(UTC).replace(microsecond=0)
    return min(max(moment, EARLIEST), LATEST)


@cache
def _stream_zip_version() -> str:
    """Looked up once per process: ``importlib.metadata`` scans site-packages on every call."""
    return version("stream-zip")


def fingerprint(levels: Iterable[int] = (0, 6)) -> str:
    """Everything besides the inputs that can change member bytes; compared on resume."""
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return (
        f"gx{FORMAT_VERSION} py{py} zlib{zlib.ZLIB_RUNTIME_VERSION} stream-zip{_stream_zip_version()}"
        f" L{','.join(str(level) for level in levels)} B{BLOCK} {SCHEME} T{TABLE_DIGEST} {STORED_ID}"
    )


class MemberEncoder:
    """Iterate to get the member's bytes; afterwards `result` holds what the CD and manifest need.

    Single use. The trailer stream-zip appends is held back (~260 bytes plus the name), parsed, and
    never yielded. `result` is set just before the last chunk is yielded.

    The chunks are ``bytes`` or, at level 0, read-only ``memoryview`` s of the source's own chunks
    (valid as long as the caller keeps them: copy them before the next chunk if they must outlive it).
    """

    def __init__(self, name: str, modified_at: datetime, size: int, level: int,
                 chunks: Iterable[bytes], deflated: Deflated | None = None) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        if not 0 <= level <= 9:
            raise ValueError("level must be 0..9")
        if not name or name.endswith("/"):
            raise ValueError("a member name must be non-empty and not end with '/' (no directory entries)")
        # Upper bound of what stream-zip writes after the member; holding this much back is enough.
        self._hold = max_trailer_length(len(name.encode("utf-8")))  # also rejects lone surrogates
        self.name = name
        self.modified_at = clamp_time(modified_at)
        self.size = size
        self.level = level
        self.zip64 = size > ZIP64_THRESHOLD
        self._chunks = chunks
        # the deflate stream of these very bytes, computed ahead (:func:`deflate`): checked against
        # the CRC-32 and size of what the source gives here, or the member counts as changed
        self._deflated = deflated if level != STORE_LEVEL else None
        self._fed = 0
        self._started = False
        self._result: EncodedMember | None = None

    @property
    def result(self) -> EncodedMember:
        if self._result is None:
            raise RuntimeError("the member has not been fully encoded yet")
        return self._result

    def __iter__(self) -> Iterator[bytes | memoryview]:
        if self._started:
            raise RuntimeError("a MemberEncoder can be iterated only once")
        self._started = True
        if self.level == STORE_LEVEL:
            return self._stored()
        return self._small() if self.size < BLOCK else self._encode()

    def _stored(self) -> Iterator[bytes | memoryview]:
        """Level 0: stream-zip's framing around our stored blocks; each source chunk is CRC'd and
        passed on as views between block headers (no copy here: the part takes the one copy)."""
        framing = Framing(self.name.encode("utf-8"), self.modified_at, MODE, self.zip64)
        crc = 0

        def source() -> Iterator[bytes]:
            nonlocal crc
            for chunk in self._chunks:
                if not isinstance(chunk, bytes):
                    chunk = bytes(chunk)  # held by reference until its block is out: must not change
                self._fed += len(chunk)
                if self._fed > self.size:  # fail before passing on bytes the archive must not contain
                    raise SourceSizeMismatch(f"{self.name}: source longer than declared {self.size} bytes")
                crc = crc32(chunk, crc)
                yield chunk
            if self._fed != self.size:  # before the last block, which ends the member
                raise SourceSizeMismatch(f"{self.name}: source gave {self._fed} bytes, declared {self.size}")

        blocks: Generator[bytes | memoryview, None, None] = stored_blocks(source())
        header = framing.local_header()
        try:
            yield header
            yield from blocks
        finally:
            blocks.close()  # closing early (cancellation) closes the source at once
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        compressed = stored_size(self.size)
        descriptor = framing.descriptor(crc, compressed, self.size)
        self._result = EncodedMember(
            crc32=crc, compressed_size=compressed, uncompressed_size=self.size,
            length=len(header) + compressed + len(descriptor), zip64=self.zip64,
            cd_template=framing.cd_record(crc, compressed, self.size),
        )
        yield descriptor

    def _small(self) -> Iterator[bytes]:
        """A deflated member of less than one block (posts, pages, front matters: most members of
        most exports): compressed whole, then framed here as stream-zip frames it, in one chunk.
        stream-zip's setup for a member (its nested functions, generators and output re-chunking)
        cost ~20 µs of a ~65 µs post, 47 of them zlib's; the framing is :mod:`framing`'s, held to
        stream-zip's output for these members by the same unit tests as level 0's."""
        compress = compressor(self.level) if self._deflated is None else _Replay(self._deflated.data)
        crc, out = 0, []
        try:
            for block in self._counted():
                crc = crc32(block, crc)
                out.append(compress.compress(block))
        finally:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        if self._fed != self.size:
            raise SourceSizeMismatch(f"{self.name}: source gave {self._fed} bytes, declared {self.size}")
        ahead = self._deflated
        if ahead is not None and (ahead.size, ahead.crc32) != (self._fed, crc):
            raise SourceSizeMismatch(f"{self.name}: the source read differs from the bytes deflated ahead")
        out.append(compress.flush())
        data = b"".join(out)
        framing = Framing(self.name.encode("utf-8"), self.modified_at, MODE, self.zip64)
        header, descriptor = framing.local_header(), framing.descriptor(crc, len(data), self.size)
        self._result = EncodedMember(
            crc32=crc, compressed_size=len(data), uncompressed_size=self.size,
            length=len(header) + len(data) + len(descriptor), zip64=self.zip64,
            cd_template=framing.cd_record(crc, len(data), self.size),
        )
        yield header + data + descriptor

    def _counted(self) -> Iterator[bytes]:
        for block in reblock(self._chunks):
            self._fed += len(block)
            if self._fed > self.size:  # fail before feeding bytes the archive must not contain
                raise SourceSizeMismatch(f"{self.name}: source longer than declared {self.size} bytes")
            yield block

    def _encode(self) -> Iterator[bytes]:
        """A deflated member of one block or more: stream-zip frames it, its blocks are deflated as
        runs of their own on every core (:mod:`blocks`)."""
        level, size, ahead = self.level, self.size, self._deflated
        output = stream_zip(
            [(self.name, self.modified_at, MODE, ZIP_64 if self.zip64 else ZIP_32, self._counted())],
            chunk_size=OUTPUT_CHUNK,
            get_compressobj=(lambda: BlockDeflate(level, size, shared_pool())) if ahead is None
            else (lambda: _Replay(ahead.data)),
            extended_timestamps=True,
        )
        held: deque[bytes] = deque()
        held_bytes = emitted = 0
        try:  # closing early (cancellation) closes stream-zip and, through it, the source at once
            for chunk in output:
                held.append(chunk)
                held_bytes += len(chunk)
                while held_bytes - len(held[0]) >= self._hold:
                    first = held.popleft()
                    held_bytes -= len(first)
                    emitted += len(first)
                    yield first
        finally:
            getattr(output, "close", lambda: None)()  # typed Iterable, but it is a generator
        if self._fed != self.size:
            raise SourceSizeMismatch(f"{self.name}: source gave {self._fed} bytes, declared {self.size}")
        tail = b"".join(held)
        trailer = parse_trailer(tail, emitted, self.zip64)
        if trailer.uncompressed_size != self._fed:
            raise SourceSizeMismatch(f"{self.name}: zip recorded {trailer.uncompressed_size} bytes")
        if ahead is not None and (ahead.size, ahead.crc32) != (self._fed, trailer.crc32):
            raise SourceSizeMismatch(f"{self.name}: the source read differs from the bytes deflated ahead")
        self._result = EncodedMember(
            crc32=trailer.crc32,
            compressed_size=trailer.compressed_size,
            uncompressed_size=trailer.uncompressed_size,
            length=trailer.member_length,
            zip64=self.zip64,
            cd_template=trailer.cd_record,
        )
        if trailer.member_length > emitted:
            yield tail[: trailer.member_length - emitted]


def encode_member(name: str, modified_at: datetime, size: int, level: int,
                  chunks: Iterable[bytes]) -> tuple[bytes, EncodedMember]:
    """Whole member in memory: for small generated members (README, manifest) and tests."""
    encoder = MemberEncoder(name, modified_at, size, level, chunks)
    data = b"".join(encoder)
    return data, encoder.result
