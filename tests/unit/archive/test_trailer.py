from __future__ import annotations

import zlib

import pytest
from stream_zip import ZIP_32, stream_zip

from shared.archive.trailer import TrailerFormatError, max_trailer_length, parse_trailer
from shared.archive.zipmember import MODE, encode_member
from tests.unit.archive.builders import WHEN


def stream_zip_output() -> tuple[bytes, int]:
    """stream-zip's whole output for one member, and the length of that member's bytes."""
    output = b"".join(stream_zip(
        [("a.txt", WHEN, MODE, ZIP_32, [b"abc"])],
        get_compressobj=lambda: zlib.compressobj(level=6, wbits=-zlib.MAX_WBITS),
    ))
    return output, len(encode_member("a.txt", WHEN, 3, 6, [b"abc"])[0])


def test_the_trailer_tells_where_the_member_ends() -> None:
    output, member_length = stream_zip_output()
    trailer = parse_trailer(output, 0, zip64=False)
    assert trailer.member_length == member_length and trailer.uncompressed_size == 3


def test_a_tail_that_does_not_end_in_an_eocd_is_refused() -> None:
    output, _ = stream_zip_output()
    with pytest.raises(TrailerFormatError):
        parse_trailer(output[:-1], 0, zip64=False)


def test_a_tail_whose_eocd_points_elsewhere_is_refused() -> None:
    output, _ = stream_zip_output()
    with pytest.raises(TrailerFormatError):
        parse_trailer(output, 5, zip64=False)  # as if 5 more bytes had been yielded before the tail


def test_the_hold_back_window_covers_the_largest_trailer() -> None:
    output, member_length = stream_zip_output()
    assert max_trailer_length(len("a.txt")) >= len(output) - member_length + 16
