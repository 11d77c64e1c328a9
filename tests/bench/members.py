"""10. Many members: one export of 65,536 small files (plus 20 posts) on the filesystem store.

Memory and time must stay flat in the number of members: the figures are the time per member
(request → complete, and streaming only) and the assembler's peak RSS (``VmHWM``), beside the
memory goal of section 3. Sources are 65,536 generated 1 KiB JPEG-typed files written straight into
the store's images folder (with the ETag file the store's own ``put`` writes), one media row each.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.objectstore.fs import _write_etag as write_etag
from tests.bench.common import (
    JPEG_MAGIC,
    MB,
    Env,
    MiB,
    Row,
    World,
    fmt_bytes,
    log,
    media_row,
    proc_status_kb,
    start_ready_stack,
    timeline,
    vm_hwm_kb,
)
from tests.bench.memory import BOUND
from tests.support.pipeline import request_export, wait_status

NUMBER = "10"
TITLE = "65,536 members: time per member, peak RSS"
MEMBERS = 65_536
SIZE = 1024


async def _seed(env: Env, members: int) -> str:
    s = env.settings
    seeded = await seed_tenant(content_source(s), env.store, images_bucket=s.buckets.images,
                               amber_bucket=s.buckets.amber, posts=20, pages=3, images=0, files=0, seed=9)
    tenant = seeded.tenant_id
    now = int(datetime.now(UTC).timestamp())
    folder = Path(s.store_root) / s.buckets.images / tenant / "many"

    def write() -> list[dict[str, object]]:
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(members):
            name = f"f{i:05d}.jpg"
            data = JPEG_MAGIC + os.urandom(SIZE - len(JPEG_MAGIC))
            (folder / name).write_bytes(data)
            # with its ETag beside it, as the store's own put leaves every object (else the catalog's
            # first HEAD of each file hashes it and writes the ETag: a one-time cost, not the export's)
            write_etag(folder / name, hashlib.md5(data, usedforsecurity=False).hexdigest())
            rows.append(media_row(tenant, i, f"{tenant}/many/{name}", name, SIZE, now))
        return rows

    rows = await asyncio.to_thread(write)
    db = content_source(s)
    for i in range(0, len(rows), 4096):
        await db.insert("media", rows[i:i + 4096])
    return tenant


async def run(world: World) -> list[Row]:
    members = 4096 if world.quick else MEMBERS
    values = world.values("members", min_part_size=8 * MiB)
    env = await Env.open(values)
    stack = None
    try:
        log(f"10: writing {members:,} files of {SIZE} B")
        tenant = await _seed(env, members)
        stack = await start_ready_stack(env, world.dir("members") / "stack")
        pid = stack.child("assembler").pid
        assert pid is not None
        idle_kb = max(proc_status_kb(pid, "VmRSS"), vm_hwm_kb(pid))
        log(f"10: exporting {members:,} members")
        export_id = await request_export(env.bus, tenant)
        state = await wait_status(env.bus, tenant, export_id, timeout=3600)
        if state.status != "complete" or state.completed is None or state.cataloged is None:
            raise RuntimeError(f"export ended {state.status}: {state.failure}")
        peak = vm_hwm_kb(pid) * 1024
        tl = await timeline(env, tenant, export_id)
        e2e = tl.seconds("ExportRequested", "ExportCompleted")
        streaming = tl.seconds("UploadStarted", "ArchiveAssembled")
    finally:
        if stack is not None:
            stack.stop()
        await env.close()
        shutil.rmtree(world.dir("members"), ignore_errors=True)
    return [
        Row(NUMBER, f"{members:,} members: request → complete per member", f"{e2e / members * 1e3:.2f} ms",
            "", None, f"{e2e:.1f} s in all; {tl.phases()}; archive {fmt_bytes(state.completed.size_bytes)}"),
        Row(NUMBER, f"{members:,} members: streaming per member", f"{streaming / members * 1e3:.2f} ms", "", None,
            f"UploadStarted → ArchiveAssembled {streaming:.1f} s"),
        Row(NUMBER, f"{members:,} members: assembler peak RSS", f"{peak / MB:.0f} MB", f"≤ {BOUND / MB:.0f} MB",
            peak <= BOUND, f"after start-up {idle_kb * 1024 / MB:.0f} MB"),
    ]
