"""6. Cancel latency while streaming, on S3 (moto): 10 exports of a tenant's 200 × 2 MiB images
(and, when section 1 seeded it, its 1,000 posts) are each cancelled right after their 2nd
PartUploaded (parts in flight), with the gateway's cancel protocol (``tests.support.pipeline.cancel``:
fold, then CancelRequested fenced at the folded sequence).

Two figures per cancel: CancelRequested → ExportCancelled by the events' own clocks (the canceller
aborts the upload and re-lists until no part remains before it appends ExportCancelled), and the
bench's own clock from the append until ``list_uploads`` under the export's prefix is empty.

Uses section 1's moto, stack and seeded images when section 1 ran; otherwise sets them up.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from nats.aio.msg import Msg

from shared.core import events as ev
from shared.core.keys import export_prefix
from tests.bench.common import Env, MiB, Row, World, log, seed_random_images, start_ready_stack, timeline
from tests.support.pipeline import cancel, request_export, wait_status

NUMBER = "6"
TITLE = "Cancel latency while streaming (S3)"
RUNS = 10


class Watch:
    """One export's events as they are appended (a core subscription on its tenant's subjects)."""

    def __init__(self) -> None:
        self.parts = 0
        self.second_part = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def on_event(self, msg: Msg) -> None:
        name = msg.subject.rsplit(".", 1)[-1]
        if name == "PartUploaded":
            self.parts += 1
            if self.parts >= 2:
                self.second_part.set()
        elif name == "ExportCancelled":
            self.cancelled.set()


async def run(world: World) -> list[Row]:
    shared = world.shared.get("s3")
    own = shared is None
    if shared is None:
        images = 40 if world.quick else 200
        env = await Env.open(world.values("s3", s3=True, min_part_size=8 * MiB))
        log(f"6: seeding {images} x 2 MiB images into moto")
        source, _ = await seed_random_images(env, images=images, image_bytes=2 * MiB, posts=0)
        stack = await start_ready_stack(env, world.dir("s3") / "stack")
    else:
        env, stack, source = shared["env"], shared["stack"], shared["tenant"]
    runs = 3 if world.quick else RUNS
    log_s: list[float] = []
    list_s: list[float] = []
    parts_at_cancel: list[int] = []
    shape = (0, 0)
    try:
        # the seeded tenant itself: a tenant's content rows may name only its own objects
        # (GROVE_SOURCE_KEY_PREFIX), so another tenant's rows pointing at these images export none of them
        tenant = source
        for i in range(runs):
            watch = Watch()
            export_id = ""
            sub = await env.bus.nc.subscribe(f"{env.settings.subject_prefix}.{tenant}.*.>", cb=watch.on_event)
            try:
                export_id = await request_export(env.bus, tenant)
                await asyncio.wait_for(watch.second_part.wait(), 120)
                t0 = time.monotonic()
                if not await cancel(env.bus, tenant, export_id):
                    raise RuntimeError("the export finished before it could be cancelled")
                parts_at_cancel.append(watch.parts)
                await asyncio.wait_for(watch.cancelled.wait(), 60)
                prefix = export_prefix(tenant, export_id)
                while await env.store.list_uploads(env.settings.buckets.exports, prefix):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                list_s.append(time.monotonic() - t0)
            finally:
                await sub.unsubscribe()
            state = await wait_status(env.bus, tenant, export_id, {"cancelled", "complete", "failed"}, 60)
            if state.status != "cancelled":
                raise RuntimeError(f"export {export_id} ended {state.status}")
            tl = await timeline(env, tenant, export_id)
            log_s.append(tl.seconds("CancelRequested", "ExportCancelled"))
            cataloged = tl.last("ExportCataloged")
            assert isinstance(cataloged, ev.ExportCataloged)
            shape = (cataloged.member_count, cataloged.total_bytes)
            log(f"6: cancel {i + 1}/{runs}: {log_s[-1]:.3f} s in the log, uploads gone after {list_s[-1]:.3f} s")
    finally:
        if own:
            stack.stop()
            await env.close()
    med, worst = statistics.median(log_s), max(log_s)
    members, total = shape
    parts = -(-total // (8 * MiB))
    lmed, lworst = statistics.median(list_s), max(list_s)
    return [
        Row(NUMBER, f"CancelRequested → ExportCancelled (log), median of {runs}", f"{med * 1000:.0f} ms",
            "≤ 1 s", med <= 1.0, f"cancelled after PartUploaded #{min(parts_at_cancel)}–#{max(parts_at_cancel)} "
            f"of {parts}; {members} members, {total / 2**20:.0f} MiB of sources (2 MiB images, posts when section 1 "
            "seeded them), 8 MiB parts, 3 in flight"),
        Row(NUMBER, f"CancelRequested → ExportCancelled (log), worst of {runs}", f"{worst * 1000:.0f} ms", "≤ 1 s",
            worst <= 1.0, "all: " + ", ".join(f"{x * 1000:.0f}" for x in log_s) + " ms"),
        Row(NUMBER, "cancel appended → list_uploads empty, median / worst", f"{lmed * 1000:.0f} / {lworst * 1000:.0f} ms",
            "≤ 1 s", lworst <= 1.0, "bench clock, polled every 10 ms after ExportCancelled arrived"),
    ]
