"""The consumers a stream's snapshot makes when nats-server restores it, read before it is sent.

A snapshot (``$JS.API.STREAM.SNAPSHOT``) is an S2 stream (klauspost/compress/s2, the snappy framing
format with S2's block extensions) holding one of nats-server's two archive formats; the server
restores the consumers it finds there, whatever they are, so restore reads them first:

* ``NATSARC1`` (nats-server 2.15 on, server/archive and server/stream_backup.go): ``state.json``
  (the stream state; ``consumer_count`` says how many follow), then that many ``consumers/<name>`` entries,
  each ``{"config": …, "state": …}``, then the messages. Only the start is read.
* a tar (before 2.15, ``fileStore.streamSnapshot``): ``meta.inf``, ``meta.sum``, ``msgs/…``, then
  ``obs/<name>/meta.inf`` (the consumer's config with ``name`` and ``created``), ``meta.sum`` and
  ``o.dat`` per consumer (nats-server 2.9 adds ``msgs/<n>.idx`` and ``.fss``). The whole tar is walked; the messages' S2 chunks are skipped undecoded.

Strict on purpose: whatever nats-server never writes (another tar entry type, a PAX record other
than the times, a name outside that layout, an entry twice) is :class:`NotASnapshot`, so that what
this reads is what the server restores. The chunks' CRCs are not checked: a wrong one makes the
server refuse the whole restore.

Errors::

    NotASnapshot   the file is not a snapshot as nats-server writes it: one line
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from shared.core import steps

MAX_BLOCK = 4 << 20  # s2's largest block; the server refuses larger
MAX_ENTRY_JSON = 1 << 20  # a consumer's config and state: a few KiB
# What may be decoded in all: state.json and the consumers (ten durables of a few KiB), or a tar's
# headers and meta.inf, and the chunk a skipped entry ends in (the messages are skipped undecoded):
# 64 MiB and 32 times the compressed bytes read (JSON compresses 5-20 times). A crafted snapshot made
# each 512-byte tar header the start of a 4 MiB block of a few bytes, or ended each entry 512 bytes
# into such a block (review rev3: 4,000 MiB to decode from a 1 MB file, none of it counted).
MAX_DECODED = 64 << 20
MAX_RATIO = 32
TAR_NAME = re.compile(r"meta\.(inf|sum)|msgs/([0-9]+\.(blk|idx|fss)|index\.db)|obs/([^/\x00]+)/(meta\.inf|meta\.sum|o\.dat)")


class NotASnapshot(Exception):
    pass


def _uvarint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    for n in range(10):
        if i + n >= len(data):
            raise NotASnapshot("a length runs past its end")
        b = data[i + n]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i + n + 1
        shift += 7
    raise NotASnapshot("a length of more than 64 bits")


def s2_block(src: bytes) -> bytes:
    """One S2 block decoded, as klauspost/compress/s2's ``s2Decode`` does (a snappy block is one too)."""
    size, s = _uvarint(src, 0)
    if size > MAX_BLOCK:
        raise NotASnapshot("a block over 4 MiB")
    dst, offset = bytearray(), 0
    while s < len(src):
        tag = src[s]
        if tag & 3 == 0:  # literal; its length in the tag, or in 1 to 4 bytes after it
            x = tag >> 2
            extra = x - 59 if x >= 60 else 0
            if extra:
                x = int.from_bytes(src[s + 1:s + 1 + extra], "little")
                if s + 1 + extra > len(src):
                    raise NotASnapshot("a literal runs past its block")
            s += 1 + extra
            length = x + 1
            if length > size - len(dst) or length > len(src) - s:
                raise NotASnapshot("a literal runs past its block")
            dst += src[s:s + length]
            s += length
            continue
        if tag & 3 == 1:  # copy, 11-bit offset; offset 0: S2's repeat of the last offset
            if s + 2 > len(src):
                raise NotASnapshot("a copy runs past its block")
            length, toffset, s = (tag >> 2) & 7, ((tag & 0xE0) << 3) | src[s + 1], s + 2
            if toffset:
                offset = toffset
            elif length >= 5:
                extra = length - 4
                if s + extra > len(src):
                    raise NotASnapshot("a repeat runs past its block")
                length = int.from_bytes(src[s:s + extra], "little") + (4, 1 << 8, 1 << 16)[extra - 1]
                s += extra
            length += 4
        else:  # copy, 16- or 32-bit offset
            width = 2 if tag & 3 == 2 else 4
            if s + 1 + width > len(src):
                raise NotASnapshot("a copy runs past its block")
            length, offset = 1 + (tag >> 2), int.from_bytes(src[s + 1:s + 1 + width], "little")
            s += 1 + width
        if offset <= 0 or offset > len(dst) or length > size - len(dst):
            raise NotASnapshot("a copy from outside its block")
        # An overlapping copy (offset < length) repeats the last ``offset`` bytes, as copying a byte at a
        # time does: built whole, not ``offset`` bytes a round (an offset-1 run of 4 MiB took seconds).
        piece = dst[len(dst) - offset:len(dst) - offset + min(length, offset)]
        dst += piece if length <= offset else (piece * -(-length // offset))[:length]
    if len(dst) != size:
        raise NotASnapshot("a block shorter than it says")
    return bytes(dst)


class _S2Reader:
    """An S2 stream's decoded bytes: ``read`` decodes, ``skip`` passes whole chunks undecoded."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.buf, self.at, self.started, self.decoded, self.consumed = f, b"", 0, False, 0, 0

    def _chunk(self) -> tuple[int, bytes, bool] | None:
        """The next data chunk: (decoded length, body without its CRC, compressed?); None at the end."""
        while True:
            head = self.f.read(4)
            if not head:
                return None
            if len(head) < 4:
                raise NotASnapshot("cut short in a chunk header")
            kind, size = head[0], int.from_bytes(head[1:], "little")
            body = self.f.read(size)
            self.consumed += 4 + len(body)
            if len(body) < size:
                raise NotASnapshot("cut short in a chunk")
            if not self.started and kind != 0xFF:
                raise NotASnapshot("no S2 stream identifier")
            if kind == 0xFF:
                if body not in (b"S2sTwO", b"sNaPpY"):
                    raise NotASnapshot("not an S2 stream")
                self.started = True
            elif kind in (0, 1):
                if size < 4:
                    raise NotASnapshot("a chunk without its checksum")
                n = _uvarint(body, 4)[0] if kind == 0 else size - 4
                if n > MAX_BLOCK:
                    raise NotASnapshot("a block over 4 MiB")
                return n, body[4:], kind == 0
            elif kind < 0x80:
                raise NotASnapshot(f"an unskippable chunk of type {kind:#x}")

    def read(self, k: int) -> bytes:
        """Up to ``k`` bytes (fewer at the end), gathered a chunk at a time: the buffer is one chunk,
        never rebuilt with what came before (1 MiB in 1-byte chunks was a copy of half a MiB a byte)."""
        out = [self.buf[self.at:self.at + k]]
        got = len(out[0])
        self.at += got
        while got < k and (chunk := self._chunk()) is not None:
            self.buf = self._decode(chunk)
            out.append(self.buf[:k - got])
            self.at = len(out[-1])
            got += self.at
        return b"".join(out)

    def skip(self, k: int) -> None:
        dropped = min(k, len(self.buf) - self.at)
        self.at, k = self.at + dropped, k - dropped
        while k > 0:
            chunk = self._chunk()
            if chunk is None:
                raise NotASnapshot("cut short in an entry")
            if chunk[0] <= k:
                k -= chunk[0]
            else:
                self.buf, self.at, k = self._decode(chunk), k, 0

    def _decode(self, chunk: tuple[int, bytes, bool]) -> bytes:
        if not chunk[2]:
            return chunk[1]
        self.decoded += chunk[0]
        if self.decoded > MAX_DECODED + MAX_RATIO * self.consumed:
            raise NotASnapshot(f"over {MAX_DECODED >> 20} MiB and {MAX_RATIO} times its size to decode for its "
                               "headers and consumers")
        return s2_block(chunk[1])


GO_KEY = re.compile(r"[a-z0-9_.]*")
GO_FIELDS = ("Created", "Name")  # a tar's obs/<name>/meta.inf: FileConsumerInfo's untagged fields


class _Object(dict[str, Any]):
    """A JSON object that remembers whether Go could read its keys otherwise than Python."""

    ambiguous = False


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    keys = [k for k, _ in pairs]
    obj.ambiguous = len(obj) < len(keys) or not all(GO_KEY.fullmatch(k) or k in GO_FIELDS for k in keys)
    return obj


def _json_entry(data: bytes, what: str, inner: str | None = None) -> dict[str, Any]:
    """Entry ``what``'s JSON object (its ``inner`` object when given), refused unless Go's encoding/json
    reads its keys as Python does: Go matches a key to a struct field whatever its case (and folds
    ``ſ`` to ``s``), the last match winning, so ``Deliver_Subject`` or a second ``Config`` would be read
    by the server and not here. nats-server writes each struct's keys once, in lower case (a tar's
    FileConsumerInfo adds ``Created`` and ``Name``); deeper maps (metadata, pending) Go reads as they are."""
    try:
        value = json.loads(data, object_pairs_hook=_object)
    except (ValueError, RecursionError):
        raise NotASnapshot(f"{what} is not JSON") from None
    if not isinstance(value, _Object):
        raise NotASnapshot(f"{what} is not a JSON object")
    if inner is not None:
        if not isinstance(value.get(inner), _Object):
            raise NotASnapshot(f"{what} has no {inner}")
        value = value[inner] if not value.ambiguous else value
    if value.ambiguous:
        raise NotASnapshot(f"{what}: JSON keys nats-server does not write ({', '.join(sorted(value))[:120]})")
    return dict(value)


ARCHIVE_MAGIC = b"NATSARC1"
ARCHIVE_SINCE = (2, 15)  # the nats-server that writes NATSARC1 snapshots, and the first that restores them


def is_archive(f: BinaryIO) -> bool:
    """Whether the snapshot ``f`` is a ``NATSARC1`` archive (nats-server 2.15 on) rather than a tar: a
    server before 2.15 restores tars only, refusing the other with "archive/tar: invalid tar header"."""
    return _S2Reader(f).read(len(ARCHIVE_MAGIC)) == ARCHIVE_MAGIC


def consumers(f: BinaryIO, check: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
    """The consumers the server would restore from the snapshot ``f``: name → config, as it reads them.
    ``check`` is given each as it is read, before the next (it raises to refuse it): a snapshot's first
    foreign consumer stops the reading there. More consumers than the step table has durables are
    refused (each is up to 1 MiB of JSON; state.json may count any number), after the first extra one
    is given to ``check``, which names it."""
    s2 = _S2Reader(f)
    magic = s2.read(8)
    found: dict[str, dict[str, Any]] = {}
    durables = len(steps.all_consumers())
    for name, config in _archive_consumers(s2) if magic == ARCHIVE_MAGIC else _tar_consumers(s2, magic):
        if check is not None:
            check(name, config)
        if len(found) == durables:
            raise NotASnapshot(f"more consumers than the {durables} durables the set-up makes")
        found[name] = config
    return found


def _archive_uvarint(s2: _S2Reader) -> int:
    value = shift = 0
    while shift < 64:
        b = s2.read(1)
        if not b:
            raise NotASnapshot("cut short in an entry header")
        value |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return value
        shift += 7
    raise NotASnapshot("an entry header field of more than 64 bits")


def _archive_entry(s2: _S2Reader) -> tuple[str, bytes]:
    name_len = _archive_uvarint(s2)
    for _ in range(2):  # timestamp (zigzag) and sequence: not needed
        _archive_uvarint(s2)
    size = _archive_uvarint(s2) + _archive_uvarint(s2)  # header + payload
    if name_len > 1 << 20 or size > MAX_ENTRY_JSON:
        raise NotASnapshot("a state or consumer entry over 1 MiB")
    name, data = s2.read(name_len), s2.read(size)
    if len(name) < name_len or len(data) < size:
        raise NotASnapshot("cut short in an entry")
    return name.decode("utf-8", "replace"), data


def _archive_consumers(s2: _S2Reader) -> Iterator[tuple[str, dict[str, Any]]]:
    name, data = _archive_entry(s2)
    if name != "state.json":
        raise NotASnapshot("its archive does not begin with state.json")
    count = _json_entry(data, "state.json").get("consumer_count", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise NotASnapshot("state.json's consumer_count is not a count")
    seen: set[str] = set()
    for _ in range(count):
        name, data = _archive_entry(s2)
        if not name.startswith("consumers/"):
            raise NotASnapshot(f"entry {name!r} where a consumer was due")
        if name in seen:  # the server would make the first, then meet the second: only one is read here
            raise NotASnapshot(f"{name[:80]!r} twice")
        seen.add(name)
        config = _json_entry(data, name, "config")
        yield name.removeprefix("consumers/"), config


def _octal(field: bytes, what: str) -> int:
    text = field.rstrip(b"\x00 ").lstrip(b" ")
    if not re.fullmatch(rb"[0-7]+", text):
        raise NotASnapshot(f"a tar header's {what} is not octal")
    return int(text, 8)


def _tar_consumers(s2: _S2Reader, start: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    seen: set[str] = set()
    pax = False
    pending = start
    while True:
        block = pending + s2.read(512 - len(pending))
        pending = b""
        if not block:
            return  # the end without the two zero blocks: Go's tar reader ends there too
        if len(block) < 512:
            raise NotASnapshot("cut short in a tar header")
        if block == bytes(512):
            if s2.read(512) not in (b"", bytes(512)):
                raise NotASnapshot("a tar header after a zero block")
            return
        if block[257:263] != b"ustar\x00" or block[345:500].strip(b"\x00"):
            raise NotASnapshot("a tar header nats-server does not write")
        if _octal(block[148:156], "checksum") != sum(block[:148]) + 256 + sum(block[156:]):
            raise NotASnapshot("a tar header with a wrong checksum")
        kind, size = block[156:157], _octal(block[124:136], "size")
        name = block[:100].split(b"\x00", 1)[0].decode("utf-8", "replace")
        padded = -(-size // 512) * 512
        if kind == b"x" and not pax:  # PAX: only the times, which Go writes for sub-second mtimes
            if size > 4096:  # refused before it is read: its size may say 8 GiB
                raise NotASnapshot("a PAX header nats-server does not write")
            records = s2.read(size)
            if len(records) < size:
                raise NotASnapshot("a PAX header nats-server does not write")
            for record in records.decode("utf-8", "replace").splitlines():
                if record.split(" ", 1)[-1].split("=", 1)[0] not in ("mtime", "atime", "ctime"):
                    raise NotASnapshot(f"a PAX record nats-server does not write: {record[:40]!r}")
            s2.skip(padded - size)
            pax = True
            continue
        pax = False
        match = TAR_NAME.fullmatch(name)
        if kind != b"0" or match is None or match[4] in (".", "..") or name in seen:
            raise NotASnapshot(f"a tar entry nats-server does not write: {name[:80]!r}")
        seen.add(name)
        if match[5] == "meta.inf":
            if size > MAX_ENTRY_JSON:
                raise NotASnapshot(f"{name} over 1 MiB")
            data = s2.read(size)
            if len(data) < size:
                raise NotASnapshot("cut short in an entry")
            s2.skip(padded - size)
            config = _json_entry(data, name)
            yield match[4], {k: v for k, v in config.items() if k not in GO_FIELDS}  # FileConsumerInfo's own
        else:
            s2.skip(padded)
