"""8. Event-log replay: rebuild the gateway's read model from 100,000 events with the gateway's own
``services.gateway.projector.replay`` (run in the bench process, into a fresh SQLite file).

The events are the real models of 10,000 exports × 10 events (ExportRequested, CatalogStarted,
ExportCataloged, UploadStarted, 2 × PartUploaded, ArchiveAssembled, FinalizeStarted,
ExportCompleted, NotificationSent), published first with ``js.publish`` and 300 in flight.

The replay runs ``RUNS`` times, each into a new file; the table gives the median rate and the
range. A replay slower than the time limit is stopped there; its rate is then read from the
rebuilt file's ``projector_position`` (how far it got), and the table says so.

The cost of the accounts (shared/bus/permissions.py): on a server configured as deployed
(``World.deployed``), the same replay (of ``ACCOUNTS_EXPORTS`` exports' events) and ``APPENDS`` fenced
appends one after the other, as the service user (``SVC_<user>``, through its imports) and as ``admin``
(in ``STORE``, where the stream is), alternating, ``RUNS`` each: the medians side by side.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import statistics
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.runtime.settings import Settings
from tests.bench.common import Env, Row, World, log

NUMBER = "8"
TITLE = "Event-log replay into the read model"
EXPORTS = 10_000
IN_FLIGHT = 300
LIMIT_S = 60.0
RUNS = 3
ACCOUNTS_EXPORTS = 2_000
APPENDS = 1_000


def events_of(i: int) -> list[ev.Event]:
    tenant, export = f"tenant_{i % 997:04d}", f"exp_{i:024x}"
    base = dict(export_id=export, tenant_id=tenant)
    t0 = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i)
    archive = f"exports/{tenant}/{export}/grove-export-autumn-2026-11-01.zip"
    records = f"exports/{tenant}/{export}/work/parts/"
    size = 20_000_000 + i

    def at(s: float) -> dict[str, object]:
        return {**base, "occurred_at": t0 + timedelta(seconds=s)}

    return [
        ev.ExportRequested(**at(0), user_id="u1", user_email="autumn@example.org", username="autumn",
                           producer="gateway"),
        ev.CatalogStarted(**at(0.1), producer="catalog"),
        ev.ExportCataloged(**at(0.5), snapshot_key=f"exports/{tenant}/{export}/work/snapshot.jsonl",
                           snapshot_sha256="0" * 64, archive_key=archive, member_count=40, total_bytes=size,
                           item_counts={"posts": 30, "pages": 3, "images": 6}, producer="catalog"),
        ev.UploadStarted(**at(0.6), upload_id=f"up{i:030x}", archive_key=archive, part_size=8 << 20,
                         fingerprint="gx1", producer="assembler"),
        ev.PartUploaded(**at(1.0), part_number=1, etag="e" * 32, md5="e" * 32, byte_start=0, byte_end=8 << 20,
                        records_key=records + "00001.json", records_count=20, members_done=20,
                        source_bytes_done=8 << 20, producer="assembler"),
        ev.PartUploaded(**at(1.4), part_number=2, etag="f" * 32, md5="f" * 32, byte_start=8 << 20,
                        byte_end=size, records_key=records + "00002.json", records_count=20, members_done=40,
                        source_bytes_done=size, producer="assembler"),
        ev.ArchiveAssembled(**at(1.5), archive_key=archive, upload_id=f"up{i:030x}", size_bytes=size, part_count=2,
                            member_count=40, error_count=0, sha256="a" * 64, producer="assembler"),
        ev.FinalizeStarted(**at(1.6), producer="finalizer"),
        ev.ExportCompleted(**at(1.9), archive_key=archive, size_bytes=size, sha256="a" * 64,
                           item_counts={"posts": 30, "pages": 3, "images": 6}, error_count=0,
                           expires_at=t0 + timedelta(days=7), producer="finalizer"),
        ev.NotificationSent(**at(2.0), channel="outbox", producer="notifier"),
    ]


async def publish_all(env: Env | Bus, exports: int, settings: Settings | None = None) -> tuple[int, float]:
    bus, settings = (env.bus, env.settings) if isinstance(env, Env) else (env, settings)
    assert settings is not None
    prefix, stream = settings.subject_prefix, settings.stream_name
    payloads = [(ev.subject_for(prefix, e), e.to_json()) for i in range(exports) for e in events_of(i)]
    gate = asyncio.Semaphore(IN_FLIGHT)
    started = time.perf_counter()

    async def one(subject: str, data: bytes) -> None:
        try:
            await bus.js.publish(subject, data, stream=stream, timeout=30)
        finally:
            gate.release()

    tasks = []
    for subject, data in payloads:  # in stream order per export: each export's events go out in order
        await gate.acquire()
        tasks.append(asyncio.create_task(one(subject, data)))
    await asyncio.gather(*tasks)
    return len(payloads), time.perf_counter() - started


def position(folder: Path, name: str) -> int:
    """How far a replay into ``folder/name`` got (its temp file's projector_position)."""
    for candidate in folder.glob(f"{name}.replay-*"):
        if candidate.name.endswith(("-wal", "-shm", "-journal")):
            continue
        try:
            with sqlite3.connect(f"file:{candidate}?mode=ro", uri=True, timeout=0.2) as db:
                row = db.execute("SELECT last_seq FROM projector_position WHERE id = 1").fetchone()
                return int(row[0]) if row else 0
        except sqlite3.Error:
            return -1
    return 0


async def run(world: World) -> list[Row]:
    from services.gateway.projector import replay

    exports = 1_000 if world.quick else EXPORTS
    env = await Env.open(world.values("replay"))
    try:
        log(f"8: publishing {exports * 10:,} events")
        count, pub_s = await publish_all(env, exports)
        runs = 1 if world.quick else RUNS
        results = []
        for i in range(runs):
            log(f"8: replaying {count:,} events (limit {LIMIT_S:.0f} s), {i + 1}/{runs}")
            results.append(await _replay(replay, env.bus, world.dir("replay") / f"read-model-{i + 1}.db", count))
    finally:
        await env.close()
    accounts = await accounts_rows(world, replay)
    rates = [reached / elapsed if elapsed > 0 else 0.0 for reached, elapsed, _, _ in results]
    rate = statistics.median(rates)
    stopped = [r for r in results if r[2] is None]
    rows = next((r[2] for r in results if r[2] is not None), 0)
    spread = f"{runs} runs: median {rate:,.0f}, range {min(rates):,.0f}–{max(rates):,.0f} events/s; " if runs > 1 else ""
    note = (f"{count:,} events of {exports:,} exports; rebuilt {rows:,} rows, in "
            + ", ".join(f"{e:.1f}" for _, e, _, _ in results) + " s; cyclic garbage a collection found after each: "
            + ", ".join(str(g) for *_, g in results) + " objects" if not stopped else
            f"{len(stopped)} of {runs} stopped at the {LIMIT_S:.0f} s limit (their rate from how far they got: "
            "projector_position)")
    return [
        Row(NUMBER, "read-model replay (projector.replay)", f"{rate:,.0f} events/s", "≥ 20,000 events/s",
            rate >= 20_000, spread + note),
        Row(NUMBER, "  publishing them (js.publish, 300 in flight)", f"{count / pub_s:,.0f} events/s", "", None,
            f"{count:,} events in {pub_s:.1f} s"),
        *accounts,
    ]


async def accounts_rows(world: World, replay: Callable[..., Coroutine[object, object, int]]) -> list[Row]:
    """The replay and fenced appends as a service user through its SVC_<user> imports against as admin in STORE."""
    from pydantic import SecretStr

    from shared.bus.connect import connect
    from shared.bus.permissions import ADMIN
    from tests.support.env import build

    values, passwords = world.deployed("accounts")
    base = build(values)
    root = world.dir("accounts")

    def as_user(name: str) -> Settings:
        return base.model_copy(update={"nats_user": name, "nats_password": SecretStr(passwords[name])})

    exports = 200 if world.quick else ACCOUNTS_EXPORTS
    runs = 1 if world.quick else RUNS
    buses: dict[str, Bus] = {}
    try:
        buses["admin"] = await connect(as_user(ADMIN), "bench", ensure=True)
        buses["gateway"] = await connect(as_user("gateway"), "gateway")
        buses["notifier"] = await connect(as_user("notifier"), "notifier")
        log(f"8: the accounts' cost: publishing {exports * 10:,} events")
        count, _ = await publish_all(buses["admin"], exports, base)
        replays: dict[str, list[float]] = {"gateway": [], "admin": []}
        appends: dict[str, list[float]] = {"notifier": [], "admin": []}
        for i in range(runs):
            for who in ("gateway", "admin") if i % 2 == 0 else ("admin", "gateway"):
                reached, elapsed, _, _ = await _replay(replay, buses[who], root / f"rm-{who}-{i}.db", count)
                replays[who].append(reached / elapsed)
            for who in ("notifier", "admin") if i % 2 == 0 else ("admin", "notifier"):
                appends[who].append(await _appends(buses[who], f"t_{who}_{i}"))
    finally:
        for bus in buses.values():
            await bus.close()
        world.servers.pop("accounts").stop()  # not left running through the sections after
    replay_ratio = statistics.median(replays["gateway"]) / statistics.median(replays["admin"])
    append_ratio = statistics.median(appends["notifier"]) / statistics.median(appends["admin"])
    spread = lambda xs: f"{min(xs):,.0f}–{max(xs):,.0f}"  # noqa: E731
    return [
        Row(NUMBER, "  the accounts' cost: replay as the gateway user (SVC_gateway, imports) against as admin (STORE)",
            f"{replay_ratio:.2f}×", "≥ 0.9×", replay_ratio >= 0.9,
            f"{count:,} events, {runs} runs each, alternating: median {statistics.median(replays['gateway']):,.0f} "
            f"({spread(replays['gateway'])}) against {statistics.median(replays['admin']):,.0f} "
            f"({spread(replays['admin'])}) events/s"),
        Row(NUMBER, "  the accounts' cost: fenced appends one at a time as the notifier user against as admin",
            f"{append_ratio:.2f}×", "≥ 0.9×", append_ratio >= 0.9,
            f"{APPENDS:,} appends, {runs} runs each: median {statistics.median(appends['notifier']):,.0f} "
            f"({spread(appends['notifier'])}) against {statistics.median(appends['admin']):,.0f} "
            f"({spread(appends['admin'])}) appends/s"),
    ]


async def _appends(bus: Bus, tenant: str) -> float:
    """Appends/s of ``APPENDS`` NotificationSent one after the other, each the first event of an export
    of its own (fenced on "nothing there yet", as every append is fenced on the export's last)."""
    started = time.perf_counter()
    for i in range(APPENDS):
        event = ev.NotificationSent(export_id=f"exp_{i:024x}", tenant_id=tenant, channel="outbox", producer="bench")
        await bus.log.append(event, 0)
    return APPENDS / (time.perf_counter() - started)


async def _replay(replay: Callable[..., Coroutine[object, object, int]], bus: Bus, target: Path,
                  count: int) -> tuple[int, float, int | None, int | None]:
    """(events replayed, seconds, rows rebuilt, objects a cycle collection found after it — the last
    two None when stopped at the limit). The replay pauses the cycle collector: the last figure says
    what it would have found."""
    gc.collect()  # what the publishing left: not the replay's
    started = time.perf_counter()
    task = asyncio.create_task(replay(target, bus, timeout=30))
    while True:
        finished, _ = await asyncio.wait({task}, timeout=1.0)
        if finished:
            elapsed = time.perf_counter() - started
            return count, elapsed, task.result(), gc.collect()
        if time.perf_counter() - started > LIMIT_S:
            reached = position(target.parent, target.name)
            elapsed = time.perf_counter() - started
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return reached, elapsed, None, None
