"""2. Throughput on the filesystem store: the export of section 1 (200 incompressible 2 MiB images +
1,000 posts) through the real services on ``GROVE_STORE=fs``, beside the CPU ceiling of this
machine measured in the same run: level-0 deflate plus CRC-32 over 1 MiB blocks
(``zlib.compressobj(level=0, wbits=-15)`` + ``zlib.crc32``), which is the least work any ZIP
writer must do per byte. Ceiling and export alternate (ceiling, export, ceiling, export) so drift
shows up in both; the figures are the means.
"""

from __future__ import annotations

import os
import time
import zlib

from tests.bench.common import (
    MB,
    Env,
    MiB,
    Row,
    World,
    cpu_seconds,
    fmt_bytes,
    log,
    mbps,
    random_pool,
    seed_random_images,
    start_ready_stack,
    timeline,
)
from tests.support.pipeline import request_export, wait_status

NUMBER = "2"
TITLE = "Throughput on the filesystem store"
RUNS = 2


def level0_crc_ceiling(total: int = 256 * MiB) -> float:
    """MB/s of level-0 deflate + CRC-32 on 1 MiB blocks of incompressible bytes (one core)."""
    pool = random_pool(3)
    blocks = [pool[i:i + MiB] for i in range(0, len(pool), MiB)]
    done = 0
    started = time.perf_counter()
    c = zlib.compressobj(level=0, wbits=-15)
    crc = 0
    while done < total:
        for b in blocks:
            c.compress(b)
            crc = zlib.crc32(b, crc)
            done += len(b)
    c.flush()
    return mbps(done, time.perf_counter() - started)


async def run(world: World) -> list[Row]:
    images, posts = (40, 200) if world.quick else (200, 1000)
    values = world.values("fs", min_part_size=8 * MiB)
    env = await Env.open(values)
    stack = None
    try:
        log(f"2: seeding {images} x 2 MiB images + {posts} posts into the filesystem store")
        tenant, _ = await seed_random_images(env, images=images, image_bytes=2 * MiB, posts=posts)
        stack = await start_ready_stack(env, world.dir("fs") / "stack")
        assembler = stack.child("assembler").pid
        assert assembler is not None
        ceilings, e2e, streaming, cpu, total, archive = [], [], [], [], 0, 0
        for i in range(RUNS):
            ceilings.append(level0_crc_ceiling())
            log(f"2: export {i + 1}/{RUNS}")
            cpu0 = cpu_seconds(assembler)
            export_id = await request_export(env.bus, tenant)
            state = await wait_status(env.bus, tenant, export_id, timeout=600)
            if state.status != "complete" or state.cataloged is None or state.completed is None:
                raise RuntimeError(f"export ended {state.status}: {state.failure}")
            cpu.append(cpu_seconds(assembler) - cpu0)
            tl = await timeline(env, tenant, export_id)
            total, archive = state.cataloged.total_bytes, state.completed.size_bytes
            e2e.append(mbps(total, tl.seconds("ExportRequested", "ExportCompleted")))
            streaming.append(mbps(total, tl.seconds("UploadStarted", "ArchiveAssembled")))
            # keep the disk tidy: the archive is not needed
            os.unlink(env.settings.store_root / env.settings.buckets.exports / state.completed.archive_key)
        ceilings.append(level0_crc_ceiling())
    finally:
        if stack is not None:
            stack.stop()
        await env.close()
    ceiling = sum(ceilings) / len(ceilings)
    e2e_mean, stream_mean = sum(e2e) / len(e2e), sum(streaming) / len(streaming)
    cpu_mean = sum(cpu) / len(cpu)
    return [
        Row(NUMBER, "FS export, UploadStarted → ArchiveAssembled", f"{stream_mean:.0f} MB/s",
            "≥ 0.7× level-0+CRC ceiling", stream_mean / ceiling >= 0.7,
            f"{stream_mean / ceiling:.2f}× ceiling; runs {', '.join(f'{x:.0f}' for x in streaming)} MB/s; "
            f"{fmt_bytes(total)} of sources, archive {fmt_bytes(archive)}; assembler CPU {cpu_mean:.1f} s "
            f"per export = {total / MB / cpu_mean:.0f} MB per CPU-second"),
        Row(NUMBER, "FS export, ExportRequested → ExportCompleted", f"{e2e_mean:.0f} MB/s",
            "≥ 0.7× level-0+CRC ceiling", e2e_mean / ceiling >= 0.7,
            f"{e2e_mean / ceiling:.2f}× ceiling; runs {', '.join(f'{x:.0f}' for x in e2e)} MB/s"),
        Row(NUMBER, "  ceiling: zlib level 0 + CRC-32, 1 MiB blocks, one core", f"{ceiling:.0f} MB/s", "", None,
            f"measured before, between and after the exports: {', '.join(f'{x:.0f}' for x in ceilings)} MB/s"),
    ]
