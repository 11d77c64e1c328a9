"""Read what stream-zip wrote after one member: data descriptor, one CD record, (zip64) EOCD.

A one-member `stream_zip()` call ends with that member's central-directory record and the EOCD, whose
"offset of start of central directory" is the member's byte length (verified). We never ship those
trailing bytes; we parse them to learn where the member ends and keep the CD record as a template for
our own central directory (`central.py`). Parsing instead of assuming a fixed layout means a
stream-zip change that moves things fails loudly here rather than corrupting archives.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes
ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes
CD_HEADER = struct.Struct("<4sBBHHHHHIIIHHHHHII")  # 46 bytes
DESCRIPTOR_32 = struct.Struct("<4sIII")  # 16 bytes
DESCRIPTOR_64 = struct.Struct("<4sIQQ")  # 24 bytes

EOCD_SIG, ZIP64_EOCD_SIG, ZIP64_LOCATOR_SIG = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"
CD_SIG, DESCRIPTOR_SIG = b"PK\x01\x02", b"PK\x07\x08"
MAX32 = 0xFFFFFFFF


class TrailerFormatError(ValueError):
    """stream-zip's output did not have the layout this module relies on."""


@dataclass(frozen=True)
class Trailer:
    member_length: int  # bytes of local header + data + data descriptor
    cd_record: bytes  # stream-zip's CD record for the member, local-header offset 0
    crc32: int
    compressed_size: int
    uncompressed_size: int


def max_trailer_length(name_bytes: int) -> int:
    """Upper bound of descriptor + CD record + zip64 EOCD + locator + EOCD for one member."""
    cd_record = CD_HEADER.size + name_bytes + 9 + 28  # UT extra + zip64 extra
    return DESCRIPTOR_64.size + cd_record + ZIP64_EOCD.size + ZIP64_LOCATOR.size + EOCD.size


def parse_trailer(tail: bytes, tail_start: int, zip64: bool) -> Trailer:
    """Parse the end of a one-member stream-zip output.

    `tail` is the last bytes of the output and `tail_start` its position in the whole output; it must
    contain at least `max_trailer_length()` bytes (or the whole output).
    """
    eocd_at = len(tail) - EOCD.size
    if eocd_at < 0 or tail[eocd_at:eocd_at + 4] != EOCD_SIG:
        raise TrailerFormatError("no end-of-central-directory record at the end")
    _, _, _, _, count, cd_size, cd_offset, comment = EOCD.unpack_from(tail, eocd_at)
    cd_end = eocd_at
    if cd_offset == MAX32 or count == 0xFFFF:
        locator_at = eocd_at - ZIP64_LOCATOR.size
        record_at = locator_at - ZIP64_EOCD.size
        if record_at < 0 or tail[locator_at:locator_at + 4] != ZIP64_LOCATOR_SIG:
            raise TrailerFormatError("zip64 EOCD locator missing")
        if tail[record_at:record_at + 4] != ZIP64_EOCD_SIG:
            raise TrailerFormatError("zip64 EOCD record missing")
        _, _, _, _, _, _, _, count, cd_size, cd_offset = ZIP64_EOCD.unpack_from(tail, record_at)
        cd_end = record_at
    cd_start = cd_end - cd_size
    if count != 1 or comment != 0 or cd_start < 0 or tail_start + cd_start != cd_offset:
        raise TrailerFormatError("EOCD does not describe exactly one member ending before the CD")
    cd_record = tail[cd_start:cd_end]
    crc, csize, usize = _read_descriptor(tail, cd_start, zip64)
    if cd_record[:4] != CD_SIG or CD_HEADER.unpack_from(cd_record)[8] != crc:
        raise TrailerFormatError("central-directory record does not match the data descriptor")
    return Trailer(cd_offset, cd_record, crc, csize, usize)


def _read_descriptor(tail: bytes, end: int, zip64: bool) -> tuple[int, int, int]:
    layout = DESCRIPTOR_64 if zip64 else DESCRIPTOR_32
    start = end - layout.size
    if start < 0:
        raise TrailerFormatError("data descriptor not in the held-back tail")
    signature, crc, csize, usize = layout.unpack_from(tail, start)
    if signature != DESCRIPTOR_SIG:
        raise TrailerFormatError("no data descriptor before the central directory")
    return crc, csize, usize
