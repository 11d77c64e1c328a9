"""5. Resume cost: SIGKILL the assembler at ~50 % of a 1 GB export (counted from the PartUploaded
events of the log, against the parts the archive needs), let the supervisor restart it, and
measure what the crash cost beside the archive's size:

* re-uploaded — bytes sent to the store (``GROVE_FAULTS_DIR``'s ``uploaded.count``, one line per
  part upload attempt) minus the archive's size.
* re-read — there is no source-bytes counter in the services, so the kernel's is used: ``rchar``
  of ``/proc/<pid>/io`` (bytes passed to read() by all threads; the filesystem store reads files
  with read(), sockets are not counted) of the killed process, sampled just before the kill, plus
  the restarted one's at the end, each minus the start-up reads of an idle assembler, minus the
  source bytes. The snapshot and part records (kilobytes) are in it too.
  Beside it: the re-read the resume design makes necessary, derived from the log — the bytes of
  the member straddling the last part logged before the kill, from that member's start to the
  part's end (the restarted run re-encodes it from its first byte).

Sources: 1 GB of generated 64 MiB files on the filesystem store (+20 posts); part size 8 MiB,
3 parts in flight, default AckWait and in-progress period. Goals: re-upload ≤ parts in flight × part
size; re-read ≤ one member + one part; the next part uploaded ≤ 10 s after the kill (takeover).
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.msg import Msg

from services.assembler.uploader import load_records
from services.devtools.stack.supervisor import Stack
from shared.core import events as ev
from shared.runtime.settings import Settings
from tests.bench.common import (
    MB,
    Env,
    MiB,
    Row,
    World,
    delete_tenant_media,
    fmt_bytes,
    log,
    proc_io,
    seed_fs_big_files,
    start_ready_stack,
    timeline,
)
from tests.support.pipeline import request_export, wait_status

NUMBER = "5"
TITLE = "Resume cost after SIGKILL at ~50 %"
PART = 8 * MiB
IN_FLIGHT = 3
FILE = 64 * MiB


def takeover_phases(log_path: Path, kill_at: datetime, export_id: str) -> str:
    """Where the takeover time went, from the assembler's log: the restarted replica's first line,
    and when its step started on the redelivered message."""
    up = started = None
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
            at = datetime.strptime(doc["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except (ValueError, KeyError, TypeError):
            continue
        if at < kill_at:
            continue
        up = up or at
        if started is None and doc.get("export_id") == export_id and str(doc.get("msg", "")).endswith(": started"):
            started = at
    fmt = lambda t: f"{(t - kill_at).total_seconds():.1f} s" if t else "?"  # noqa: E731
    return f"kill → restarted replica's first log line {fmt(up)}, → step started on the redelivered message {fmt(started)}"


class Kill:
    """SIGKILLs the assembler when the ``target``-th PartUploaded is appended; notes what it had read."""

    def __init__(self, stack: Stack, pid: int, target: int) -> None:
        self.stack, self.pid, self.target = stack, pid, target
        self.parts = 0
        self.rchar = 0
        self.at: datetime | None = None
        self.wall = 0.0

    async def on_event(self, msg: Msg) -> None:
        if not msg.subject.endswith(".PartUploaded") or self.at is not None:
            return
        self.parts += 1
        if self.parts >= self.target:
            self.rchar = proc_io(self.pid)["rchar"]
            self.stack.kill("assembler")
            self.at = datetime.now(UTC)
            self.wall = time.monotonic()


async def run(world: World) -> list[Row]:
    size = 300 * MB if world.quick else 1000 * MB
    name = "resume"
    # Takeover is measured at the default AckWait and in-progress period (the tests' values are shorter).
    defaults = Settings.model_fields
    values = world.values(name, min_part_size=PART, parts_in_flight=IN_FLIGHT,
                          ack_wait_s=defaults["ack_wait_s"].default,
                          progress_interval_s=defaults["progress_interval_s"].default)
    fault_dir = world.dir(name) / "faults"
    fault_dir.mkdir(parents=True, exist_ok=True)
    env = await Env.open(values)
    tenant, paths, stack, sub = "", list[Path](), None, None
    try:
        log(f"5: writing {fmt_bytes(size)} of sources")
        tenant, paths = await seed_fs_big_files(env, total_bytes=size, file_bytes=FILE)
        stack = await start_ready_stack(env, world.dir(name) / "stack",
                                        extra_env={"GROVE_FAULTS_DIR": str(fault_dir)})
        first = stack.child("assembler").pid
        assert first is not None
        await asyncio.sleep(1.0)
        idle0 = proc_io(first)["rchar"]
        await asyncio.sleep(1.0)
        idle1 = proc_io(first)["rchar"]  # reads while idle (should be ~0: sockets are not counted)
        base = idle1
        target = math.ceil(size / PART) // 2
        seen = Kill(stack, first, target)
        sub = await env.bus.nc.subscribe(f"{env.settings.subject_prefix}.{tenant}.>", cb=seen.on_event)
        log(f"5: exporting {fmt_bytes(size)}, SIGKILL after PartUploaded #{target}")
        export_id = await request_export(env.bus, tenant)
        state = await wait_status(env.bus, tenant, export_id, timeout=1200)
        done_wall = time.monotonic()
        if state.status != "complete" or state.completed is None or state.cataloged is None:
            raise RuntimeError(f"export ended {state.status}: {state.failure}")
        if seen.at is None:
            raise RuntimeError("the export finished before the kill point")
        second = stack.child("assembler").pid
        assert second is not None and second != first
        rchar_end = proc_io(second)["rchar"]
        tl = await timeline(env, tenant, export_id)
        kill_at = seen.at
        assert isinstance(kill_at, datetime)
        parts = [e for _, e in tl.events if isinstance(e, ev.PartUploaded)]
        before = [p for p in parts if p.occurred_at < kill_at]
        logged = max((p.part_number for p in before), default=0)
        resumed_at = next((p.occurred_at for p in parts if p.occurred_at >= kill_at), None)
        # The straddler: the first member not finished in parts 1..logged.
        records = []
        for p in before:
            records += load_records(await env.store.read(env.settings.buckets.exports, p.records_key))
        resume_offset = before[-1].byte_end if before else 0
        last_ok_end = max((r.end for r in records if r.status == "ok"), default=0)
        straddler_archive_bytes = max(0, resume_offset - last_ok_end)
        total = state.cataloged.total_bytes
        archive = state.completed.size_bytes
        uploaded = sum(int(x) for f in fault_dir.glob("uploaded.count") for x in f.read_text().split())
        reuploaded = uploaded - archive
        r1 = int(seen.rchar) - base
        r2 = rchar_end - base
        reread = r1 + r2 - total
        stall = (done_wall - float(seen.wall))
        phases = takeover_phases(world.dir(name) / "stack" / "logs" / "assembler.log", kill_at, export_id)
    finally:
        if sub is not None:
            await sub.unsubscribe()
        if stack is not None:
            stack.stop()
        if tenant:
            await delete_tenant_media(env, tenant, paths)
        await env.close()
        shutil.rmtree(world.dir(name), ignore_errors=True)
    up_goal, read_goal = IN_FLIGHT * PART, FILE + PART
    gap = (resumed_at - kill_at).total_seconds() if resumed_at else float("nan")
    return [
        Row(NUMBER, "re-uploaded after the kill", f"{fmt_bytes(reuploaded)}",
            f"≤ {IN_FLIGHT} × {PART // MiB} MiB = {fmt_bytes(up_goal)}", reuploaded <= up_goal,
            f"archive {fmt_bytes(archive)}; {fmt_bytes(uploaded)} sent in all; killed after PartUploaded "
            f"#{seen.parts} of {state.assembled.part_count if state.assembled else '?'}, {logged} parts logged "
            "before the kill"),
        Row(NUMBER, "re-read from sources (rchar of both processes − sources)", f"{fmt_bytes(reread)}",
            f"≤ one member + one part = {fmt_bytes(read_goal)}", reread <= read_goal,
            f"killed run read {fmt_bytes(r1)}, restarted run {fmt_bytes(r2)}, sources {fmt_bytes(total)} "
            f"(idle start-up reads {fmt_bytes(base)} subtracted from each; idle drift {idle1 - idle0} B/s)"),
        Row(NUMBER, "  re-read the design requires (straddling member, from the log)",
            f"{fmt_bytes(straddler_archive_bytes)}", "", None,
            f"bytes of the member straddling the end of part {logged} ({fmt_bytes(resume_offset)}) that lie "
            f"before it, plus what the killed run had read ahead (the rest of the figure above); members "
            f"are {FILE // MiB} MiB"),
        Row(NUMBER, "takeover: SIGKILL → next part uploaded (default settings)", f"{gap:.1f} s", "≤ 10 s",
            gap <= 10.0, f"{phases}; kill → complete {stall:.1f} s; the message is redelivered AckWait "
            f"({env.settings.ack_wait_s:.0f} s) after the killed worker's last in-progress ack (every "
            f"{env.settings.progress_interval_s:.0f} s); the supervisor's restarted replica takes it"),
    ]
