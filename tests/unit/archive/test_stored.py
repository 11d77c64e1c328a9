from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.archive.stored import MAX_STORED, stored_blocks, stored_size
from tests.unit.archive.reference_stored import StoredDeflate

DATA = random.Random(3).randbytes(3 * MAX_STORED + 1234)


def stored(chunks: list[bytes]) -> bytes:
    return b"".join(stored_blocks(chunks))


def inflate(raw: bytes) -> bytes:
    d = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
    out = d.decompress(raw) + d.flush()
    assert d.eof and not d.unused_data  # one complete deflate stream, nothing after it
    return out


SIZES = [0, 1, MAX_STORED - 1, MAX_STORED, MAX_STORED + 1, 2 * MAX_STORED, len(DATA)]


@pytest.mark.parametrize("size", SIZES)
def test_stored_blocks_inflate_to_the_input_with_zlib(size: int) -> None:
    raw = stored([DATA[:size]])
    assert inflate(raw) == DATA[:size]
    assert len(raw) == stored_size(size)


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


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(DATA)), max_size=12))
def test_output_does_not_depend_on_how_the_input_is_chunked_and_equals_what_archives_hold(cuts: list[int]) -> None:
    points = sorted(cuts)  # repeated points: empty chunks, which must change nothing
    chunks = [DATA[a:b] for a, b in zip([0, *points], [*points, len(DATA)], strict=True)]
    old = StoredDeflate()  # the compressobj that wrote level-0 members until now
    assert stored(chunks) == stored([DATA]) == b"".join([*(old.compress(c) for c in chunks), old.flush()])


def test_the_pieces_are_views_of_the_input_not_copies() -> None:
    pieces = list(stored_blocks([DATA]))
    data = [p for p in pieces if isinstance(p, memoryview)]
    assert sum(len(p) for p in data) == len(DATA)
    assert all(p.obj is DATA for p in data)  # the source's own bytes, between 5-byte headers
