"""What the benchmark sections share: the run's infrastructure, seeding, timelines, /proc readers,
and the result rows the table is made of."""

from __future__ import annotations

import asyncio
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from services.devtools.stack.natsserver import NatsServer
from services.devtools.stack.supervisor import Stack
from shared.bus.connect import Bus, connect
from shared.content.factory import content_source, sqlite_path
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.support.env import build, s3_values, settings_for
from tests.support.stack import STEP_SERVICES, start_stack

MiB = 1024 * 1024
MB = 1_000_000
JPEG_MAGIC = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


# -- results ---------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table: a figure beside its goal."""

    section: str
    what: str
    figure: str
    goal: str = ""
    ok: bool | None = None  # None: informational, no goal
    note: str = ""

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "SHORT")


@dataclass
class SectionResult:
    number: str
    title: str
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    load: str = ""  # /proc/loadavg (1-minute) before → after: other work on the machine


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return float("nan")


# -- the machine -----------------------------------------------------------------------------
def machine() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    except OSError:
        pass
    import zlib

    return {
        "python loop": f"{python_loop():.2f} s",
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count()),
        "cpu": model,
        "memory": mem,
        "python": platform.python_version(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "kernel": platform.release(),
    }


def python_loop() -> float:
    """Seconds for a fixed pure-Python loop, best of three: CPU-bound rows (the burst) scale with it."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        sum(i * i for i in range(10**7))
        best = min(best, time.perf_counter() - started)
    return best


# -- /proc -----------------------------------------------------------------------------------
def proc_status_kb(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for pid {pid}")


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set size since the process started (Linux ``VmHWM``)."""
    return proc_status_kb(pid, "VmHWM")


def proc_io(pid: int) -> dict[str, int]:
    """``/proc/<pid>/io`` of the whole thread group: rchar counts bytes passed to read()/pread()."""
    out = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k.strip()] = int(v)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# -- the run's infrastructure ------------------------------------------------------------------
class World:
    """One bench run: a scratch folder, one nats-server, one moto process (started on first use).

    Sections isolate themselves by stream, subject prefix, KV prefix and buckets (``settings_for``).
    ``shared`` lets a section leave something for a later one (e.g. seeded S3 sources)."""

    def __init__(self, root: Path, quick: bool = False) -> None:
        self.root = root
        self.quick = quick
        self.nats: NatsServer | None = None
        self.moto: subprocess.Popen[bytes] | None = None
        self.moto_url = ""
        self.shared: dict[str, Any] = {}
        self.servers: dict[str, NatsServer] = {}  # sections' own (``deployed``), by name

    def start(self) -> World:
        self.root.mkdir(parents=True, exist_ok=True)
        self.nats = NatsServer(self.root / "nats", log_file=self.root / "nats.log").start()
        return self

    def ensure_moto(self) -> str:
        if not self.moto_url:
            from tests.fixtures.moto import start_moto

            self.moto, self.moto_url = start_moto()
        return self.moto_url

    def dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def values(self, name: str, *, s3: bool = False, **overrides: Any) -> dict[str, Any]:
        assert self.nats is not None
        extra = s3_values(self.ensure_moto()) if s3 else {}
        return settings_for(self.dir(name), self.nats.url, **{**extra, **overrides})

    def deployed(self, name: str, **overrides: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """A section's values on a nats-server of its own configured as deployed: the generated
        accounts block (the stream and buckets in STORE, each service its own user in SVC_<user>). The
        values connect as admin (the bench's own connections); the passwords are for the services
        (``start_ready_stack(..., users=)``): each then runs as its own user, as in production."""
        from shared.bus.permissions import ADMIN, USERS, render_accounts

        users = {n: f"bench-{n}-{secrets.token_hex(4)}" for n in (ADMIN, *(u.name for u in USERS))}
        values = settings_for(self.dir(name), "", **overrides)
        conf = self.dir(name) / "accounts.conf"
        conf.write_text(render_accounts(users, prefix=values["subject_prefix"], kv_prefix=values["kv_prefix"],
                                        stream=values["stream_name"]))
        server = NatsServer(self.dir(name) / "nats", config_file=conf, log_file=self.dir(name) / "nats.log").start()
        self.servers[name] = server
        values |= {"nats_url": server.url, "nats_user": ADMIN, "nats_password": users[ADMIN]}
        return values, users

    def stop(self, keep: bool = False) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        if self.moto is not None:
            from tests.fixtures.moto import stop_moto

            stop_moto(self.moto)
            self.moto = None
        if self.nats is not None:
            self.nats.stop()
            self.nats = None
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Env:
    """Settings, store and bus of one section (the bench process's own connections)."""

    values: dict[str, Any]
    settings: Settings
    store: ObjectStore
    bus: Bus

    @classmethod
    async def open(cls, values: dict[str, Any]) -> Env:
        settings = build(values)
        store = await open_store(settings, create_buckets=True)
        bus = await connect(settings, "bench", ensure=True)
        return cls(values, settings, store, bus)

    async def close(self) -> None:
        await self.bus.close()
        await self.store.close()


async def wait_consumers_ready(env: Env, durables: tuple[str, ...], timeout: float = 60.0) -> None:
    """Wait until every durable has a pull request waiting: the service is up and fetching."""
    deadline = time.monotonic() + timeout
    pending = set(durables)
    while pending and time.monotonic() < deadline:
        for d in list(pending):
            try:
                info = await env.bus.js.consumer_info(env.settings.stream_name, d)
                if (info.num_waiting or 0) > 0:
                    pending.discard(d)
            except Exception:
                pass
        if pending:
            await asyncio.sleep(0.1)
    if pending:
        raise RuntimeError(f"services not ready after {timeout}s: {sorted(pending)}")


STEP_DURABLES = ("catalog", "assembler", "finalizer", "notifier", "canceller")


async def start_ready_stack(env: Env, data_dir: Path, services: tuple[str, ...] = STEP_SERVICES,
                            extra_env: dict[str, str] | None = None,
                            replicas: dict[str, int] | None = None, users: dict[str, str] | None = None) -> Stack:
    stack = start_stack(data_dir, env.values, services=services, extra_env=extra_env, replicas=replicas, users=users)
    try:
        durables = tuple(d for d in STEP_DURABLES
                         if (d in ("canceller",) and "assembler" in services) or d in services)
        await wait_consumers_ready(env, durables)
    except BaseException:
        stack.stop()
        raise
    return stack


# -- seeding -----------------------------------------------------------------------------------
MEDIA_COLUMNS = ("id", "tenant_id", "filename", "original_name", "r2_key", "url", "size", "mime_type",
                 "alt_text", "uploaded_at")


def media_row(tenant_id: str, i: int, key: str, filename: str, size: int, now: int) -> dict[str, Any]:
    return {"id": f"med_{i + 1}_{tenant_id}", "tenant_id": tenant_id, "filename": filename,
            "original_name": filename, "r2_key": key, "url": f"https://cdn.example/{key}", "size": size,
            "mime_type": "image/jpeg", "alt_text": f"image {i + 1}", "uploaded_at": now - i}


def random_pool(seed: int, size: int = 32 * MiB) -> bytes:
    """Random bytes to cut sources from (generating fresh random bytes runs at ~80 MB/s here)."""
    rng = random.Random(seed)
    return b"".join(rng.randbytes(MiB) for _ in range(size // MiB))


def pseudo_photo(pool: bytes, i: int, size: int) -> bytes:
    """An incompressible "photo": a JFIF marker, 16 unique bytes, then a window of the random pool
    (windows repeat only megabytes apart, far beyond deflate's 32 KiB reach)."""
    head = JPEG_MAGIC + uuid.uuid4().bytes
    body = size - len(head)
    start = (i * 7_340_033) % (len(pool) - body)
    return head + pool[start:start + body]


async def seed_random_images(env: Env, *, images: int, image_bytes: int, posts: int, seed: int = 11,
                             concurrency: int = 8) -> tuple[str, int]:
    """A tenant with ``posts`` text posts (+3 pages) and ``images`` incompressible JPEG-typed images
    of ``image_bytes`` each (random bytes after a JFIF marker: stored at level 0, like photos).
    Returns (tenant id, sum of image bytes)."""
    s = env.settings
    seeded = await seed_tenant(content_source(s), env.store, images_bucket=s.buckets.images,
                               amber_bucket=s.buckets.amber, posts=posts, pages=3, images=0, files=0, seed=seed)
    tenant = seeded.tenant_id
    pool = random_pool(seed)
    now = int(datetime.now(UTC).timestamp())
    gate = asyncio.Semaphore(concurrency)
    rows: list[dict[str, Any]] = []

    async def one(i: int) -> None:
        data = pseudo_photo(pool, i, image_bytes)
        filename = f"photo-{i + 1:04d}.jpg"
        key = f"{tenant}/media/{uuid.uuid4().hex[:8]}-{filename}"
        async with gate:
            await env.store.put(s.buckets.images, key, data, "image/jpeg")
        rows.append(media_row(tenant, i, key, filename, len(data), now))

    await asyncio.gather(*(one(i) for i in range(images)))
    await content_source(s).insert("media", rows)
    return tenant, images * image_bytes


async def seed_fs_big_files(env: Env, *, total_bytes: int, file_bytes: int, seed: int = 5,
                            posts: int = 20) -> tuple[str, list[Path]]:
    """A tenant whose images are big generated files written straight into the filesystem store's
    images folder (``<root>/<bucket>/<key>``; the store computes their ETags lazily on first HEAD),
    with media rows inserted in the content DB. Returns (tenant id, the files written)."""
    s = env.settings
    assert s.store == "fs"
    seeded = await seed_tenant(content_source(s), env.store, images_bucket=s.buckets.images,
                               amber_bucket=s.buckets.amber, posts=posts, pages=3, images=0, files=0, seed=seed)
    tenant = seeded.tenant_id
    block = random_pool(seed)[: 8 * MiB]
    now = int(datetime.now(UTC).timestamp())
    rows, paths = [], []
    left, i = total_bytes, 0

    def write(path: Path, size: int, tag: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(JPEG_MAGIC + tag)
            done = len(JPEG_MAGIC) + len(tag)
            while done < size:
                chunk = block[: min(len(block), size - done)]
                f.write(chunk)
                done += len(chunk)

    while left > 0:
        size = min(file_bytes, left)
        filename = f"big-{i + 1:04d}.jpg"
        key = f"{tenant}/media/{uuid.uuid4().hex[:8]}-{filename}"
        path = Path(s.store_root) / s.buckets.images / key
        await asyncio.to_thread(write, path, size, uuid.uuid4().bytes)
        paths.append(path)
        rows.append(media_row(tenant, i, key, filename, size, now))
        left -= size
        i += 1
    await content_source(s).insert("media", rows)
    return tenant, paths


async def delete_tenant_media(env: Env, tenant: str, paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)
        p.with_name(f".{p.name}.etag").unlink(missing_ok=True)
    async with aiosqlite.connect(sqlite_path(env.settings.content_dsn.get_secret_value()) or "") as db:
        await db.execute("DELETE FROM media WHERE tenant_id = ?", (tenant,))
        await db.commit()


# -- exports -----------------------------------------------------------------------------------
@dataclass
class Timeline:
    """When each event of an export was appended (first occurrence), from the events' own clocks."""

    first: dict[str, datetime]
    events: list[tuple[int, ev.Event]]

    def at(self, name: str) -> datetime:
        return self.first[name]

    def seconds(self, a: str, b: str) -> float:
        return (self.first[b] - self.first[a]).total_seconds()

    def count(self, name: str) -> int:
        return sum(1 for _, e in self.events if e.name() == name)

    def phases(self) -> str:
        """Where an export's time went, from its events."""
        return (f"catalog {self.seconds('ExportRequested', 'ExportCataloged'):.1f} s, UploadStarted → first "
                f"PartUploaded {self.seconds('UploadStarted', 'PartUploaded'):.1f} s, streaming "
                f"{self.seconds('UploadStarted', 'ArchiveAssembled'):.1f} s, finalize "
                f"{self.seconds('ArchiveAssembled', 'ExportCompleted'):.1f} s")

    def last(self, name: str) -> ev.Event:
        return [e for _, e in self.events if e.name() == name][-1]


async def timeline(env: Env, tenant: str, export_id: str) -> Timeline:
    events = [(seq, e) async for seq, e in env.bus.log.history(tenant, export_id)]
    first: dict[str, datetime] = {}
    for _, e in events:
        first.setdefault(e.name(), e.occurred_at)
    return Timeline(first, events)


# -- formatting --------------------------------------------------------------------------------
def mbps(nbytes: float, seconds: float) -> float:
    return nbytes / seconds / MB if seconds > 0 else float("inf")


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the gateway -------------------------------------------------------------------------------
@dataclass
class Gateway:
    """The gateway as its own process (``python -m services.cli run gateway``), optionally with the
    step services in another supervised group, all on one section's settings (filesystem store)."""

    env: Env
    gateway: Stack
    steps: Stack | None
    base: str

    @property
    def pid(self) -> int:
        pid = self.gateway.child("gateway").pid
        assert pid is not None
        return pid

    def token(self, tenant: str, username: str = "autumn") -> str:
        from services.gateway.auth import make_token

        return make_token(self.env.settings, tenant=tenant, user=f"u_{tenant}", email=f"{username}@example.org",
                          username=username, ttl_s=3600)

    def stop_steps(self) -> None:
        if self.steps is not None:
            self.steps.stop()
            self.steps = None

    async def close(self) -> None:
        self.stop_steps()
        self.gateway.stop()
        await self.env.close()


async def start_gateway(world: World, name: str, *, steps: bool = True) -> Gateway:
    from services.devtools.stack.natsserver import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    values = world.values(name, public_url=base, mail={"download_page_url": f"{base}/export"})
    env = await Env.open(values)
    step_stack = None
    try:
        if steps:
            step_stack = await start_ready_stack(env, world.dir(name) / "steps")
        gw = start_stack(world.dir(name) / "gateway", values, services=("gateway",), port=port)
        try:
            if not await asyncio.to_thread(gw.wait_gateway):
                raise RuntimeError(f"the gateway at {base} did not become ready")
        except BaseException:
            gw.stop()
            raise
    except BaseException:
        if step_stack is not None:
            step_stack.stop()
        await env.close()
        raise
    return Gateway(env, gw, step_stack, base)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]
