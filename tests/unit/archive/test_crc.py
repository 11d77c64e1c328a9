"""The fast CRC-32 gives zlib's values, and stream-zip uses it (so the speed cannot silently go)."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from shared.archive import crc, streamzip
from shared.archive.zipmember import MemberEncoder


@given(st.binary(max_size=70_000), st.integers(min_value=0, max_value=2**32 - 1), st.integers(0, 64))
def test_the_fast_crc_equals_zlibs(data: bytes, start: int, cut: int) -> None:
    assert crc.crc32(data, start) == zlib.crc32(data, start)
    view = memoryview(data)[cut:]  # unaligned buffers, as slices of a part buffer are
    assert crc.crc32(view) == zlib.crc32(view)


def test_stream_zip_computes_member_crcs_with_it() -> None:
    assert streamzip.module.zlib.crc32 is crc.crc32
    assert streamzip.module.zlib.compressobj is zlib.compressobj  # the rest is zlib's own


def test_a_member_encoded_through_it_records_zlibs_crc() -> None:
    data = bytes(range(256)) * 5000
    encoder = MemberEncoder("a.bin", datetime(2024, 1, 1, tzinfo=UTC), len(data), 0, [data])
    b"".join(encoder)
    assert encoder.result.crc32 == zlib.crc32(data)
