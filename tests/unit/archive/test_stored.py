from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.archive.stored import MAX_STORED, StoredDeflate, compressobj_for

DATA = random.Random(3).randbytes(3 * MAX_STORED + 1234)


def stored(chunks: list[bytes]) -> bytes:
    c = StoredDeflate()
    return b"".join([*(c.compress(x) for x in chunks), c.flush()])


def inflate(raw: bytes) -> bytes:
    d = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
    out = d.decompress(raw) + d.flush()
    assert d.eof and not d.unused_data  # one complete deflate stream, nothing after it
    return out


@pytest.mark.parametrize("size", [0, 1, MAX_STORED - 1, MAX_STORED, MAX_STORED + 1, 2 * MAX_STORED, len(DATA)])
def test_stored_blocks_inflate_to_the_input_with_zlib(size: int) -> None:
    assert inflate(stored([DATA[:size]])) == DATA[:size]


def test_every_block_but_the_last_holds_max_stored_bytes_and_only_the_last_is_final() -> None:
    raw = stored([DATA])
    blocks, pos = [], 0
    while pos < len(raw):
        header, length, nlength = raw[pos], int.from_bytes(raw[pos + 1:pos + 3], "little"), \
            int.from_bytes(raw[pos + 3:pos + 5], "little")
        assert length ^ nlength == 0xFFFF
        blocks.append((header, length))
        pos += 5 + length
    assert blocks == [(0, MAX_STORED)] * 3 + [(1, 1234)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(DATA)), max_size=12))
def test_output_does_not_depend_on_how_the_input_is_chunked(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [DATA[a:b] for a, b in zip([0, *points], [*points, len(DATA)], strict=True)]
    assert stored(chunks) == stored([DATA])


def test_a_reused_input_buffer_does_not_change_bytes_already_taken() -> None:
    c = StoredDeflate()
    buf = bytearray(DATA[:100])
    out = c.compress(buf)
    buf[:] = b"\0" * 100  # the caller reuses its buffer
    out += c.compress(DATA[100:])
    assert inflate(out + c.flush()) == DATA


def test_compress_after_flush_is_refused() -> None:
    c = StoredDeflate()
    c.flush()
    with pytest.raises(ValueError):
        c.compress(b"x")


def test_levels_above_zero_still_use_zlib() -> None:
    text = b"a line of text\n" * 10_000
    c = compressobj_for(6)
    raw = c.compress(text) + c.flush()
    assert len(raw) < len(text) // 10 and inflate(raw) == text
