"""A catalog step cancelled (a stall, a cancel, a shutdown) inside ``SqliteContent.read`` while its
worker thread still runs: the thread's connection must end its read transaction and be closed once
the thread is done, never left holding a snapshot (in WAL mode no checkpoint can pass it, so the WAL
grows for ever; in rollback-journal mode every writer waits on it) and never closed under a running
thread (the sqlite3 module is not safe against a close during a fetch on another thread). Real SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from shared.content.sqlite import SqliteContent

POSTS = 5000


async def _content(tmp_path: Path) -> tuple[SqliteContent, sqlite3.Connection]:
    content = SqliteContent(tmp_path / "content.db")
    await content.init()
    db = sqlite3.connect(content.path, isolation_level=None)
    db.execute("INSERT INTO tenants (id, username, created_at) VALUES ('t1', 'u', 1)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO posts (id, tenant_id, slug, title, markdown_content, created_at) "
                   "VALUES (?, 't1', ?, 't', ?, 1)", [(str(i), f"s{i}", "x" * 2000) for i in range(POSTS)])
    db.execute("COMMIT")
    return content, db


async def _reader(content: SqliteContent) -> None:
    async with content.read("t1") as read:
        async for _ in read.posts():
            await asyncio.sleep(0)  # every row a chance to be cancelled: mid-batch, or while a batch is fetched


async def _no_reader_left(db: sqlite3.Connection) -> tuple[int, int, int]:
    """A writer's commit, then a full checkpoint, once the worker threads have had time to finish."""
    db.execute("UPDATE posts SET title = 'edited' WHERE id = '1'")
    for _ in range(50):
        await asyncio.sleep(0.02)
        got = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if got[0] == 0:
            break
    return tuple(got)  # type: ignore[return-value]


@pytest.mark.parametrize("after", [0, 1, 3, 10, 40])
async def test_a_read_cancelled_while_its_thread_runs_leaves_no_transaction_open(tmp_path: Path, after: int) -> None:
    """``after`` loop turns: 0 cancels it while its thread begins the transaction (seen: that
    connection kept its snapshot for ever, every checkpoint after it answered busy)."""
    content, db = await _content(tmp_path)
    try:
        task = asyncio.create_task(_reader(content))
        for _ in range(after + 1):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await _no_reader_left(db))[0] == 0, "a connection of the cancelled read still holds its snapshot"
        async with content.read("t1") as read:  # and the source reads on
            assert sum([1 async for _ in read.posts()]) == POSTS
    finally:
        db.close()
        await content.close()


async def test_reads_cancelled_again_and_again_mid_fetch_do_not_crash_or_leak(tmp_path: Path) -> None:
    content, db = await _content(tmp_path)
    try:
        for i in range(60):
            task = asyncio.create_task(_reader(content))
            await asyncio.sleep(0.0005 * (i % 12))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert (await _no_reader_left(db))[0] == 0
    finally:
        db.close()
        await content.close()
