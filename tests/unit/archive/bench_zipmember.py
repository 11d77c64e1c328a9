"""Throughput of MemberEncoder against raw zlib + CRC-32 on the same blocks.

Run from the repo root: `python -m tests.unit.archive.bench_zipmember [MiB]`. Not collected by pytest
(no `test_` prefix): timing on a shared 2-core box is too noisy to assert on. Runs are interleaved
and the best of each is reported, because allocator and cache state swing single runs by 2x.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

from shared.archive.zipmember import BLOCK, MemberEncoder


def _raw(blocks: list[bytes], level: int) -> None:
    compressor = zlib.compressobj(level=level, wbits=-zlib.MAX_WBITS)
    crc = 0
    for block in blocks:
        crc = zlib.crc32(block, crc)
        compressor.compress(block)
    compressor.flush()


def _encoder(blocks: list[bytes], level: int) -> None:
    size = sum(map(len, blocks))
    for _ in MemberEncoder("bench.bin", datetime(2024, 1, 1, tzinfo=UTC), size, level, iter(blocks)):
        pass


def main(mib: int = 64) -> None:
    data = os.urandom(mib << 20)
    for label, chunk in (("1 MiB", BLOCK), ("64 KiB", 65536)):
        blocks = [data[i:i + chunk] for i in range(0, len(data), chunk)]
        for level, rounds in ((0, 7), (6, 2)):
            best: dict[str, float] = {"raw zlib+crc": float("inf"), "MemberEncoder": float("inf")}
            runs: dict[str, Callable[[list[bytes], int], None]] = {
                "raw zlib+crc": _raw, "MemberEncoder": _encoder,
            }
            for _ in range(rounds):
                for name, run in runs.items():
                    started = time.perf_counter()
                    run(blocks, level)
                    best[name] = min(best[name], time.perf_counter() - started)
            rates = ", ".join(f"{name} {len(data) / took / 1e6:.0f} MB/s" for name, took in best.items())
            print(f"{mib} MiB random, {label} input chunks, level {level}: {rates}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 64)
