"""``make bench``: every measurement in one command, a markdown table at the end.

    .venv/bin/python -m tests.bench.run [--only 1,2,6] [--quick] [--keep]

Benchmarks are not tests: nothing asserts. Each figure stands beside its goal, and where the
machine's speed matters the figure is a ratio to a reference measured side by side in this run.
The table is printed last and written to ``bench-results/latest.md`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.common import SectionResult, World, loadavg, log, machine
from tests.bench.small_e2e import release as release_gateway
from tests.bench.throughput_s3 import cleanup as release_s3

# Execution order: section 6 reuses section 1's moto, sources and stack; section 4 reuses 7's gateway.
SECTIONS = [
    ("2", "tests.bench.throughput_fs"),
    ("3", "tests.bench.memory"),
    ("5", "tests.bench.resume"),
    ("1", "tests.bench.throughput_s3"),
    ("6", "tests.bench.cancel"),
    ("9", "tests.bench.burst"),
    ("10", "tests.bench.members"),
    ("7", "tests.bench.small_e2e"),
    ("4", "tests.bench.api_latency"),
    ("8", "tests.bench.replay"),
]
ROOT = Path(__file__).resolve().parents[2]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: list[SectionResult], info: dict[str, str], started: datetime, total_s: float,
           argv: list[str]) -> str:
    out = [f"# Grove Export bench — {started:%Y-%m-%d %H:%M} UTC", ""]
    out.append(f"Machine: nproc {info['nproc']}, {info['cpu']}, {info['memory']} RAM, Python {info['python']}, "
               f"zlib {info['zlib']}, Linux {info['kernel']}; a fixed pure-Python loop "
               f"(`sum(i * i for i in range(10**7))`, best of 3) takes {info['python loop']}: CPU-bound rows such as "
               "the burst scale with it, so compare tables from different machines with it in mind.")
    out.append(f"Command: `python -m tests.bench.run{(' ' + ' '.join(argv)) if argv else ''}`; "
               f"total {total_s:.0f} s.")
    out += ["", "| # | measurement | figure | goal | result | notes |", "|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: int(r.number)):
        if r.error:
            out.append(f"| {r.number} | {_cell(r.title)} | – | – | ERROR | {_cell(r.error)} |")
            continue
        for row in r.rows:
            out.append(f"| {row.section} | {_cell(row.what)} | {_cell(row.figure)} | {_cell(row.goal)} | "
                       f"{row.verdict} | {_cell(row.note)} |")
    out += ["", "| section | seconds | load average (1 min) before → after |", "|---|---|---|"]
    for r in sorted(results, key=lambda r: int(r.number)):
        out.append(f"| {r.number}. {_cell(r.title)} | {r.seconds:.0f} | {r.load} |")
    short = [row for r in results for row in r.rows if row.ok is False]
    passed = [row for r in results for row in r.rows if row.ok is True]
    errors = [r for r in results if r.error]
    out += ["", f"{len(passed)} pass, {len(short)} short, {len(errors)} sections errored."]
    return "\n".join(out) + "\n"


async def main_async(only: set[str] | None, quick: bool, keep: bool,
                     partial: Callable[[list[SectionResult]], None] = lambda _: None) -> list[SectionResult]:
    root = Path(tempfile.mkdtemp(prefix="grove-bench-"))
    world = World(root, quick=quick).start()
    log(f"scratch folder {root}")
    results: list[SectionResult] = []

    def wanted(n: str) -> bool:
        return only is None or n in only

    try:
        for number, module_name in SECTIONS:
            if not wanted(number):
                continue
            module = importlib.import_module(module_name)
            result = SectionResult(number, module.TITLE)
            log(f"section {number}: {module.TITLE}")
            t0, load0 = time.perf_counter(), loadavg()
            try:
                result.rows = await module.run(world)
            except Exception as e:  # a section that breaks must not take the others with it
                traceback.print_exc()
                result.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:400]
            result.seconds = time.perf_counter() - t0
            result.load = f"{load0:.1f} → {loadavg():.1f}"
            log(f"section {number} took {result.seconds:.0f} s")
            results.append(result)
            partial(results)  # the table so far: a long run cut short still leaves its figures
            if number == "6" or (number == "1" and not wanted("6")):
                await release_s3(world)  # section 1 leaves its stack for section 6
            if number == "4" or (number == "7" and not wanted("4")):
                await release_gateway(world)  # section 7 leaves its gateway for section 4
    finally:
        await release_s3(world)
        await release_gateway(world)
        world.stop(keep=keep)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated section numbers (1-10)")
    p.add_argument("--quick", action="store_true", help="smaller inputs, for trying the bench out")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--out", default=str(ROOT / "bench-results" / "latest.md"))
    args = p.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    info = machine()
    started = datetime.now(UTC)
    print(f"machine: nproc {info['nproc']}; CPU {info['cpu']}; Python {info['python']}; zlib {info['zlib']}",
          flush=True)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def partial(results: list[SectionResult]) -> None:
        out.write_text(render(results, info, started, time.perf_counter() - t0, argv) + "\n(partial: still running)\n")

    results = asyncio.run(main_async(only, args.quick, args.keep, partial))
    total = time.perf_counter() - t0
    table = render(results, info, started, total, argv)
    out.write_text(table)
    print()
    print(table, end="")
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
