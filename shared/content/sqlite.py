"""The content source on SQLite via aiosqlite: the zero-setup default of the local stack.

Reads use read-only connections kept open between queries (a few idle ones at most), and pull rows
from the cursor in batches of ``READ_BATCH`` in a worker thread, so a tenant's rows stream.

Why keep them: opening a connection (and reading the schema again) per query cost the catalog
~2.8 ms of CPU per small export of five queries, more than reading their rows. A kept connection is
closed and replaced when the file at ``path`` is no longer the one it opened (a restore, a new seed).
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite

from shared.content import schema
from shared.content.port import ClaimHeld, ContentRejected, ContentUnavailable, Row, checked_rows, claim_digest

READ_BATCH = 500  # rows per worker-thread hop
IDLE_CONNECTIONS = 4  # read-only connections kept open between queries
# SQLite keeps whatever bytes a platform wrote into a TEXT column. Text that is not UTF-8 made
# sqlite3's default (``str``) raise "Could not decode to UTF-8", which failed the tenant's every
# export; it is read with each undecodable byte as U+FFFD (valid UTF-8 reads exactly as before; a
# C-level call, no Python frame per value). A BLOB comes back as bytes: see :func:`_as_text`.
_TEXT = functools.partial(str, encoding="utf-8", errors="replace")


def _as_text(row: sqlite3.Row) -> Row:
    """The row as the port gives it (PostgreSQL never returns bytes): a BLOB, which SQLite keeps in
    any column, as text like :data:`_TEXT` reads it (rendering refused bytes: "an internal error")."""
    out = dict(row)
    if bytes in map(type, out.values()):
        return {k: _TEXT(v) if isinstance(v, bytes) else v for k, v in out.items()}
    return out


class SqliteContent:
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
        db.text_factory = _TEXT
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
            async with aiosqlite.connect(self.path) as db:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.executescript(schema.SQLITE_SCHEMA)
                await db.commit()
        except sqlite3.DatabaseError as e:
            raise ContentUnavailable(f"the content database {self.path} cannot be used: {e}") from None

    async def _rows(self, sql: str, *args: Any) -> AsyncIterator[Row]:
        # Plain sqlite3, one worker-thread hop per batch (the first one also finds a connection): an
        # aiosqlite connection starts a thread of its own and hops once per call, which made a small
        # export's three queries cost more CPU than reading their rows.
        def first() -> tuple[tuple[sqlite3.Connection, int], sqlite3.Cursor, list[sqlite3.Row]]:
            kept = self._connect()
            try:
                cursor = kept[0].execute(sql, args)
                return kept, cursor, cursor.fetchmany(READ_BATCH)
            except BaseException:
                kept[0].close()
                raise

        try:
            kept, cursor, rows = await asyncio.to_thread(first)
            whole = False
            try:  # one thread at a time uses the connection: each hop is awaited before the next
                while rows:
                    for row in rows:
                        yield _as_text(row)
                    if len(rows) < READ_BATCH:
                        break
                    rows = await asyncio.to_thread(cursor.fetchmany, READ_BATCH)
                whole = True
            finally:
                if whole:  # read to the end: the connection is idle and well
                    cursor.close()  # ends the read transaction: a kept connection holds no snapshot
                    self._release(kept)
                else:  # failed, cancelled (a fetch may still run in its thread) or abandoned
                    kept[0].close()
        except FileNotFoundError:
            raise ContentUnavailable(f"the content database {self.path} does not exist") from None
        except sqlite3.DatabaseError as e:
            raise ContentUnavailable(f"the content database {self.path} cannot be read: {e}") from None

    def posts(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._rows(schema.POSTS, tenant_id)

    def pages(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._rows(schema.PAGES, tenant_id)

    def media(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._rows(schema.MEDIA, tenant_id)

    def amber_files(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._rows(schema.AMBER, tenant_id)

    async def tenant(self, tenant_id: str) -> Row | None:
        rows = [row async for row in self._rows(schema.TENANT, tenant_id)]  # to the end: keeps the connection
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
            async with aiosqlite.connect(self.path) as db:
                await db.execute("PRAGMA foreign_keys=ON")
                try:  # one transaction: executemany opens it, commit ends it; any failure undoes every table
                    for table, cols, values in checked:
                        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
                        await db.executemany(sql, values)
                    await db.commit()
                except BaseException:
                    await db.rollback()
                    raise
        except sqlite3.IntegrityError as e:
            raise ContentRejected(f"{table}: {e}") from None
        except sqlite3.DatabaseError as e:
            raise ContentUnavailable(f"the content database {self.path} cannot be written: {e}") from None
        return sum(len(values) for _, _, values in checked)

    @asynccontextmanager
    async def import_claim(self, tenant_id: str) -> AsyncIterator[None]:
        """An exclusive ``flock`` on a file of its own beside the database (``<db>.imports/``), taken
        without waiting; the kernel releases it when its holder dies. The file is removed on release
        while still locked; a claimer that opened it just before finds it unlinked and tries again."""
        folder = self.path.with_name(self.path.name + ".imports")
        path = folder / f"{claim_digest(tenant_id).hex()[:32]}.lock"
        try:
            folder.mkdir(exist_ok=True)
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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
        except OSError as e:
            raise ContentUnavailable(f"the import claim beside {self.path} cannot be taken: {e}") from None
        try:
            yield
        finally:
            try:
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)

    async def close(self) -> None:
        """Close the kept connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for db, _ in idle:
            db.close()
