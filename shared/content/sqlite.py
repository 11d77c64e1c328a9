"""The content source on SQLite via aiosqlite: the zero-setup default of the local stack.

Reads open the file read-only, one connection per query, and pull rows from the cursor in batches
of ``READ_BATCH`` in a worker thread, so a tenant's rows stream.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiosqlite

from shared.content import schema
from shared.content.port import ContentRejected, ContentUnavailable, Row, checked_rows

READ_BATCH = 500  # rows per worker-thread hop


class SqliteContent:
    """A :class:`~shared.content.port.ContentSource` on one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

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
        # Plain sqlite3, one worker-thread hop per batch (the first one also opens the file): an
        # aiosqlite connection starts a thread of its own and hops once per call, which made a small
        # export's three queries cost more CPU than reading their rows.
        def first() -> tuple[sqlite3.Connection, sqlite3.Cursor, list[sqlite3.Row]]:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            try:
                db.row_factory = sqlite3.Row
                cursor = db.execute(sql, args)
                return db, cursor, cursor.fetchmany(READ_BATCH)
            except BaseException:
                db.close()
                raise

        try:
            db, cursor, rows = await asyncio.to_thread(first)
            try:  # one thread at a time uses the connection: each hop is awaited before the next
                while rows:
                    for row in rows:
                        yield dict(row)
                    if len(rows) < READ_BATCH:
                        break
                    rows = await asyncio.to_thread(cursor.fetchmany, READ_BATCH)
            finally:
                db.close()
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
        async for row in self._rows(schema.TENANT, tenant_id):
            return row
        return None

    async def insert(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        cols, values = checked_rows(table, rows, nul_ok=True)
        if not values:
            return 0
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        try:
            async with aiosqlite.connect(self.path) as db:
                await db.execute("PRAGMA foreign_keys=ON")
                await db.executemany(sql, values)
                await db.commit()
        except sqlite3.IntegrityError as e:
            raise ContentRejected(f"{table}: {e}") from None
        except sqlite3.DatabaseError as e:
            raise ContentUnavailable(f"the content database {self.path} cannot be written: {e}") from None
        return len(values)

    async def close(self) -> None:
        """Nothing is held open between calls."""
