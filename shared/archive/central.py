"""Our central directory: stream-zip's per-member CD templates, re-based to real offsets.

Members are encoded alone (`zipmember.py`), so every CD template says "local header at offset 0".
An archive is concat(member bytes) + central_directory(entries with their real offsets). The only
field that changes is the local-header offset, and where it lives depends on size:

* ZIP_64 templates keep the offset in their zip64 extra (the 32-bit field is 0xFFFFFFFF);
* ZIP_32 templates keep it in the 32-bit field, unless the offset is >= 0xFFFFFFFF: then the field
  becomes 0xFFFFFFFF and a zip64 extra carrying ONLY the offset is added (APPNOTE 4.5.3: only fields
  set to 0xFFFFFFFF appear in it), and "version needed" becomes 4.5.

The zip64 EOCD record and locator are written when the entry count, CD size or CD offset do not fit
the classic EOCD; a count of exactly 0xFFFF counts as not fitting, because readers take 0xFFFF as
"look in zip64".
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from shared.archive.trailer import (
    CD_HEADER,
    CD_SIG,
    EOCD,
    EOCD_SIG,
    MAX32,
    ZIP64_EOCD,
    ZIP64_EOCD_SIG,
    ZIP64_LOCATOR,
    ZIP64_LOCATOR_SIG,
)

ZIP64_EXTRA_ID = 0x0001
ZIP64_VERSION = 45
_EXTRA_HEADER = struct.Struct("<HH")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_OFFSET_FIELD = 42  # position of "relative offset of local header" in a CD record
_MADE_BY, _NEEDED, _EXTRA_LENGTH = 4, 6, 30


@dataclass(frozen=True, slots=True)
class CDEntry:
    cd_template: bytes  # EncodedMember.cd_template
    offset: int  # where the member's local header starts in the archive


def patch_offset(template: bytes, offset: int) -> bytes:
    """The CD record `template` with its local-header offset set to `offset`."""
    if offset < 0 or offset > 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"offset out of range: {offset}")
    if template[:4] != CD_SIG:
        raise ValueError("not a central-directory record")
    fields = CD_HEADER.unpack_from(template)
    usize, csize, name_len, extra_len, field = fields[10], fields[9], fields[11], fields[12], fields[17]
    extra_at = CD_HEADER.size + name_len
    zip64_at = _find_zip64_extra(template, extra_at, extra_at + extra_len)
    if field == MAX32:
        if zip64_at is None:
            raise ValueError("offset is 0xFFFFFFFF but the record has no zip64 extra")
        slot = zip64_at + 4 + 8 * ((usize == MAX32) + (csize == MAX32))
        if slot + 8 > zip64_at + 4 + _EXTRA_HEADER.unpack_from(template, zip64_at)[1]:
            raise ValueError("zip64 extra has no offset field")
        return template[:slot] + _U64.pack(offset) + template[slot + 8:]
    if offset < MAX32:
        return template[:_OFFSET_FIELD] + _U32.pack(offset) + template[_OFFSET_FIELD + 4:]
    if zip64_at is not None:
        raise ValueError("unsupported template: 32-bit offset next to an existing zip64 extra")
    record = bytearray(template)
    record[_OFFSET_FIELD:_OFFSET_FIELD + 4] = _U32.pack(MAX32)
    struct.pack_into("<H", record, _EXTRA_LENGTH, extra_len + 12)
    record[_MADE_BY] = max(record[_MADE_BY], ZIP64_VERSION)
    struct.pack_into("<H", record, _NEEDED, max(fields[3], ZIP64_VERSION))
    record[extra_at:extra_at] = _EXTRA_HEADER.pack(ZIP64_EXTRA_ID, 8) + _U64.pack(offset)
    return bytes(record)


def _find_zip64_extra(record: bytes, start: int, end: int) -> int | None:
    at = start
    while at + 4 <= end:
        extra_id, size = _EXTRA_HEADER.unpack_from(record, at)
        if extra_id == ZIP64_EXTRA_ID:
            return at
        at += 4 + size
    return None


def central_directory(entries: Iterable[CDEntry], cd_offset: int) -> Iterator[bytes]:
    """Yield one CD record per entry, then the (zip64) end records; `cd_offset` is where it starts."""
    count = size = 0
    for entry in entries:
        if not 0 <= entry.offset < cd_offset:
            raise ValueError(f"member offset {entry.offset} is not before the CD at {cd_offset}")
        record = patch_offset(entry.cd_template, entry.offset)
        count += 1
        size += len(record)
        yield record
    yield end_records(count, size, cd_offset)


def end_records(count: int, cd_size: int, cd_offset: int) -> bytes:
    """zip64 EOCD + locator when needed, then the classic EOCD (fields clamped to their sentinels)."""
    eocd = EOCD.pack(
        EOCD_SIG, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
        min(cd_size, MAX32), min(cd_offset, MAX32), 0,
    )
    if count < 0xFFFF and cd_size < MAX32 and cd_offset < MAX32:
        return eocd
    zip64_eocd = ZIP64_EOCD.pack(
        ZIP64_EOCD_SIG, ZIP64_EOCD.size - 12, ZIP64_VERSION, ZIP64_VERSION, 0, 0,
        count, count, cd_size, cd_offset,
    )
    locator = ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIG, 0, cd_offset + cd_size, 1)
    return zip64_eocd + locator + eocd
