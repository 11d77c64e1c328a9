"""A tiny, independent reader of central-directory records, written from APPNOTE for tests.

It shares no code with `shared.archive`, so a test that patches with one and reads with the other
checks the format, not the code against itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field


@dataclass
class CDRecord:
    version_made_by: int
    version_needed: int
    crc32: int
    compressed_size: int
    uncompressed_size: int
    offset: int
    name: bytes
    extras: dict[int, bytes] = field(default_factory=dict)
    extra_order: list[int] = field(default_factory=list)
    length: int = 0


def parse_cd_record(data: bytes, at: int = 0) -> CDRecord:
    """Parse one CD record at `at`, resolving zip64 fields the way APPNOTE 4.5.3 says."""
    (sig, made_by, needed, _flags, _method, _time, _date, crc, csize, usize, name_len, extra_len,
     comment_len, _disk, _iattr, _eattr, offset) = struct.unpack_from("<4sHHHHHHIIIHHHHHII", data, at)
    assert sig == b"PK\x01\x02", sig
    name = data[at + 46:at + 46 + name_len]
    extra = data[at + 46 + name_len:at + 46 + name_len + extra_len]
    extras: dict[int, bytes] = {}
    order: list[int] = []
    pos = 0
    while pos < len(extra):
        extra_id, size = struct.unpack_from("<HH", extra, pos)
        assert pos + 4 + size <= len(extra), "extra field overruns the extra area"
        extras[extra_id] = extra[pos + 4:pos + 4 + size]
        order.append(extra_id)
        pos += 4 + size
    values = [usize, csize, offset]
    if 1 in extras:
        zip64 = extras[1]
        wanted = [i for i, value in enumerate(values) if value == 0xFFFFFFFF]
        assert len(zip64) == 8 * len(wanted), "zip64 extra must hold exactly the 0xFFFFFFFF fields"
        for slot, index in enumerate(wanted):
            values[index] = struct.unpack_from("<Q", zip64, 8 * slot)[0]
    else:
        assert 0xFFFFFFFF not in values, "0xFFFFFFFF field without a zip64 extra"
    return CDRecord(made_by, needed, crc, values[1], values[0], values[2], name, extras, order,
                    46 + name_len + extra_len + comment_len)
