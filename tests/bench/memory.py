"""3. Memory: the assembler process's peak RSS (``VmHWM`` in /proc/<pid>/status) for archives of
100 MB, 1 GB and 4 GB on the filesystem store.

Sources are generated files of 64 MiB (the last one shorter) written straight into the store's
images folder (``<root>/<bucket>/<key>``; the store hashes them for their ETag on first HEAD), with
media rows in the content DB, plus 20 posts. Every size gets a fresh stack, so each peak is that
export's own; the assembler's RSS after start-up (before the export) is shown beside it. Files,
rows and the archive are deleted afterwards. A size is skipped when the disk cannot hold sources +
parts + archive (three times the size) with 2 GB to spare. Default settings only: part buffers
are pooled and the service sets its own malloc parameters at start-up (``shared/runtime/alloc.py``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.bench.common import (
    MB,
    Env,
    MiB,
    Row,
    World,
    delete_tenant_media,
    fmt_bytes,
    log,
    mbps,
    proc_status_kb,
    seed_fs_big_files,
    start_ready_stack,
    timeline,
    vm_hwm_kb,
)
from tests.support.pipeline import request_export, wait_status

NUMBER = "3"
TITLE = "Memory: assembler peak RSS"
PART = 8 * MiB
IN_FLIGHT = 3
FILE = 64 * MiB
BOUND = PART * (IN_FLIGHT + 2) + 80 * MB


async def one(world: World, size: int, extra_env: dict[str, str] | None = None) -> tuple[int, int, float, int]:
    """(peak RSS kB, RSS kB after start-up, streaming MB/s, archive bytes) for one archive size."""
    name = f"mem-{size // MB}"
    values = world.values(name, min_part_size=PART, parts_in_flight=IN_FLIGHT)
    env = await Env.open(values)
    tenant, paths, stack = "", list[Path](), None
    try:
        log(f"3: writing {fmt_bytes(size)} of sources")
        tenant, paths = await seed_fs_big_files(env, total_bytes=size, file_bytes=FILE)
        stack = await start_ready_stack(env, world.dir(name) / "stack", extra_env=extra_env)
        pid = stack.child("assembler").pid
        assert pid is not None
        idle_kb = max(proc_status_kb(pid, "VmRSS"), vm_hwm_kb(pid))  # start-up's own peak, if higher
        log(f"3: exporting {fmt_bytes(size)}")
        export_id = await request_export(env.bus, tenant)
        state = await wait_status(env.bus, tenant, export_id, timeout=1200)
        if state.status != "complete" or state.completed is None or state.cataloged is None:
            raise RuntimeError(f"the {fmt_bytes(size)} export ended {state.status}: {state.failure}")
        peak_kb = vm_hwm_kb(pid)
        tl = await timeline(env, tenant, export_id)
        speed = mbps(state.cataloged.total_bytes, tl.seconds("UploadStarted", "ArchiveAssembled"))
        return peak_kb, idle_kb, speed, state.completed.size_bytes
    finally:
        if stack is not None:
            stack.stop()
        if tenant:
            await delete_tenant_media(env, tenant, paths)
        await env.close()
        shutil.rmtree(world.dir(name), ignore_errors=True)


async def run(world: World) -> list[Row]:
    sizes = [100 * MB, 300 * MB] if world.quick else [100 * MB, 1000 * MB, 4000 * MB]
    rows: list[Row] = []
    peaks: list[int] = []
    for size in sizes:
        free = shutil.disk_usage(world.root).free
        if free < 3 * size + 2_000_000_000:
            rows.append(Row(NUMBER, f"peak RSS, {fmt_bytes(size)} archive", "skipped", "", None,
                            f"only {fmt_bytes(free)} free on {world.root}"))
            continue
        peak_kb, idle_kb, speed, archive = await one(world, size)
        peaks.append(peak_kb)
        peak = peak_kb * 1024
        rows.append(Row(
            NUMBER, f"assembler peak RSS, {fmt_bytes(size)} archive", f"{peak / MB:.0f} MB",
            f"≤ {BOUND / MB:.0f} MB", peak <= BOUND,
            f"peak RSS after start-up {idle_kb * 1024 / MB:.0f} MB, so +{(peak - idle_kb * 1024) / MB:.0f} MB for the "
            f"export; archive {fmt_bytes(archive)}, streamed at {speed:.0f} MB/s"))
    if len(peaks) >= 2:
        spread = (max(peaks) - min(peaks)) * 1024
        rows.append(Row(NUMBER, "peak RSS spread across sizes (flat?)", f"{spread / MB:.1f} MB", "flat", None,
                        f"bound = part size {PART // MiB} MiB × (parts in flight {IN_FLIGHT} + 2) + 80 MB"))
    return rows
