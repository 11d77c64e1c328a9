"""stream-zip's framing of one streamed deflate member, written here for the members we deflate at
level 0 ourselves (:func:`shared.archive.zipmember.MemberEncoder` with level 0): the local header, the
data descriptor and the central-directory record, byte for byte what ``stream_zip()`` writes for a
member alone (``ZIP_32`` or ``ZIP_64``, extended timestamps, no password), with the record's
local-header offset 0 as in every template :mod:`shared.archive.central` re-bases.

Why not stream-zip itself for these members: it re-chunks its whole output (a copy of every byte,
under the GIL, in 256 KiB slices) and takes a compressobj's output as one new ``bytes`` per call (a
second copy); for the stored blocks of photos, video and archives — most of an export's bytes —
those two copies and its per-member setup were two thirds of the encoder thread's work (measured:
0.57 against 0.20 ns a byte, encoding into a part buffer). Written here, a stored member's bytes are
the source's own buffers between 5-byte block headers, copied once, into the part.

A unit test holds every field to the installed stream-zip's output (both layouts, names, times,
sizes on block edges); a stream-zip release that changes its framing fails that test, and the
encoder fingerprint (which names stream-zip's version) keeps resumed archives consistent meanwhile.
"""

from __future__ import annotations

import struct
from datetime import datetime

LOCAL_SIG, DESCRIPTOR_SIG, CD_SIG = b"PK\x03\x04", b"PK\x07\x08", b"PK\x01\x02"
DEFLATE = 8
FLAGS = 0b0000_1000_0000_1000  # data descriptor follows the data | names are UTF-8
MAX32 = 0xFFFFFFFF
ZIP64_EXTRA_ID = b"\x01\x00"

_LOCAL = struct.Struct("<4sHHH4sIIIHH")
_DESCRIPTOR_32 = struct.Struct("<4sIII")
_DESCRIPTOR_64 = struct.Struct("<4sIQQ")
_CD = struct.Struct("<4sBBBBHH4sIIIHHHHHII")
_DOS_TIME = struct.Struct("<HH")
_UNIX_TIME = struct.Struct("<2sH1sl")  # "UT": modification time only
_ZIP64_LOCAL = struct.Struct("<2sHQQ")
_ZIP64_CD = struct.Struct("<2sHQQQ")


class Framing:
    """The fixed parts of one member: its encoded name, times and attributes."""

    __slots__ = ("dos_time", "external_attr", "name", "unix_extra", "zip64")

    def __init__(self, name: bytes, modified_at: datetime, mode: int, zip64: bool) -> None:
        if not name or len(name) > 0xFFFF:
            raise ValueError("a member name must be 1 to 65535 bytes")
        t = modified_at
        self.name = name
        self.zip64 = zip64
        self.dos_time = _DOS_TIME.pack(t.second // 2 | t.minute << 5 | t.hour << 11,
                                       t.day | t.month << 5 | (t.year - 1980) << 9)
        self.unix_extra = _UNIX_TIME.pack(b"UT", 5, b"\x01", int(t.timestamp()))
        self.external_attr = mode << 16 | (0x10 if name.endswith(b"/") else 0)

    def local_header(self) -> bytes:
        if self.zip64:
            extra = _ZIP64_LOCAL.pack(ZIP64_EXTRA_ID, 16, 0, 0) + self.unix_extra
            fields = (45, FLAGS, DEFLATE, self.dos_time, 0, MAX32, MAX32)
        else:
            extra = self.unix_extra
            fields = (20, FLAGS, DEFLATE, self.dos_time, 0, 0, 0)
        return _LOCAL.pack(LOCAL_SIG, *fields, len(self.name), len(extra)) + self.name + extra

    def descriptor(self, crc32: int, compressed: int, uncompressed: int) -> bytes:
        if self.zip64:
            return _DESCRIPTOR_64.pack(DESCRIPTOR_SIG, crc32, compressed, uncompressed)
        if compressed > MAX32 or uncompressed > MAX32:
            raise ValueError("a ZIP_32 member cannot hold more than 4 GiB")
        return _DESCRIPTOR_32.pack(DESCRIPTOR_SIG, crc32, compressed, uncompressed)

    def cd_record(self, crc32: int, compressed: int, uncompressed: int) -> bytes:
        """The member's central-directory record, local header at offset 0."""
        if self.zip64:
            extra = _ZIP64_CD.pack(ZIP64_EXTRA_ID, 24, uncompressed, compressed, 0) + self.unix_extra
            version, sizes, offset = 45, (MAX32, MAX32), MAX32
        else:
            extra = self.unix_extra
            version, sizes, offset = 20, (compressed, uncompressed), 0
        return _CD.pack(CD_SIG, version, 3, version, 0, FLAGS, DEFLATE, self.dos_time, crc32, *sizes,
                        len(self.name), len(extra), 0, 0, 0, self.external_attr, offset) + self.name + extra
