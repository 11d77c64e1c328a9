"""The block runs of a large deflated member (shared/archive/blocks.py): one ordinary deflate
stream whatever the pool does, the plain compressobj's bytes for one block, and nearly its size."""

from __future__ import annotations

import io
import random
import threading
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shared.archive.blocks import BLOCK, BlockDeflate, compressor, deflate_run
from shared.archive.central import CDEntry, central_directory
from shared.archive.zipmember import MemberEncoder, deflate, reblock
from tests.unit.archive.builders import WHEN

TEXT = b"".join(b"%d: a line of a long CSV export, field,field,field\n" % i for i in range(120_000))  # ~6 MB
RANDOM = random.Random(5).randbytes(3 * BLOCK + 17)


def runs(data: bytes, level: int, pool: Any = None, ahead: int = 0) -> bytes:
    c = BlockDeflate(level, len(data), pool, ahead)
    return b"".join([c.compress(b) for b in reblock([data])] + [c.flush()])


@pytest.mark.parametrize("level", [1, 6, 9])
@pytest.mark.parametrize("size", [BLOCK, BLOCK + 1, 2 * BLOCK, 3 * BLOCK + 17])
def test_the_runs_inflate_to_the_member_whatever_the_pool(level: int, size: int) -> None:
    data = (TEXT if size % 2 else RANDOM + TEXT)[:size]
    inline = runs(data, level)
    assert zlib.decompress(inline, -zlib.MAX_WBITS) == data
    with ThreadPoolExecutor(3) as pool:
        assert runs(data, level, pool) == inline
        assert runs(data, level, pool, ahead=1) == inline  # waits at every block: same bytes


def test_one_block_is_exactly_the_plain_compressobj() -> None:
    c = compressor(6)
    assert runs(TEXT[:BLOCK], 6) == c.compress(TEXT[:BLOCK]) + c.flush()


def test_the_runs_cost_little_beside_one_compressobj() -> None:
    c = compressor(6)
    whole = len(c.compress(TEXT) + c.flush())
    assert abs(len(runs(TEXT, 6)) - whole) < whole * 0.002  # 307,559 against 307,570 bytes here


class _Late(ThreadPoolExecutor):
    """Finishes each run only once the next one was submitted: later runs finish first."""

    def __init__(self) -> None:
        super().__init__(4)
        self.gates: list[threading.Event] = []

    def submit(self, fn: Callable[..., bytes], /, *args: Any, **kwargs: Any) -> Future[bytes]:  # type: ignore[override]
        gate, before = threading.Event(), self.gates[-1] if self.gates else None
        self.gates.append(gate)
        if before is not None:
            before.set()

        def late() -> bytes:
            gate.wait(5)
            return fn(*args, **kwargs)

        return super().submit(late)


def test_runs_finishing_out_of_order_are_handed_back_in_order() -> None:
    data = TEXT[:4 * BLOCK + 3]
    with _Late() as pool:
        out = runs(data, 6, pool, ahead=8)
    assert out == runs(data, 6)


def test_a_short_source_still_leaves_a_valid_stream() -> None:
    c = BlockDeflate(6, 3 * BLOCK)
    out = c.compress(TEXT[:BLOCK]) + c.flush()  # two blocks declared, one came
    assert zlib.decompress(out, -zlib.MAX_WBITS) == TEXT[:BLOCK]


def test_a_member_of_several_blocks_reads_back_with_zipfile_and_matches_what_ahead_computes() -> None:
    data = TEXT[:3 * BLOCK + 5]
    encoder = MemberEncoder("feed.json", WHEN, len(data), 6, [data])
    member = b"".join(encoder)
    assert b"".join(MemberEncoder("feed.json", WHEN, len(data), 6, [data], deflate(data, 6))) == member
    cd = b"".join(central_directory([CDEntry(encoder.result.cd_template, 0)], len(member)))
    with zipfile.ZipFile(io.BytesIO(member + cd)) as z:
        assert z.read("feed.json") == data


def test_a_run_is_primed_with_the_input_before_it() -> None:
    block, before = TEXT[BLOCK:2 * BLOCK], TEXT[BLOCK - 32 * 1024:BLOCK]
    primed = deflate_run(block, before, 6, True)
    assert len(primed) < len(deflate_run(block, b"", 6, True))
    d = zlib.decompressobj(-zlib.MAX_WBITS, zdict=before)
    assert d.decompress(primed) == block


def test_no_more_runs_are_out_than_the_bound() -> None:
    out: list[int] = []
    with _Late() as pool:
        c = BlockDeflate(6, 6 * BLOCK, pool, ahead=2)
        for block in reblock([TEXT[:6 * BLOCK]]):
            c.compress(block)
            out.append(len(c._pending))
        c.flush()
    assert max(out) == 2  # each block held until its run is handed back: memory bounded by the runs out


def test_the_pool_has_as_many_threads_as_the_process_may_use_cores(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    from shared.archive import blocks
    from shared.runtime import cpus

    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(64)))  # a 64-core host
    quota = tmp_path / "cpu.max"
    quota.write_text("200000 100000\n")  # a container held to 2 CPUs
    monkeypatch.setattr(cpus, "CPU_MAX", quota)
    blocks.shared_pool.cache_clear()
    try:
        pool = blocks.shared_pool()
        assert pool is not None and pool._max_workers == 2  # type: ignore[attr-defined]
        quota.write_text("100000 100000\n")  # one CPU: no pool, the runs in the caller's thread
        blocks.shared_pool.cache_clear()
        assert blocks.shared_pool() is None
    finally:
        blocks.shared_pool.cache_clear()
