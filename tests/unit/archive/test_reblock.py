from __future__ import annotations

import random

from shared.archive.zipmember import BLOCK, reblock

RANDOM = random.Random(3).randbytes(2 * BLOCK + 5)


def split_randomly(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def test_reblock_yields_exact_blocks_with_a_shorter_last_one() -> None:
    data = RANDOM[: 2 * BLOCK + 5]
    blocks = list(reblock(split_randomly(data, 1)))
    assert [len(b) for b in blocks] == [BLOCK, BLOCK, 5]
    assert b"".join(blocks) == data


def test_reblock_passes_aligned_chunks_through_without_copying() -> None:
    chunk = RANDOM[:BLOCK]
    assert next(reblock([chunk])) is chunk


def test_reblock_never_yields_empty_blocks() -> None:
    assert list(reblock([b"", b"", b""])) == []
    assert list(reblock([b"ab", b"", b"c"], size=2)) == [b"ab", b"c"]


def test_reblock_copies_reused_buffers_so_later_mutation_cannot_leak_in() -> None:
    def producer_reusing_its_buffer():
        buffer = bytearray(b"abc")
        yield buffer
        buffer[:] = b"xyz"
        yield buffer

    assert list(reblock(producer_reusing_its_buffer(), size=8)) == [b"abcxyz"]
