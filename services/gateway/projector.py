"""Feeds the read model from the log without a consumer: batched direct get of ``exports.>`` from
right after the last applied stream sequence, woken by the core messages of new events (a wake-up
only: what is applied is what the stream holds) and by a poll every ``IDLE_CHECK_S`` as a backstop.
:func:`replay` rebuilds the table the same way.

Each row is :func:`services.gateway.projection.row_from_state` of the export's shared fold, kept in
memory per export (:class:`Folds`, least recently used out). A miss — after a restart, or an export
pushed out — re-folds that export's events before the sequence from the log; an export with no row
yet needs no read (it starts at its ExportRequested).

An event whose body disagrees with its subject, of a type this version does not know, or that does
not parse is skipped (logged, counted) and its sequence still counts as applied: it never reaches
the table and never stops the projector.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from services.gateway.projection import Fold, advance
from services.gateway.readmodel import ReadModel
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.eventlog.directget import Stored, get_batch
from shared.eventlog.jetstream import reject
from shared.runtime.settings import Settings

log = logging.getLogger(__name__)
IDLE_CHECK_S = 2.0
REPLAY_BATCH = 5000  # events folded in memory per write when rebuilding
READ_BATCH = 1024
FOLDS_KEPT = 10_000  # exports whose fold the projector keeps in memory

Miss = Callable[[str, str, int], Awaitable[Fold | None]]


class Folds:
    """The fold of each export the projector applied, by (tenant, export). ``miss(tenant, export,
    seq)`` gives the fold of the export's events before ``seq`` when it is not kept here."""

    def __init__(self, miss: Miss | None = None, limit: int | None = FOLDS_KEPT) -> None:
        self._kept: dict[tuple[str, str], Fold] = {}  # insertion order: least recently used first
        self._miss = miss
        self._limit = limit

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        """Forget every fold (the table was reset, or may be behind what was folded)."""
        self._kept.clear()

    def get(self, tenant_id: str, export_id: str) -> Fold | None:
        return self._kept.get((tenant_id, export_id))

    async def apply(self, seq: int, event: ev.Event) -> Fold | None:
        """The export's fold after ``event``; None while it has no ExportRequested."""
        key = (event.tenant_id, event.export_id)
        fold = self._kept.pop(key, None)
        if fold is None and self._miss is not None:
            fold = await self._miss(event.tenant_id, event.export_id, seq)
        fold = advance(fold, seq, event)
        if fold is not None:
            self._kept[key] = fold
            if self._limit is not None and len(self._kept) > self._limit:
                del self._kept[next(iter(self._kept))]
        return fold


def decode(prefix: str, stored: Stored) -> ev.Event | None:
    """The event in ``stored``, or None when it is not one the read model may use."""
    try:
        return ev.decode(prefix, stored.subject, stored.data, answer=stored.answer)
    except ev.BadEvent as e:
        reject("read-model", stored.subject, e)
        return None


async def read_from(bus: Bus, start: int, batch: int = READ_BATCH) -> tuple[list[Stored], int]:
    """Stored events from sequence ``start`` on (at most ``batch``) and how many more follow."""
    got = await get_batch(bus.js, bus.log.stream, seq=start, subject=f"{bus.log.prefix}.>", batch=batch)
    return got.messages, got.pending


class Projector:
    """Keeps one :class:`ReadModel` current; one task, events applied strictly in stream order."""

    def __init__(self, bus: Bus, model: ReadModel, folds_kept: int = FOLDS_KEPT) -> None:
        self.bus = bus
        self.model = model
        self.folds = Folds(self._refold, folds_kept)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-projector")

    async def stop(self) -> None:
        # A flag as well as the cancel: on Python 3.11 a cancel that lands as an asyncio.timeout
        # expires can be swallowed as a TimeoutError, and the task would live on.
        self._stopping = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refold(self, tenant_id: str, export_id: str, seq: int) -> Fold | None:
        """The export's fold before ``seq``, from the log; no read when it has no row yet."""
        if await self.model.get(tenant_id, export_id) is None:
            return None
        fold = None
        async for at, event in self.bus.log.history(tenant_id, export_id):
            if at >= seq:
                break
            fold = advance(fold, at, event)
        return fold

    async def apply(self, stored: Stored) -> None:
        """One stored message into the table; one this version cannot use only moves the position."""
        if stored.seq <= self.model.position:
            return  # already applied (redelivery after a reconnect)
        event = decode(self.bus.log.prefix, stored)
        fold = await self.folds.apply(stored.seq, event) if event is not None else None
        await self.model.apply(stored.seq, fold.row(stored.seq) if fold else None)

    async def _on_core(self, _msg: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        sub = None
        try:
            while not self._stopping:
                try:
                    if sub is None:
                        sub = await self.bus.nc.subscribe(f"{self.bus.log.prefix}.*.*.*", cb=self._on_core)
                    info = await self.bus.js.stream_info(self.bus.log.stream)
                    identity = f"{info.config.name}@{getattr(info, 'created', '')}"
                    if await self.model.bind(identity) or self.model.position > int(info.state.last_seq):
                        log.warning("the read model was built from another stream: rebuilding it")
                        await self.model.reset()
                        self.folds.clear()
                    await self._follow()
                except Exception as exc:  # the bus is down, a read timed out: retry from the position
                    log.warning("projector restarting after %r", exc)
                    self.folds.clear()  # a fold may be ahead of the table: re-fold from the log
                    await asyncio.sleep(1.0)
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def _follow(self) -> None:
        while not self._stopping:
            self._wake.clear()
            messages, pending = await read_from(self.bus, self.model.position + 1)
            for stored in messages:
                await self.apply(stored)
            if pending:
                continue
            try:
                async with asyncio.timeout(IDLE_CHECK_S):
                    await self._wake.wait()
            except TimeoutError:
                return  # quiet for a while: re-check the stream's identity, then go on


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cycle collector off for the duration, back as it was after. A replay keeps every
    export's fold (a million objects for 100,000 events) and makes no reference cycles (a collection
    after one finds nothing): the collector only rescanned the growing folds, ~7 % of a replay's
    time. Objects are still freed as their last reference goes."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


async def replay(target: Settings | Path | str, bus: Bus, *, timeout: float = 30.0) -> int:
    """Rebuild the read model at ``target`` (settings.read_model_db or a path) from sequence 1.

    Builds a fresh file beside it and swaps it in, so a failed replay leaves the old table. Run it
    with that gateway stopped (or into a new path). Returns the number of rows.
    """
    with cyclic_gc_paused():
        return await _rebuild(target, bus, timeout)


_SIDE = ("-wal", "-shm", "-journal")  # SQLite's files beside a database


def _rebuild_files(tmp: Path) -> list[Path]:
    return [tmp, *(Path(f"{tmp}{side}") for side in _SIDE)]


def _claimed(path: Path) -> tuple[Path, int]:
    """A new ``<path>.replay-<hex>`` file for a rebuild, made here (empty: SQLite takes it as a new
    database) and locked (``flock``) for as long as the rebuild holds the descriptor: a rebuild that
    is killed (SIGKILL, the out-of-memory killer) loses the lock with its process, and
    :func:`remove_left_rebuilds` then knows its files for no one's."""
    for _ in range(5):
        tmp = path.with_name(f"{path.name}.replay-{uuid.uuid4().hex[:8]}")
        try:  # its folder made as ReadModel.open makes it, and a failure said as SQLite's (the CLI's one line)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            if tmp.exists():  # another rebuild drew the same name
                continue
            raise sqlite3.OperationalError("unable to open database file") from None  # its folder a file
        except OSError:
            raise sqlite3.OperationalError("unable to open database file") from None  # SQLite's own words
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return tmp, fd
        except FileNotFoundError:  # a clean-up took it between its making and its lock: make another
            pass
        os.close(fd)
    raise OSError(f"could not make a file beside {path} to rebuild it in")


def left_rebuilds(path: Path) -> tuple[list[Path], list[Path]]:
    """The files of rebuilds of the read model at ``path`` beside it (``<name>.replay-<hex>`` and its
    ``-wal``/``-shm``/``-journal``): those a killed replay left (no process holds their lock), and
    those of a replay running now."""
    return _rebuilds(path, remove=False)


def remove_left_rebuilds(path: Path) -> list[Path]:
    """Remove the files rebuilds of the read model at ``path`` left beside it when they were killed: a
    killed replay could not clean up, and its half-built file — the requesters' addresses in it —
    stayed there for good, seen by no replay after it and by no erase-tenant. A rebuild still running
    holds its file's lock and is left alone. Returns the files removed."""
    return _rebuilds(path, remove=True)[0]


def _rebuilds(path: Path, *, remove: bool) -> tuple[list[Path], list[Path]]:
    own = re.compile(re.escape(path.name) + r"\.replay-[0-9a-f]{8}(-wal|-shm|-journal)?")
    try:
        found = sorted(p for p in path.parent.iterdir() if own.fullmatch(p.name))
    except OSError:  # no such folder (yet), or its folder a file: nothing left there
        return [], []
    left: list[Path] = []
    running: list[Path] = []
    for main in sorted({p.with_name(p.name.removesuffix(side)) for p in found for side in _SIDE
                        if p.name.endswith(side)} | {p for p in found if not p.name.endswith(_SIDE)}):
        try:
            fd = os.open(main, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:  # only its -wal or -shm left (a clean-up cut short): no one's
            fd = None
        except OSError:  # a link, something that is not ours: left as it is
            continue
        try:
            files = [f for f in _rebuild_files(main) if f.exists() or f.is_symlink()]
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # a replay running now
                    running += files
                    continue
            left += files
            if remove:  # under the lock: no rebuild can take these files meanwhile
                for file in files:
                    file.unlink(missing_ok=True)
        finally:
            if fd is not None:
                os.close(fd)
    return left, running


async def _rebuild(target: Settings | Path | str, bus: Bus, timeout: float) -> int:
    path = Path(target.read_model_db if isinstance(target, Settings) else target)
    for left in remove_left_rebuilds(path):
        log.info("replay: removed %s, left by a replay that was killed", left)
    tmp, lock = _claimed(path)
    try:
        return await _rebuild_in(path, tmp, bus, timeout)
    finally:
        os.close(lock)


async def _rebuild_in(path: Path, tmp: Path, bus: Bus, timeout: float) -> int:
    try:
        model = await ReadModel.open(tmp)
    except BaseException:  # made, then its schema not written (a full disk): it was left beside the read model
        for made in _rebuild_files(tmp):
            with contextlib.suppress(OSError):  # its folder a file: nothing was made, and the error stays SQLite's
                made.unlink(missing_ok=True)
        raise
    # Three things overlap: the next batch is read from the stream and the last rows are written
    # (SQLite's own thread) while this one is decoded and folded. Writes stay in order, one at a time.
    reading: asyncio.Task[tuple[list[Stored], int]] | None = None
    writing: asyncio.Task[None] | None = None
    try:
        last = int((await bus.js.stream_info(bus.log.stream)).state.last_seq)
        folds = Folds(limit=None)  # from sequence 1: every export's fold is here, none is missed
        dirty: dict[tuple[str, str], int] = {}  # export → its last sequence
        reached = pending = 0
        reading = asyncio.create_task(read_from(bus, 1, REPLAY_BATCH))
        while reading is not None:
            async with asyncio.timeout(timeout):
                messages, more = await reading
            reading = None
            if messages and more and messages[-1].seq < last:
                reading = asyncio.create_task(read_from(bus, messages[-1].seq + 1, REPLAY_BATCH))
            for stored in messages:  # fold in memory: no SELECT, no transaction per event
                reached = stored.seq
                event = decode(bus.log.prefix, stored)
                if event is None:
                    continue
                if await folds.apply(reached, event) is not None:
                    dirty[(event.tenant_id, event.export_id)] = reached
            pending += len(messages)
            if pending >= REPLAY_BATCH or reading is None:  # a batch's worth, or the end
                rows = [fold.row(seq) for (t, e), seq in dirty.items() if (fold := folds.get(t, e))]
                if writing is not None:
                    await writing
                writing = asyncio.create_task(model.write_rows([r for r in rows if r is not None], reached))
                dirty.clear()
                pending = 0
        if writing is not None:
            await writing
        count = len(await model.dump())
    except BaseException:
        for task in (reading, writing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await model.close()
        for made in _rebuild_files(tmp):
            made.unlink(missing_ok=True)
        raise
    await model.close()
    for stale in (Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        stale.unlink(missing_ok=True)
    try:
        os.replace(tmp, path)
    except BaseException:  # the path is a folder, its folder went away: the rebuilt file is no one's
        tmp.unlink(missing_ok=True)
        raise
    return count
