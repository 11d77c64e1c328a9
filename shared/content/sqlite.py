"""The content source on SQLite via aiosqlite: the zero-setup default of the local stack.

Reads use read-only connections kept open between queries (a few idle ones at most), and pull rows
from the cursor in batches of ``READ_BATCH`` in a worker thread, so a tenant's rows stream. A
:meth:`SqliteContent.read` is one read transaction on one connection: every query in it sees the
same snapshot of the file.

Why keep them: opening a connection (and reading the schema again) per query cost the catalog
~2.8 ms of CPU per small export of five queries, more than reading their rows. A kept connection is
closed and replaced when the file at ``path`` is no longer the one it opened (a restore, a new seed).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from shared.content import schema
from shared.content.port import (
    ClaimHeld,
    ContentRejected,
    ContentUnavailable,
    Row,
    bytes_text,
    checked_ids,
    checked_rows,
    claim_digest,
    id_taken,
    read_ended,
    text_row,
)
from shared.content.queries import ReadQueries, SourceQueries
from shared.runtime import sqlitedb

READ_BATCH = 500  # rows per worker-thread hop
IDLE_CONNECTIONS = 4  # read-only connections kept open between queries
CHECK_BATCH = 500  # ids per query of check_write (SQLite binds at most 32,766 parameters)
CLAIM_ATTEMPTS = 100  # an import claim's tries when releases keep removing its folder under it
# SQLite keeps whatever bytes a platform wrote into a TEXT column. Text that is not UTF-8 made
# sqlite3's default (``str``) raise "Could not decode to UTF-8", which failed the tenant's every
# export; it is read with each undecodable byte as U+FFFD (port.bytes_text: valid UTF-8 reads exactly
# as before). A BLOB comes back as bytes, given as text too (port.text_row).
_T = TypeVar("_T")


class _SqliteRead(ReadQueries):
    """The streams of one :meth:`SqliteContent.read`: cursors on its one connection, inside its one
    read transaction. Rows are pulled ``READ_BATCH`` at a time in a worker thread, one hop at a
    time (two streams may be interleaved; a connection is used by one thread at a time)."""

    def __init__(self, path: Path, tenant_id: str, db: sqlite3.Connection, gate: threading.Lock) -> None:
        self._path, self._tenant_id = path, tenant_id
        self._db: sqlite3.Connection | None = db  # None once closed
        self._gate = gate  # held by the thread using the connection: it is closed only between uses
        self._cursors: list[sqlite3.Cursor] = []
        self.lock = asyncio.Lock()
        self.open = True
        self.torn = False  # a hop failed or was cancelled: the connection is not kept

    async def _hop(self, work: Callable[[], _T]) -> _T:
        async with self.lock:
            if not self.open:
                raise read_ended(self._tenant_id)
            try:
                return await asyncio.to_thread(self._gated, work)
            except sqlite3.DatabaseError as e:
                self.torn = True
                raise ContentUnavailable(f"the content database {self._path} cannot be read: {e}") from None
            except BaseException:
                self.torn = True
                raise

    def _gated(self, work: Callable[[], _T]) -> _T:
        with self._gate:
            if self._db is None:
                raise read_ended(self._tenant_id)
            return work()

    def discard(self) -> None:
        """Close the connection once no thread uses it, without waiting here: a hop cancelled, or a
        block left, while its thread still fetches (closing a connection under a fetch on another
        thread is not safe in the sqlite3 module)."""
        asyncio.get_running_loop().run_in_executor(None, _close_gated, self._gate, self)

    def _execute(self, sql: str) -> tuple[sqlite3.Cursor, list[sqlite3.Row]]:
        assert self._db is not None  # run gated: checked open
        cursor = self._db.execute(sql, (self._tenant_id,))
        self._cursors.append(cursor)
        return cursor, cursor.fetchmany(READ_BATCH)

    async def rows(self, sql: str) -> AsyncIterator[Row]:
        cursor, rows = await self._hop(functools.partial(self._execute, sql))
        while rows:
            for row in rows:
                yield text_row(row)
            if len(rows) < READ_BATCH:
                break
            del rows  # not held while the next batch is read: one batch in memory, not two
            rows = await self._hop(functools.partial(cursor.fetchmany, READ_BATCH))

    async def value(self, sql: str) -> Any:
        return await self._hop(functools.partial(self._value, sql))

    def _value(self, sql: str) -> Any:
        assert self._db is not None  # run gated: checked open
        cursor = self._db.execute(sql, (self._tenant_id,))
        try:
            return cursor.fetchone()[0]
        finally:
            cursor.close()

    def finish(self) -> None:
        """End the read transaction (in a worker thread, with no hop running): its cursors, read to
        the end or not, are closed first."""
        for cursor in self._cursors:
            cursor.close()
        self._cursors.clear()
        assert self._db is not None  # run gated: checked open
        self._db.execute("COMMIT")


def _close_gated(gate: threading.Lock, holder: Any) -> None:
    """Close ``holder._db`` once the thread using it (holding ``gate``) is done; it is used no more."""
    with gate:
        db, holder._db = holder._db, None
        if db is not None:
            db.close()


class _Begun:
    """What a read's first thread made, for :func:`_close_gated` when the read was cancelled meanwhile."""

    _db: sqlite3.Connection | None = None


class SqliteContent(SourceQueries):
    """A :class:`~shared.content.port.ContentSource` on one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._idle: list[tuple[sqlite3.Connection, int]] = []  # (connection, inode of the file it opened)
        self._lock = threading.Lock()

    def _connect(self) -> tuple[sqlite3.Connection, int]:
        """An idle connection to the file now at ``path``, else a new one (in a worker thread)."""
        inode = os.stat(self.path).st_ino
        with self._lock:
            stale = [db for db, ino in self._idle if ino != inode]
            self._idle = [kept for kept in self._idle if kept[1] == inode]
            kept = self._idle.pop() if self._idle else None
        for db in stale:
            db.close()
        if kept is not None:
            return kept
        # The path percent-encoded: a `#` or `?` in it ended the URI (another file, opened read-write), a `%41` read as `A`.
        db = sqlite3.connect(f"file:{quote(str(self.path))}?mode=ro", uri=True, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.text_factory = bytes_text
        db.isolation_level = None  # the reads' BEGIN and COMMIT are explicit (:meth:`read`)
        return db, inode

    def _release(self, kept: tuple[sqlite3.Connection, int]) -> None:
        with self._lock:
            if len(self._idle) < IDLE_CONNECTIONS:
                self._idle.append(kept)
                return
        kept[0].close()

    def __repr__(self) -> str:
        return f"SqliteContent({str(self.path)!r})"

    async def init(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await sqlitedb.connect(self.path)
            try:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.executescript(schema.SQLITE_SCHEMA)
                await db.commit()
            finally:
                await db.close()
        except sqlite3.DatabaseError as e:
            raise ContentUnavailable(f"the content database {self.path} cannot be used: {e}") from None

    @asynccontextmanager
    async def read(self, tenant_id: str) -> AsyncIterator[_SqliteRead]:
        """One read transaction on one kept connection: ``BEGIN`` and a first read of the file take
        the snapshot when the block is entered (in WAL mode, which :meth:`init` sets, writers go on
        committing meanwhile; a file in rollback-journal mode makes them wait for the block to end)."""

        gate, begun = threading.Lock(), _Begun()

        def begin() -> tuple[sqlite3.Connection, int]:
            with gate:
                kept = self._connect()
                try:
                    kept[0].execute("BEGIN")
                    kept[0].execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # the snapshot, now
                except BaseException:
                    kept[0].close()
                    raise
                begun._db = kept[0]
                return kept

        try:
            kept = await asyncio.to_thread(begin)
        except asyncio.CancelledError:
            # the thread goes on and begins the transaction: its connection is closed once it is done
            # (left, it held its snapshot for ever: no checkpoint passed it, writers of a
            # rollback-journal file waited on it)
            asyncio.get_running_loop().run_in_executor(None, _close_gated, gate, begun)
            raise
        except FileNotFoundError:
            raise ContentUnavailable(f"the content database {self.path} does not exist") from None
        except sqlite3.DatabaseError as e:
            raise ContentUnavailable(f"the content database {self.path} cannot be read: {e}") from None
        session = _SqliteRead(self.path, tenant_id, kept[0], gate)
        try:
            yield session
        except BaseException:  # failed, cancelled (a fetch may still run in its thread) or abandoned
            session.open = False
            session.discard()
            raise
        async with session.lock:  # every hop of its streams has returned (a cancelled one's thread may run on)
            session.open = False
            if session.torn:
                session.discard()
                return
            try:
                await asyncio.to_thread(session._gated, session.finish)
            except BaseException as e:
                session.discard()
                if isinstance(e, sqlite3.DatabaseError):
                    raise ContentUnavailable(f"the content database {self.path} cannot be read: {e}") from None
                raise
        self._release(kept)  # the read transaction ended: a kept connection holds no snapshot

    async def tenant(self, tenant_id: str) -> Row | None:
        rows = [row async for row in self._one(schema.TENANT, tenant_id)]  # to the end: keeps the connection
        return rows[0] if rows else None

    async def insert(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        return await self.insert_tables([(table, rows)])

    async def insert_tables(self, batches: Sequence[tuple[str, Iterable[Mapping[str, Any]]]]) -> int:
        checked = [(table, *checked_rows(table, rows, nul_ok=True, any_type_ok=True)) for table, rows in batches]
        checked = [(table, cols, values) for table, cols, values in checked if values]
        if not checked:
            return 0
        table = checked[0][0]
        try:
            db = await sqlitedb.connect(self.path)
            try:
                await db.execute("PRAGMA foreign_keys=ON")
                try:  # one transaction: executemany opens it, commit ends it; any failure undoes every table
                    for table, cols, values in checked:
                        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
                        await db.executemany(sql, values)
                    await db.commit()
                except BaseException:
                    await db.rollback()
                    raise
            finally:
                await db.close()
        except sqlite3.IntegrityError as e:
            raise ContentRejected(f"{table}: {e}") from None
        except sqlite3.DatabaseError as e:
            raise ContentUnavailable(f"the content database {self.path} cannot be written: {e}") from None
        return sum(len(values) for _, _, values in checked)

    async def check_write(self, batches: Sequence[tuple[str, Iterable[Mapping[str, Any]]]]) -> None:
        checked = [(table, checked_ids(table, rows, nul_ok=True, any_type_ok=True)[1]) for table, rows in batches]
        try:
            db = await sqlitedb.connect(self.path)
            try:
                for table, ids in checked:
                    text_ids = [i for i in ids if isinstance(i, str)]
                    for at in range(0, len(text_ids), CHECK_BATCH):
                        chunk = text_ids[at:at + CHECK_BATCH]
                        cursor = await db.execute(f"SELECT id FROM {table} WHERE id IN ({', '.join('?' * len(chunk))}) "
                                                  "LIMIT 1", chunk)  # table: checked_ids knows it (port.TABLES)
                        if (held := await cursor.fetchone()) is not None:
                            raise id_taken(table, held[0])
            finally:
                await db.close()
        except sqlite3.DatabaseError as e:
            raise ContentUnavailable(f"the content database {self.path} cannot be read: {e}") from None

    @asynccontextmanager
    async def import_claim(self, tenant_id: str) -> AsyncIterator[None]:
        """An exclusive ``flock`` on a file of its own beside the database (``<db>.imports/``), taken
        without waiting; the kernel releases it when its holder dies. The file is removed on release
        while still locked; a claimer that opened it just before finds it unlinked and tries again.
        The folder is removed after it when empty (``rmdir`` fails on a folder holding another
        tenant's claim, or a claimer's new file); a claimer that made the folder just before it went
        finds no folder to create its file in, and makes it again."""
        folder = self.path.with_name(self.path.name + ".imports")
        path = folder / f"{claim_digest(tenant_id).hex()[:32]}.lock"
        try:
            for _ in range(CLAIM_ATTEMPTS):
                folder.mkdir(exist_ok=True)
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                except FileNotFoundError:  # a holder's release removed the folder after our mkdir
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise ClaimHeld(tenant_id) from None
                try:
                    if os.stat(path).st_ino == os.fstat(fd).st_ino:
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)  # the holder before removed this file after we opened it: a new one
            else:
                raise OSError(f"its folder or file was removed under it {CLAIM_ATTEMPTS} times in a row")
        except OSError as e:
            raise ContentUnavailable(f"the import claim beside {self.path} cannot be taken: {e}") from None
        try:
            yield
        finally:
            try:
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # not empty (another claim, a claimer's new file): kept
                    folder.rmdir()
            finally:
                os.close(fd)

    async def close(self) -> None:
        """Close the kept connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for db, _ in idle:
            db.close()
