"""The content-source port: the spec's catalog queries, read as streams, and a write side for
seeders and importers.

Errors::

    ContentError
     ├── ContentUnavailable   the database did not answer, or its tables are missing
     ├── ContentRejected      a write the source refuses (unknown table or column, a NUL in text on PostgreSQL,
     │                        a lone surrogate, a duplicate id) — checked before anything is written
     └── ClaimHeld            another import holds the tenant's import claim

Rows are plain dicts with the spec's column names; times are integers (Unix seconds, UTC), as in
the spec's D1 schema. Every adapter returns the same dicts for the same rows, in the same order.

One snapshot: ``async with source.read(tenant) as read`` reads the tenant's posts, pages, media and
files as they all were when the read was entered, whatever is committed meanwhile (one ``REPEATABLE
READ READ ONLY`` transaction on one PostgreSQL connection; one read transaction on one SQLite
connection). The catalog reads through it; ``source.posts(tenant)`` and its kin are one query each,
a read of their own.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

Row = dict[str, Any]
Stream = Literal["posts", "pages", "media", "amber_files"]  # the streams of a TenantRead

# The tables a writer may fill and their columns: an allow-list, because a writer's column names
# end up in SQL text (values never do: they are bound parameters).
TABLES: dict[str, tuple[str, ...]] = {
    "tenants": ("id", "username", "display_name", "email", "created_at"),
    "posts": ("id", "tenant_id", "slug", "title", "description", "markdown_content", "tags", "status",
              "featured_image", "published_at", "created_at", "updated_at"),
    "pages": ("id", "tenant_id", "slug", "title", "description", "markdown_content", "type", "display_order",
              "created_at", "updated_at"),
    "media": ("id", "tenant_id", "filename", "original_name", "r2_key", "url", "size", "mime_type", "alt_text",
              "uploaded_at"),
    "amber_files": ("id", "tenant_id", "filename", "original_name", "r2_key", "size", "mime_type", "category",
                    "product", "uploaded_at"),
}


# The integer columns of schema.py ({int}: INTEGER on SQLite, which holds any value there, as a
# platform's content can; BIGINT on PostgreSQL, which holds 64-bit integers only).
INTEGER_COLUMNS: frozenset[tuple[str, str]] = frozenset({
    ("tenants", "created_at"), ("posts", "published_at"), ("posts", "created_at"), ("posts", "updated_at"),
    ("pages", "display_order"), ("pages", "created_at"), ("pages", "updated_at"), ("media", "size"),
    ("media", "uploaded_at"), ("amber_files", "size"), ("amber_files", "uploaded_at")})


# Bytes in a row (a SQLite BLOB or text that is not UTF-8, a PostgreSQL bytea column) are given as
# text, each undecodable byte as U+FFFD: rendering refused bytes ("an internal error"), and valid
# UTF-8 reads exactly as its text. A C-level call, no Python frame per value.
bytes_text = functools.partial(str, encoding="utf-8", errors="replace")


# Values every column may give as they are (lists: a PostgreSQL text[] of tags); any other type is
# read by :func:`_plain_value`.
_PLAIN = frozenset({str, type(None), list, dict})
# Columns the spec holds whole numbers in (its times and sizes): their numbers of any kind (an int,
# a float, a Decimal) are read there, as a time or size or as a value kept under ``unreadable``.
_NUMBER_NAMES = frozenset(column for _, column in INTEGER_COLUMNS)


def _plain_value(column: str, value: Any) -> Any:
    """Bytes as :data:`bytes_text`; in a column of text, any value that is not text (a number from a
    platform's INTEGER, NUMERIC, REAL or double precision column, or a SQLite column of no type; a
    boolean; a uuid, an inet) as its text: a float as Python writes it, true/false as PostgreSQL
    does. Front matter holds no float and JSON no Decimal (the render failed); a slug, a body, a
    media row's name, key or type that was a number failed it too (``.strip()``, ``.rpartition()``);
    and a title that was a number was exported as one, which import refused (a title is text)."""
    if isinstance(value, bytes):
        return bytes_text(value)
    if type(value) in _PLAIN or column in _NUMBER_NAMES:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def text_row(row: Any) -> Row:
    """A database's row (a sqlite3.Row, an asyncpg Record) as every adapter gives it: a dict, any
    bytes in it as :data:`bytes_text` reads them (and any value no document holds as :func:`_plain_value`
    gives it), and its id as text, as the spec's ids are. A
    platform's own table may have a uuid or bigserial id (PostgreSQL) or an INTEGER PRIMARY KEY
    (SQLite): index.json could hold no UUID and a snapshot member's source id is text, so such an id
    failed the tenant's every export ("an internal error"). A null id stays null."""
    out = dict(row)
    # the text columns (all but the whole-number ones) hold text and nulls only: as it is (C-level
    # calls, no Python frame per value: about 1 us a post's row, 2 us with a call per value)
    if not _PLAIN.issuperset(map(type, map(out.__getitem__, out.keys() - _NUMBER_NAMES))) or \
            bytes in map(type, out.values()):  # a BLOB in a time or size column too
        out = {k: _plain_value(k, v) for k, v in out.items()}
    if not isinstance(row_id := out.get("id"), str | None):
        out["id"] = str(row_id)
    return out


class ContentError(Exception):
    """Something about the content source."""


class ContentUnavailable(ContentError):
    """The content database did not answer, or is not a content database."""


class ContentRejected(ContentError, ValueError):
    """A write the content source refuses; nothing of it was written."""


class ClaimHeld(ContentError):
    """Another import holds this tenant's import claim (:meth:`ContentSource.import_claim`)."""


def claim_digest(tenant_id: str) -> bytes:
    """What names a tenant's import claim (a lock key, a file name): never the id itself, which
    may hold any character an id allows."""
    return hashlib.sha256(f"grove-export import {tenant_id}".encode()).digest()


def read_ended(tenant_id: str) -> ContentError:
    """A stream of a :meth:`ContentSource.read` iterated after its ``async with`` block ended."""
    return ContentError(f"the read of tenant {tenant_id!r} has ended: read its rows inside "
                        "`async with source.read(tenant)`")


class TenantRead(Protocol):
    """One tenant's content as one snapshot (:meth:`ContentSource.read`). Each stream is the spec's
    query, in its order, and may be read any number of times, interleaved with the others, or left
    part-read; only inside the ``async with`` block (after it: :func:`read_ended`)."""

    def posts(self) -> AsyncIterator[Row]:
        """The spec's posts query: newest ``created_at`` first, ties by id."""

    def pages(self) -> AsyncIterator[Row]:
        """The spec's pages query: ``display_order`` ascending, ties by id."""

    def media(self) -> AsyncIterator[Row]:
        """The spec's media query: newest ``uploaded_at`` first, ties by id."""

    def amber_files(self) -> AsyncIterator[Row]:
        """The spec's Amber query: newest ``uploaded_at`` first, ties by id."""

    async def count(self, stream: Stream) -> int:
        """How many rows the stream of that name gives in this read (the same snapshot): the catalog
        writes README.md's counts before it renders the posts and pages as they arrive."""


class ContentSource(Protocol):
    """Where the catalog reads a tenant's content. Reads stream: a tenant's rows are never all in
    memory at once inside the adapter."""

    async def init(self) -> None:
        """Create the tables if they are missing (local stack, tests, seeding)."""

    def read(self, tenant_id: str) -> AbstractAsyncContextManager[TenantRead]:
        """The tenant's content as one snapshot, taken when the block is entered: a commit by anyone
        while it is open is not seen by any of its streams. Holds one connection until the block
        ends; a failure inside the block (or a stream abandoned) still gives it back."""

    def posts(self, tenant_id: str) -> AsyncIterator[Row]:
        """:meth:`TenantRead.posts` in a read of its own."""

    def pages(self, tenant_id: str) -> AsyncIterator[Row]:
        """:meth:`TenantRead.pages` in a read of its own."""

    def media(self, tenant_id: str) -> AsyncIterator[Row]:
        """:meth:`TenantRead.media` in a read of its own."""

    def amber_files(self, tenant_id: str) -> AsyncIterator[Row]:
        """:meth:`TenantRead.amber_files` in a read of its own."""

    async def tenant(self, tenant_id: str) -> Row | None:
        """The tenant's row, or None."""

    async def insert(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert rows into one table in one transaction (all or none); returns how many."""

    async def insert_tables(self, batches: Sequence[tuple[str, Iterable[Mapping[str, Any]]]]) -> int:
        """Insert rows into several tables, in the order given, in one transaction: every row of
        every table or none (an importer must not leave half a tenant). Returns how many rows."""

    async def check_write(self, batches: Sequence[tuple[str, Iterable[Mapping[str, Any]]]]) -> None:
        """:class:`ContentRejected`, in one line, for a write :meth:`insert_tables` would refuse — a row
        its checks refuse (a NUL on PostgreSQL, a lone surrogate, text in an integer column there), a
        column of a type it cannot write, an id a row of the table holds already (any tenant's: ids are
        unique across tenants) — writing nothing. An importer asks it before it puts the files the rows
        name: refused only by the write, the files were put and taken back, and the archive's problem
        read as the database's (exit 1). Rows given as a collection are read once, one at a time."""

    def import_claim(self, tenant_id: str) -> AbstractAsyncContextManager[None]:
        """Held while an import writes into ``tenant_id``: entered at once, or :class:`ClaimHeld`
        when another import holds it — any process on this PostgreSQL database, any process on
        this machine for a SQLite file. Released on exit, and by the database or the kernel when
        its holder dies: there is never a stale claim to clear by hand."""

    async def close(self) -> None:
        """Release connections (a pool); the source is unusable afterwards."""


def _lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in ``text`` (JSON can spell one, ``"\\ud800"``; no database stores
    one: the drivers raised UnicodeEncodeError mid-write), or None (a C-level check in the common case)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return text[e.start]
    return None


def checked_rows(table: str, rows: Iterable[Mapping[str, Any]], *,
                 nul_ok: bool, any_type_ok: bool) -> tuple[tuple[str, ...], CheckedValues]:
    """Validate a write before anything touches the database: the table and every column must be
    known and every row must have the same columns. ``nul_ok=False`` (PostgreSQL, which cannot
    store a NUL in text) refuses a NUL up front; SQLite stores it, and a platform's SQLite content
    can hold one, so the export must carry it exactly. ``any_type_ok=False`` (PostgreSQL again)
    refuses anything but a 64-bit integer or null in an integer column: SQLite keeps text there as
    text (an export keeps such a value under ``unreadable``, and import puts it back).

    Rows given as a collection (a list; the importer's posts, each built from the archive when it is
    reached) are checked one at a time here and read again, one at a time, as they are written
    (:class:`CheckedValues`), so a write holds one row, not all: import gathered every post's text
    before writing, 1.17 GB for a 1 MB archive of 64 posts of 16 MiB of one letter. Rows given as an
    iterator, which can be read once, are gathered first."""
    allowed = TABLES.get(table)
    if allowed is None:
        raise ContentRejected(f"unknown table {table!r}")
    if iter(rows) is rows:
        rows = [dict(r) for r in rows]
    cols: tuple[str, ...] | None = None
    count = 0
    for n, row in enumerate(rows):
        if cols is None:
            cols = tuple(row)
            unknown = [c for c in cols if c not in allowed]
            if unknown:
                raise ContentRejected(f"unknown column(s) for {table}: {', '.join(map(repr, unknown))}")
            if "id" not in cols:
                raise ContentRejected(f"rows for {table} need an id")
        _check_row(table, n, row, cols, nul_ok=nul_ok, any_type_ok=any_type_ok)
        count += 1
    if cols is None:
        return (), CheckedValues(table, [], (), 0, nul_ok=nul_ok, any_type_ok=any_type_ok)
    return cols, CheckedValues(table, rows, cols, count, nul_ok=nul_ok, any_type_ok=any_type_ok)


def checked_ids(table: str, rows: Iterable[Mapping[str, Any]], *, nul_ok: bool, any_type_ok: bool,
                each: Callable[[int, Mapping[str, Any]], None] | None = None) -> tuple[tuple[str, ...], list[Any]]:
    """:func:`checked_rows`' checks of a write (for :meth:`ContentSource.check_write`), and the ids of
    its rows: the columns and the ids, read in one pass. ``each(n, row)``: a check of the adapter's
    own, on each row once it passed these."""
    ids: list[Any] = []
    given = list(rows) if iter(rows) is rows else rows  # an iterator can be read once: gathered, as checked_rows does

    class Recorded:  # a collection, read once by checked_rows, noting each row's id as it passes
        def __iter__(self) -> Iterator[Mapping[str, Any]]:
            for n, row in enumerate(given):
                ids.append(row.get("id"))
                yield row
                if each is not None:  # checked_rows has checked the row by now
                    each(n, row)

    cols, _ = checked_rows(table, Recorded(), nul_ok=nul_ok, any_type_ok=any_type_ok)
    return cols, ids


def id_taken(table: str, row_id: Any) -> ContentRejected:
    """The refusal of a write giving a row an id that a row of ``table`` holds already."""
    return ContentRejected(f"{table}: the id {row_id!r} is another row's already (any tenant's: ids are "
                           f"unique across tenants)")


class CheckedValues:
    """The values of rows :func:`checked_rows` checked, in column order, read again as they are
    written (and checked again: rows built afresh from an archive must still be what was checked).
    ``len`` is how many; a collection of rows that reads otherwise the second time is refused."""

    def __init__(self, table: str, rows: Iterable[Mapping[str, Any]], cols: tuple[str, ...], count: int, *,
                 nul_ok: bool, any_type_ok: bool) -> None:
        self.table, self.rows, self.cols, self.count = table, rows, cols, count
        self.nul_ok, self.any_type_ok = nul_ok, any_type_ok

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        n = -1
        for n, row in enumerate(self.rows):
            _check_row(self.table, n, row, self.cols, nul_ok=self.nul_ok, any_type_ok=self.any_type_ok)
            yield tuple(row[c] for c in self.cols)
        if n + 1 != self.count:
            raise ContentRejected(f"{self.table}: {n + 1} rows to write, not the {self.count} checked")


def _check_row(table: str, n: int, row: Mapping[str, Any], cols: tuple[str, ...], *,
               nul_ok: bool, any_type_ok: bool) -> None:
    if tuple(row) != cols:
        raise ContentRejected(f"{table} row {n} has columns {sorted(row)}, the first row has {sorted(cols)}")
    for col, value in row.items():
        if not nul_ok and isinstance(value, str) and "\x00" in value:
            raise ContentRejected(f"{table} row {n} ({row.get('id')!r}): {col} contains a NUL character")
        if isinstance(value, str) and (lone := _lone_surrogate(value)) is not None:
            raise ContentRejected(f"{table} row {n} ({row.get('id')!r}): {col} holds a lone surrogate "
                                  f"(U+{ord(lone):04X}), which is not text")
        if not any_type_ok and (table, col) in INTEGER_COLUMNS and value is not None and \
                not (isinstance(value, int) and -(2**63) <= value < 2**63):
            raise ContentRejected(f"{table} row {n} ({row.get('id')!r}): {col} holds {value!r:.60}, which is "
                                  f"not a 64-bit integer (the only values this database holds there)")
