"""The content source on PostgreSQL via asyncpg, with a connection pool.

Reads run a server-side cursor inside a read-only transaction and fetch ``FETCH_ROWS`` rows at a
time, so a tenant with 100,000 posts costs one batch of rows in memory, not all of them. A
:meth:`PostgresContent.read` runs all of its queries on one connection in one ``REPEATABLE READ
READ ONLY`` transaction: one snapshot of the tenant. Writes
use COPY (one round trip for many rows) inside one transaction: all rows (of every table) or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import asyncpg

from shared.content import schema
from shared.content.port import (
    INTEGER_COLUMNS,
    TABLES,
    ClaimHeld,
    ContentRejected,
    ContentUnavailable,
    Row,
    checked_ids,
    checked_rows,
    claim_digest,
    id_taken,
    read_ended,
    text_row,
)
from shared.content.queries import ReadQueries, SourceQueries

# Rows per round trip of a server-side cursor: big enough that the round trips are cheap, small
# enough that a batch of posts (a few KB each) stays a few MB.
FETCH_ROWS = 500
CONNECT_TIMEOUT_S = 10.0
# How long the end of a read (its rollback, the connection's reset) may wait for the server: ms when it
# answers; past this the connection is closed unanswered (_end).
END_TIMEOUT_S = 5.0

# InternalClientError: asyncpg's state machine met a query while it was still consuming what the server
# sent unasked — a terminated backend's FATAL arriving between two fetches — before it saw the socket close.
_DRIVER_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)

# Date and time types a platform's own tables may use where the spec has Unix seconds (``init``
# keeps a table that exists), read as PostgreSQL writes them, in ISO form and UTC (``SESSION``, the
# same text whatever the server's defaults). asyncpg's own decoding into datetimes failed a whole
# fetch on a time Python cannot hold (a year before 1 or after 9999: OverflowError, "an internal
# error" for the tenant's every export) and turned 'infinity' into 9999-12-31T23:59:59.999999, a
# time nobody wrote. As text, a time reads as that time (index.ts) and any other value ('infinity',
# a BC date, year 10000) is kept as stored, under ``unreadable``, like a SQLite column's.
TEXT_TYPES = ("timestamp", "timestamptz", "date", "time", "timetz", "interval")
SESSION = {"DateStyle": "ISO, YMD", "TimeZone": "UTC"}


async def _text_codecs(conn: asyncpg.Connection) -> None:
    for name in TEXT_TYPES:
        await conn.set_type_codec(name, schema="pg_catalog", encoder=str, decoder=str, format="text")


# The column types a write gives its values as (binary COPY of Python str and int), by the spec's
# type of the column: a platform's own table with other types (a ``timestamptz`` time, a ``uuid``
# id) is read by an export (as text), but a write into it ended in a traceback of asyncpg's encoder.
_WRITES_TEXT = frozenset({"text", "character varying", "character", "name"})  # not citext: no binary encoder
_WRITES_INTEGER = frozenset({"bigint", "integer", "smallint", "numeric"})


async def _refuse_other_types(conn: asyncpg.Connection, table: str, cols: Sequence[str]) -> None:
    """ContentRejected, in one line, for a column of ``table`` that this database holds as a type the
    write cannot give (import writes the spec's: text, and whole numbers for its times and sizes)."""
    types = dict(await conn.fetch("SELECT attname::text, atttypid::regtype::text FROM pg_attribute "
                                  "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped", table))
    for col in cols:
        have = types.get(col, "")
        wants = _WRITES_INTEGER if (table, col) in INTEGER_COLUMNS else _WRITES_TEXT
        if have.split("(")[0] not in wants:
            kind = "a whole number" if wants is _WRITES_INTEGER else "text"
            raise ContentRejected(f"{table}.{col} is {have or 'missing'} in this database, and this write gives "
                                  f"{kind} there (the spec's type); only tables of the spec's column types "
                                  f"can be written")


async def _column_lengths(conn: asyncpg.Connection, table: str) -> dict[str, tuple[int, str]]:
    """The columns of ``table`` this database declares with a length (a platform's own table:
    ``VARCHAR(36)``, ``CHAR(2)``): how many characters each holds, and its type as PostgreSQL names it."""
    rows = await conn.fetch("SELECT attname::text, atttypmod - 4, format_type(atttypid, atttypmod) FROM pg_attribute "
                            "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND atttypmod > 4 "
                            "AND atttypid IN ('varchar'::regtype, 'bpchar'::regtype)", table)
    return {col: (most, kind) for col, most, kind in rows}


def _too_long(table: str, lengths: Mapping[str, tuple[int, str]]) -> Callable[[int, Mapping[str, Any]], None] | None:
    """A row check refusing text longer than its column's declared length, as the write would ("value
    too long for type character varying(40)": after the import had put the files). PostgreSQL cuts
    excess spaces without a word, and so they pass here too."""
    if not lengths:
        return None

    def check(n: int, row: Mapping[str, Any]) -> None:
        for col, (most, kind) in lengths.items():
            value = row.get(col)
            if isinstance(value, str) and len(value) > most and value[most:].strip(" "):
                row_id = row.get("id")
                shown = repr(row_id) if not isinstance(row_id, str) or len(row_id) <= 64 else f"{row_id[:32]!r}…"
                raise ContentRejected(f"{table} row {n} ({shown}): {col} is {len(value):,} characters long, more "
                                      f"than {table}.{col} holds in this database ({kind})")

    return check


# An id this long (UTF-8 bytes) may not fit a primary key's index entry (2,704 bytes at most, the
# value compressed if it can be): each is tried in an index of its own before an import writes.
# Shorter ones always fit.
INDEXED_ID_BYTES = 2048


async def _refuse_unindexable_ids(conn: asyncpg.Connection, table: str, ids: Sequence[Any]) -> None:
    """ContentRejected for an id PostgreSQL cannot put in ``table``'s primary key index ("index row
    size 4032 exceeds btree version 4 maximum 2704"): an archive chooses its ids, and one of 4,000
    random characters passed every check and was refused by the write, after the files were put,
    as the database's failure ("refused the read", exit 1). Each long id goes into a temporary
    table's index of the same column type, in a transaction rolled back: the server's own rule,
    compression and all; the usual id is shorter than ``INDEXED_ID_BYTES`` and costs nothing."""
    long = [(n, i) for n, i in enumerate(ids) if isinstance(i, str) and len(i.encode()) > INDEXED_ID_BYTES]
    if not long or not await conn.fetchval("SELECT has_database_privilege(current_database(), 'TEMP')"):
        return  # no temporary table for this role (REVOKE TEMP): the write is the judge, its refusal the rows'
    # In check_write's transaction, which is rolled back (_connection): the probe goes with it. A refused
    # id ends the check, so no savepoint is needed (its rollback was one more wait on a silent server).
    await conn.execute('CREATE TEMP TABLE IF NOT EXISTS grove_id_probe (id TEXT COLLATE "C" PRIMARY KEY) '
                       "ON COMMIT DROP")
    for n, row_id in long:
        await conn.execute("TRUNCATE grove_id_probe")  # two same long ids are another check's
        try:
            await conn.execute("INSERT INTO grove_id_probe VALUES ($1)", row_id)
        except asyncpg.ProgramLimitExceededError:
            raise ContentRejected(f"{table} row {n} ({row_id[:32]!r}…): its id is {len(row_id.encode()):,} "
                                  "bytes, more than PostgreSQL can index (a primary key's entry holds at most "
                                  "2,704 bytes, compressed)") from None


def numbered(sql: str) -> str:
    """``?`` placeholders → PostgreSQL's ``$1, $2, …`` (the shared queries hold no literal ``?``)."""
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def _unavailable(e: BaseException) -> ContentUnavailable:
    """Still ContentUnavailable when the server answered with an error (a table or column missing, a
    role without rights on it, a value its column's type refuses): the catalog retries such a read as
    it retries silence, since an operator may fix the schema meanwhile; but it is said as the
    server's answer, not as "did not answer", which sent operators after a database that was up."""
    if isinstance(e, asyncpg.PostgresError):
        return ContentUnavailable(f"the content database refused the read: {_said(e)}")
    if isinstance(e, asyncpg.InternalClientError):
        return ContentUnavailable("the content database's connection broke (a message the server sent unasked, "
                                  f"as a terminated backend's, met the next query): {_said(e)}")
    return ContentUnavailable(f"the content database did not answer: {_said(e)}")


def _said(e: BaseException) -> str:
    """The error's class and its words; a timeout has none (the line ended "TimeoutError: ")."""
    words = str(e)
    return f"{type(e).__name__}: {words}" if words else type(e).__name__


# What asyncpg raises parsing a DSN, before it connects: a port that is no number or past 65535, a
# query field it cannot split, an IPv6 host without its ].
_DSN_ERRORS = (ValueError, ArithmeticError)


def _dsn_unusable() -> ContentUnavailable:
    """A DSN asyncpg cannot parse, in words that quote none of it: asyncpg's quoted the DSN's text,
    and a /, # or ? in a password not percent-encoded ends the host there, so they said the password
    ("invalid literal for int() with base 10: 's3cr'", its first part read as the port; "bad query
    field: 'etPW@…'", its last) in the catalog's log and on the command line."""
    return ContentUnavailable("the content DSN cannot be used: asyncpg cannot parse it as "
                              "postgresql://USER:PASSWORD@HOST:PORT/DB (a port that is no number or past 65535, a "
                              "bad query field, an IPv6 host without its ]); a /, # or ? in the user name or "
                              "password must be percent-encoded (%2F, %23, %3F)")


def _close_unanswered(conn: asyncpg.Connection) -> None:
    with contextlib.suppress(asyncpg.InterfaceError):  # closed already: asyncpg gave it back to the pool itself
        conn.terminate()


async def _end(pool: asyncpg.Pool, conn: asyncpg.Connection, transaction: Any | None) -> None:
    """Roll back ``transaction`` (when one is still open) and give the connection back to the pool,
    waiting :data:`END_TIMEOUT_S` at most; past that, or on any error, the connection is closed
    unanswered (the server ends the transaction with the session). The end of every use of a pooled
    connection (:func:`_connection`, :meth:`PostgresContent.read`). A server or network gone silent
    (frozen, a partition) answers nothing and closes nothing: the rollback — after asyncpg's cancel
    request of the query a stall or shutdown interrupted, sent on a new connection to that server —
    waited for ever, so a catalog step stopped for a stall never ended (no failed attempt, no retry,
    the export "cataloging" for good), and a shutdown, or a command's Ctrl-C, hung until it was killed."""
    try:
        if transaction is not None:
            async with asyncio.timeout(END_TIMEOUT_S):
                await transaction.rollback()
    except _DRIVER_ERRORS:  # TimeoutError too: silence
        _close_unanswered(conn)
    except BaseException:  # cancelled meanwhile (a shutdown after a stall): closed unanswered, and still cancelled
        _close_unanswered(conn)
        raise
    finally:
        # A closed connection at once; else the reset is bounded too, and past it asyncpg closes the
        # connection unanswered and raises — the pool's affair, not the caller's error.
        with contextlib.suppress(*_DRIVER_ERRORS):
            await pool.release(conn, timeout=END_TIMEOUT_S)


@asynccontextmanager
async def _connection(pool: asyncpg.Pool, *, end: Literal["release", "commit", "rollback"],
                      **transaction: Any) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for one block: ``release``, none of its own transaction; ``commit``, in one
    transaction (``transaction``: asyncpg's options) committed when the block ends well; ``rollback``,
    in one rolled back however it ends (a check). However the block ends, :func:`_end` ends it: a block
    that failed or was cancelled (Ctrl-C, a shutdown) waits :data:`END_TIMEOUT_S` at most for the
    server's rollback and the connection's reset — asyncpg's own ``async with`` waited for ever on a
    server gone silent."""
    conn = await pool.acquire()
    open_: Any | None = None
    try:
        if end != "release":
            open_ = conn.transaction(**transaction)
            await open_.start()
        yield conn
        if open_ is not None and end == "commit":
            await open_.commit()
            open_ = None
    finally:
        await _end(pool, conn, open_)


class _PostgresRead(ReadQueries):
    """The streams of one :meth:`PostgresContent.read`: a cursor each, on its one connection and in
    its one transaction, fetched ``FETCH_ROWS`` at a time, one fetch at a time (two streams may be
    interleaved; a connection runs one statement at a time)."""

    def __init__(self, conn: asyncpg.Connection, tenant_id: str) -> None:
        self._conn, self._tenant_id = conn, tenant_id
        self._lock = asyncio.Lock()
        self.open = True

    async def rows(self, sql: str) -> AsyncIterator[Row]:
        query = numbered(sql)
        try:
            async with self._lock:
                if not self.open:
                    raise read_ended(self._tenant_id)
                cursor = await self._conn.cursor(query, self._tenant_id)
            while True:
                async with self._lock:
                    if not self.open:
                        raise read_ended(self._tenant_id)
                    records = await cursor.fetch(FETCH_ROWS)
                for record in records:
                    yield text_row(record)
                if len(records) < FETCH_ROWS:
                    break
                del records  # not held while the next batch arrives: one batch in memory, not two
        except _DRIVER_ERRORS as e:
            raise _unavailable(e) from None

    async def value(self, sql: str) -> Any:
        try:
            async with self._lock:
                if not self.open:
                    raise read_ended(self._tenant_id)
                return await self._conn.fetchval(numbered(sql), self._tenant_id)
        except _DRIVER_ERRORS as e:
            raise _unavailable(e) from None


class PostgresContent(SourceQueries):
    """A :class:`~shared.content.port.ContentSource` on PostgreSQL. The pool opens on first use."""

    def __init__(self, dsn: str, *, pool_max: int = 4) -> None:
        self._dsn = dsn
        self._pool_max = pool_max
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never the DSN: it may carry a password
        return "PostgresContent(…)"

    async def _get_pool(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_max,
                                                           timeout=CONNECT_TIMEOUT_S, init=_text_codecs,
                                                           server_settings=SESSION)
                except _DRIVER_ERRORS as e:
                    raise _unavailable(e) from None
                except _DSN_ERRORS:
                    raise _dsn_unusable() from None
            return self._pool

    async def init(self) -> None:
        pool = await self._get_pool()
        try:
            async with _connection(pool, end="commit") as conn:
                # Serialize concurrent first starts: CREATE ... IF NOT EXISTS races on the catalog.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('grove_content_schema'))")
                await conn.execute(schema.POSTGRES_SCHEMA)
        except _DRIVER_ERRORS as e:
            raise _unavailable(e) from None

    @asynccontextmanager
    async def read(self, tenant_id: str) -> AsyncIterator[_PostgresRead]:
        """One pooled connection in one ``REPEATABLE READ READ ONLY`` transaction, its snapshot taken
        by a first statement when the block is entered. Rolled back (and the connection given back)
        when the block ends, however it ends, waiting :data:`END_TIMEOUT_S` at most (:func:`_end`). The
        block's own error is what it raises: a rollback failing after it on the same dead connection
        ("cannot call Transaction.__aexit__(): the underlying connection is closed") named the driver,
        not the server's words (a terminated backend, a failover)."""
        pool = await self._get_pool()
        try:
            conn = await pool.acquire()
        except _DRIVER_ERRORS as e:
            raise _unavailable(e) from None
        transaction = conn.transaction(isolation="repeatable_read", readonly=True)
        try:
            try:
                await transaction.start()
                await conn.execute("SELECT 1")  # the transaction's snapshot, now
            except _DRIVER_ERRORS as e:
                raise _unavailable(e) from None
            session = _PostgresRead(conn, tenant_id)
            try:
                yield session
            finally:
                session.open = False
        finally:
            await _end(pool, conn, transaction)

    async def tenant(self, tenant_id: str) -> Row | None:
        pool = await self._get_pool()
        try:
            async with _connection(pool, end="release") as conn:
                record = await conn.fetchrow(numbered(schema.TENANT), tenant_id)
        except _DRIVER_ERRORS as e:
            raise _unavailable(e) from None
        return text_row(record) if record is not None else None

    async def insert(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        return await self.insert_tables([(table, rows)])

    async def insert_tables(self, batches: Sequence[tuple[str, Iterable[Mapping[str, Any]]]]) -> int:
        checked = [(table, *checked_rows(table, rows, nul_ok=False, any_type_ok=False)) for table, rows in batches]
        checked = [(table, cols, values) for table, cols, values in checked if values]
        if not checked:
            return 0
        pool = await self._get_pool()
        table = checked[0][0]
        try:
            async with _connection(pool, end="commit") as conn:  # every table or none
                for table, cols, values in checked:
                    await _refuse_other_types(conn, table, cols)
                    await conn.copy_records_to_table(table, records=values, columns=list(cols))
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError, asyncpg.ProgramLimitExceededError) as e:
            raise ContentRejected(f"{table}: {e}") from None
        except _DRIVER_ERRORS as e:
            raise _unavailable(e) from None
        return sum(len(values) for _, _, values in checked)

    async def check_write(self, batches: Sequence[tuple[str, Iterable[Mapping[str, Any]]]]) -> None:
        pool = await self._get_pool()
        try:
            async with _connection(pool, end="rollback") as conn:  # writes nothing (the id probe goes with it)
                lengths = {table: await _column_lengths(conn, table) for table, _ in batches if table in TABLES}
                checked = [(table, *checked_ids(table, rows, nul_ok=False, any_type_ok=False,
                                                each=_too_long(table, lengths.get(table, {}))))
                           for table, rows in batches]
                for table, cols, ids in checked:
                    if not cols:  # no rows
                        continue
                    await _refuse_other_types(conn, table, cols)  # table: checked_ids knows it (port.TABLES)
                    held = await conn.fetchval(f"SELECT id FROM {table} WHERE id = ANY($1::text[]) LIMIT 1",
                                               [i for i in ids if isinstance(i, str)])
                    if held is not None:
                        raise id_taken(table, held)
                    await _refuse_unindexable_ids(conn, table, ids)
        except _DRIVER_ERRORS as e:
            raise _unavailable(e) from None

    @asynccontextmanager
    async def import_claim(self, tenant_id: str) -> AsyncIterator[None]:
        """A session-level advisory lock on a connection of its own (not the pool's: an import also
        reads and writes through the pool, whatever its size). PostgreSQL releases it when that
        session ends, so an import that died leaves no claim behind."""
        key = int.from_bytes(claim_digest(tenant_id)[:8], "big", signed=True)
        try:
            conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
        except _DRIVER_ERRORS as e:
            raise _unavailable(e) from None
        except _DSN_ERRORS:
            raise _dsn_unusable() from None
        try:
            try:
                taken = await conn.fetchval("SELECT pg_try_advisory_lock($1::bigint)", key)
            except _DRIVER_ERRORS as e:
                raise _unavailable(e) from None
            if not taken:
                raise ClaimHeld(tenant_id)
            yield
        finally:
            try:  # ends the session, and with it the lock; a silent server is not waited for past END_TIMEOUT_S
                await conn.close(timeout=END_TIMEOUT_S)
            except _DRIVER_ERRORS:  # asyncpg closed it unanswered: the server ends the session when it sees that
                _close_unanswered(conn)

    async def close(self) -> None:
        """Close the pool, waiting :data:`END_TIMEOUT_S` at most for the server to end its sessions; then
        its connections are closed unanswered. A graceful close of a connection to a server gone silent
        (frozen, cut off) waited for ever: a catalog outlived its SIGTERM until it was killed."""
        async with self._lock:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                try:
                    async with asyncio.timeout(END_TIMEOUT_S):
                        await pool.close()
                except TimeoutError:
                    pool.terminate()
