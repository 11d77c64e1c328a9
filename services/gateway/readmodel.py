"""The gateway's read model: one SQLite ``storage_exports`` table per gateway process.

Every row is the shared fold of the export's events (:func:`services.gateway.projection.row_from_state`,
computed by the projector). The stream sequence
of the last applied event is stored in ``projector_position`` in the same transaction as the row,
so a restart resumes exactly after it and a replay from sequence 1 ends identical.

Rows are keyed by (tenant, export): an export id names nothing on its own (an event on another
tenant's subject with the same export id is another export). A table from before that key
(``PRAGMA user_version`` < 2), or without the ``eta_seconds`` column (< 3), is dropped at open and
rebuilt from the log by the projector.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import fields
from pathlib import Path

import aiosqlite

from services.gateway.projection import Row
from shared.runtime import sqlitedb

_TYPES = {"include_images": "INTEGER NOT NULL DEFAULT 1", "progress": "INTEGER NOT NULL DEFAULT 0",
          "created_at": "INTEGER NOT NULL", "id": "TEXT NOT NULL", "tenant_id": "TEXT NOT NULL",
          "user_email": "TEXT NOT NULL", "mode": "TEXT NOT NULL DEFAULT 'blog'",
          "delivery_method": "TEXT NOT NULL DEFAULT 'email'", "status": "TEXT NOT NULL DEFAULT 'pending'", "eta_seconds": "REAL"}
COLUMNS = Row.columns()
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS storage_exports (\n  "
    + ",\n  ".join(f"{f.name} {_TYPES.get(f.name, 'INTEGER' if 'int' in str(f.type) else 'TEXT')}"
                   for f in fields(Row)) + ",\n  PRIMARY KEY (tenant_id, id)\n)",
    "CREATE INDEX IF NOT EXISTS idx_exports_tenant ON storage_exports(tenant_id, status)",
    "CREATE INDEX IF NOT EXISTS idx_exports_expiry ON storage_exports(status, expires_at)",
    # The history's order: the stream sequence of each request, the order the server took them in.
    # ``created_at`` is the publisher's own clock (an API gateway of one's own may be years off).
    "CREATE INDEX IF NOT EXISTS idx_exports_requested ON storage_exports(tenant_id, requested_seq)",
    "DROP INDEX IF EXISTS idx_exports_recent",  # the old order's (by created_at)
    "CREATE TABLE IF NOT EXISTS projector_position (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "last_seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projector_stream (id INTEGER PRIMARY KEY CHECK (id = 1), identity TEXT NOT NULL)",
]
SCHEMA_VERSION = 3  # 2: keyed by (tenant_id, id); 3: eta_seconds from the shared fold
_UPSERT = (f"INSERT OR REPLACE INTO storage_exports ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)})")


class ReadModel:
    """The table, applied to one event at a time; reads are tenant-scoped."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.position = 0
        self._moved = asyncio.Condition()

    @classmethod
    async def open(cls, path: Path | str) -> ReadModel:
        if str(path) != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:  # a file where its folder goes, a place none can be made: as SQLite says it
                raise sqlite3.OperationalError(f"cannot make its folder: {e.strerror or e}") from None
        db = await sqlitedb.connect(path)
        try:
            return await cls._opened(db)
        except BaseException:  # not a read model, a full disk: the connection and its thread end here too
            await db.close()
            raise

    @classmethod
    async def _opened(cls, db: aiosqlite.Connection) -> ReadModel:
        # A projection of the log: WAL + synchronous=NORMAL keeps each commit atomic and the stored
        # position consistent with the rows; a power cut can lose only the last commits, which the
        # projector re-applies from the log (it resumes after the stored position).
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        # Each event rewrites its export's row (INSERT OR REPLACE): without this, on an SQLite built
        # without SQLITE_SECURE_DELETE, every former version of the row — the requester's address
        # in each — stayed in the file's free space, also after erase-tenant deleted the row.
        await db.execute("PRAGMA secure_delete=ON")
        async with db.execute("PRAGMA user_version") as cur:
            version = int((await cur.fetchone() or (0,))[0])
        if version < SCHEMA_VERSION:  # an older key: rebuild from the log rather than migrate rows
            for table in ("storage_exports", "projector_position", "projector_stream"):
                await db.execute(f"DROP TABLE IF EXISTS {table}")
            await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        for statement in SCHEMA:
            await db.execute(statement)
        await db.commit()
        model = cls(db)
        async with db.execute("SELECT last_seq FROM projector_position WHERE id = 1") as cur:
            found = await cur.fetchone()
        model.position = int(found[0]) if found else 0
        return model

    async def bind(self, identity: str) -> bool:
        """Tie the table to one stream (its name and creation time); a table built from another
        stream is emptied first. True when it was reset."""
        async with self.db.execute("SELECT identity FROM projector_stream WHERE id = 1") as cur:
            found = await cur.fetchone()
        if found and found[0] == identity:
            return False
        reset = found is not None  # a table without an identity (fresh, or replayed) is adopted
        if reset:
            await self.reset()
        await self.db.execute("INSERT OR REPLACE INTO projector_stream (id, identity) VALUES (1, ?)", (identity,))
        await self.db.commit()
        return reset

    async def reset(self) -> None:
        """Forget everything (the table was built from another stream than the one we now read)."""
        await self.db.execute("DELETE FROM storage_exports")
        await self.db.execute("DELETE FROM projector_position")
        await self.db.commit()
        self.position = 0

    async def close(self) -> None:
        await self.db.close()

    async def apply(self, seq: int, row: Row | None) -> None:
        """Store the row the event at ``seq`` produced (None: an event that makes no row, such as one
        this version does not know) and the position, in one transaction."""
        if seq <= self.position:
            return  # already applied (redelivery after a reconnect)
        if row is not None:
            await self.db.execute(_UPSERT, row.values())
        await self.db.execute("INSERT OR REPLACE INTO projector_position (id, last_seq) VALUES (1, ?)", (seq,))
        await self.db.commit()
        async with self._moved:
            self.position = seq
            self._moved.notify_all()

    async def write_rows(self, rows: list[Row], seq: int) -> None:
        """Upsert whole rows and move the position to ``seq`` in one transaction (replay)."""
        await self.db.executemany(_UPSERT, [r.values() for r in rows])
        await self.db.execute("INSERT OR REPLACE INTO projector_position (id, last_seq) VALUES (1, ?)", (seq,))
        await self.db.commit()
        async with self._moved:
            self.position = seq
            self._moved.notify_all()

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until ``seq`` is applied (read-your-writes); False when the deadline passed first."""
        try:
            async with asyncio.timeout(timeout), self._moved:
                await self._moved.wait_for(lambda: self.position >= seq)
        except TimeoutError:
            return False
        return True

    async def _row(self, tenant_id: str, export_id: str) -> Row | None:
        async with self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM storage_exports "
                                   "WHERE tenant_id = ? AND id = ?", (tenant_id, export_id)) as cur:
            found = await cur.fetchone()
        return Row(*found) if found else None

    async def get(self, tenant_id: str, export_id: str) -> Row | None:
        return await self._row(tenant_id, export_id)

    async def recent(self, tenant_id: str, limit: int = 10) -> list[Row]:
        async with self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM storage_exports WHERE tenant_id = ? "
            "ORDER BY requested_seq DESC LIMIT ?", (tenant_id, limit)) as cur:
            return [Row(*r) async for r in cur]

    async def dump(self) -> list[tuple[object, ...]]:
        """Every row, by id: for comparing a replay with the live table."""
        async with self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM storage_exports ORDER BY tenant_id, id") as cur:
            return [tuple(r) async for r in cur]
