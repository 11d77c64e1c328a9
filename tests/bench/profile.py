"""Profile the assembler (or another step service) with py-spy during one export (fs or S3 on moto).

    .venv/bin/pip install py-spy
    .venv/bin/python -m tests.bench.profile --store fs [--images 200] [--members N] [--burst N] [--service S]
        [--out DIR] [--perf | --gil]

Runs the bench's export (incompressible 2 MiB JPEG-typed images + posts; with ``--members N``
section 10's export of N 1 KiB files) through the real step services, attaches ``py-spy record``
to the assembler (or ``--service``) process for the export, and prints where its
samples went: the share of samples per leaf function (self) and per function anywhere on the stack
(inclusive), over all threads. The raw collapsed stacks are kept in ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.common import Env, MiB, World, cpu_seconds, mbps, seed_random_images, start_ready_stack, timeline
from tests.support.pipeline import request_export, wait_status

# Leaves where a thread waits (idle pool workers, the selector, a future): not CPU.
IDLE = ("_worker (concurrent/futures/thread.py)", "Condition.wait (threading.py)", "Event.wait (threading.py)",
        "EpollSelector.select (selectors.py)", "Queue.get (queue.py)", "Thread.join (threading.py)")


def summarize(raw: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    anywhere: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f.split(" (")[0] + (" (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else "")
                  for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames or frames[-1] in IDLE:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            anywhere[f] += n
    out = [f"{total} busy samples (waiting leaves left out)", "self:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out.append("inclusive:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in anywhere.most_common(top)]
    return "\n".join(out)


STALLS = (("waits for an upload slot", "pump.<locals>.cut"), ("waits for a member's SHA-256", "hexdigest"),
          ("waits for the archive hash (buffer reuse)", "BufferPool.take"),
          ("waits for the hash queue", "ThreadHasher._put"))


def stalls(raw: Path) -> str:
    """Where the encoder thread (``pump``) spends its samples: each kind of wait, and the rest."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "pump (" not in stack:
            continue
        waiting = stack.rsplit(";", 1)[-1].split(" (")[0] in {f.split(" (")[0] for f in IDLE}
        kind = next((k for k, frame in STALLS if frame in stack), None) if waiting else None
        counts[kind or ("other waits" if waiting else "working")] += int(count)
    total = sum(counts.values()) or 1
    return "encoder thread (pump):\n" + "\n".join(f"  {100 * n / total:5.1f}%  {k}" for k, n in counts.most_common())


async def main_async(store: str, images: int, posts: int, out: Path, members: int = 0,
                     service: str = "assembler", native: bool = False, burst: int = 0,
                     gil: bool = False) -> None:
    root = Path(tempfile.mkdtemp(prefix="grove-profile-"))
    world = World(root).start()
    env = None
    stack = None
    try:
        values = world.values(store, s3=store == "s3", min_part_size=8 * MiB, parts_in_flight=3)
        env = await Env.open(values)
        if burst:  # section 9's burst: small exports over its seeded tenants
            from tests.bench import burst as section9
            tenants = await section9._seed(env, section9.TENANTS)
        elif members:  # section 10's export: many 1 KiB files (filesystem store)
            from tests.bench.members import _seed
            tenant = await _seed(env, members)
        else:
            tenant, _ = await seed_random_images(env, images=images, image_bytes=2 * MiB, posts=posts)
        stack = await start_ready_stack(env, root / "stack")
        pid = stack.child(service).pid
        assert pid is not None
        raw = out / f"{service}-{store}.txt"
        if native:  # perf: where the CPU goes below Python (memcpy, SHA-256, page faults, syscalls)
            raw = out / f"{service}-{store}.perf.data"
            cmd = ["perf", "record", "-F", "499", "-p", str(pid), "-o", str(raw)]
        else:  # --idle: waiting threads too, so a stall shows (summarize leaves the waiting leaves out)
            spy_exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            # --gil: only the thread holding the GIL, i.e. where the Python CPU time goes
            cmd = [spy_exe, "record", "--pid", str(pid), "--threads", "--gil" if gil else "--idle", "--rate", "200",
                   "--format", "raw", "--output", str(raw)]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
        await asyncio.sleep(1.0)  # py-spy attaches
        cpu0 = cpu_seconds(pid)
        if burst:
            done, seconds, _, cpu_ms, _, _ = await section9._burst(
                world, env, {c.service: [c.pid] for c in stack.children if c.pid}, tenants, burst)
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            print(f"burst of {burst}: {done} complete in {seconds:.1f} s = {done / max(seconds, 1e-9):.1f}/s; "
                  "CPU-ms per export: "
                  + ", ".join(f"{name} {ms:.1f}" for name, ms in cpu_ms.items()))
        else:
            export_id = await request_export(env.bus, tenant)
            state = await wait_status(env.bus, tenant, export_id, timeout=900)
            cpu = cpu_seconds(pid) - cpu0
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            assert state.cataloged is not None
            tl = await timeline(env, tenant, export_id)
            total = state.cataloged.total_bytes
            print(f"{store}: {state.status}; streaming "
                  f"{mbps(total, tl.seconds('UploadStarted', 'ArchiveAssembled')):.0f} MB/s; {tl.phases()}; "
                  f"{service} CPU {cpu:.2f} s for {total / 1e6:.0f} MB")
        if native:
            report = subprocess.run(  # noqa: ASYNC221  (a bench tool, after the export)
                ["perf", "report", "-i", str(raw), "--stdio", "--no-children", "--sort", "dso,symbol",
                 "--percent-limit", "0.7"], capture_output=True, text=True, check=True)
            print("\n".join(line for line in report.stdout.splitlines() if line and not line.startswith("#")))
        else:
            print(summarize(raw))
            if not gil:
                print(stalls(raw))
    finally:
        if stack is not None:
            stack.stop()
        if env is not None:
            await env.close()
        world.stop()


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.profile")
    p.add_argument("--store", choices=("fs", "s3"), default="fs")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--posts", type=int, default=1000)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--members", type=int, default=0,
                   help="profile section 10's export instead: this many 1 KiB files (filesystem store)")
    what.add_argument("--burst", type=int, default=0,
                   help="profile section 9's burst instead: this many small exports at once (filesystem store)")
    p.add_argument("--service", default="assembler", help="the step service py-spy attaches to")
    p.add_argument("--out", default="bench-results/profile")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--gil", action="store_true",
                   help="py-spy samples only the thread holding the GIL (Python CPU time) instead of every thread")
    how.add_argument("--perf", action="store_true", help="sample with perf (native frames, kernel) instead of py-spy")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args.store, args.images, args.posts, out.resolve(), args.members, args.service,
                            args.perf, args.burst, args.gil))
    return 0


if __name__ == "__main__":
    sys.exit(main())
