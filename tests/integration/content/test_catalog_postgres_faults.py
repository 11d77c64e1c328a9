"""The catalog service reading PostgreSQL that misbehaves mid-read: its backend terminated (an
operator's ``pg_terminate_backend``, a failover), or its connection gone silent (a frozen server, a
partition). Each is driven at a known point — the catalog's posts cursor showing in
``pg_stat_activity`` for this test's database — and judged by the export's log and the catalog's."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.devtools.stack.natsserver import NatsServer
from services.devtools.stack.supervisor import Stack
from shared.bus.connect import Bus
from shared.content.factory import open_content
from shared.content.port import ContentUnavailable
from shared.content.postgres import END_TIMEOUT_S, PostgresContent
from shared.content.seed import seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.env import settings_for
from tests.support.pipeline import fetch_archive, request_export, wait_status
from tests.support.postgres import ADMIN_DSN
from tests.support.stack import logs_of, start_stack
from tests.support.tcp_proxy import TcpProxy
from tests.support.wait import cancelled, until

POSTS = 3000  # six cursor fetches, rendered between them: the read is still open when the fault lands
STALL_S = 3.0


@pytest.fixture(scope="module")
def proxy(module_postgres_dsn: str) -> Iterator[TcpProxy]:
    where = urlsplit(module_postgres_dsn)
    p = TcpProxy(where.hostname or "127.0.0.1", where.port or 5432)
    yield p
    p.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer, module_postgres_dsn: str,
            proxy: TcpProxy) -> Iterator[tuple[dict, Stack]]:
    """The step services, the catalog reading this module's database through the proxy."""
    tmp = tmp_path_factory.mktemp("pg-faults")
    parts = urlsplit(module_postgres_dsn)
    through = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    values = settings_for(tmp, nats_server.url, content_dsn=through, stall_after_s=STALL_S)
    stack = start_stack(tmp / "stack", values)
    yield values, stack
    stack.stop()


@pytest.fixture
def values(running: tuple[dict[str, Any], Stack]) -> dict[str, Any]:
    return running[0]


async def _seed(dsn: str, store: ObjectStore, settings: Settings) -> str:
    db = open_content(dsn)  # straight to the database, not through the proxy
    try:
        seeded = await seed_tenant(db, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=POSTS, pages=2, images=2, files=0)
    finally:
        await db.close()
    return seeded.tenant_id


async def _posts_cursor(admin: asyncpg.Connection, dsn: str) -> int:
    """The backend pid of the catalog's open posts cursor in this test's database."""

    async def find() -> int | None:
        return await admin.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() "
            "AND query LIKE 'SELECT id, slug, title%' AND state IN ('active', 'idle in transaction')",
            urlsplit(dsn).path.lstrip("/"))

    return await until(find, 30, 0.005, "the catalog's posts cursor in pg_stat_activity")


def _catalog_lines(stack: Stack, export_id: str) -> list[dict[str, Any]]:
    text = Path(stack.child("catalog").log_path).read_text()
    return [d for d in (json.loads(line) for line in text.splitlines() if line.startswith("{"))
            if d.get("export_id") == export_id]


async def test_a_backend_terminated_mid_read_is_one_retried_attempt_said_as_the_termination(
        bus: Bus, store: ObjectStore, settings: Settings, module_postgres_dsn: str,
        running: tuple[dict, Stack]) -> None:
    """The attempt fails as the content database's (retried), its log line names what the server
    said — not the rollback that then failed on the closed connection ("cannot call
    Transaction.__aexit__()", which sent an operator after the driver) — and the retry reads one
    snapshot of its own: an edit committed after the kill is in the archive whole."""
    tenant = await _seed(module_postgres_dsn, store, settings)
    admin = await asyncpg.connect(ADMIN_DSN.rsplit("/", 1)[0] + "/" + urlsplit(module_postgres_dsn).path.lstrip("/"))
    try:
        export_id = await request_export(bus, tenant)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", await _posts_cursor(admin, module_postgres_dsn))
        # committed before the retry can start (its delay is 0.2 s; this is one statement)
        await admin.execute("UPDATE posts SET title = 'Edited' WHERE tenant_id = $1", tenant)
        state = await wait_status(bus, tenant, export_id, timeout=60)
    finally:
        await admin.close()
    assert state.status == "complete", (state.failure, logs_of(running[1]))
    assert state.attempts_of("catalog") == 1
    failed = [d["msg"] for d in _catalog_lines(running[1], export_id) if d["level"] == "warning"]
    assert len(failed) == 1, failed
    assert "terminating connection due to administrator command" in failed[0], failed[0]
    assert "__aexit__" not in failed[0]
    archive = await fetch_archive(store, settings, state)
    posts = json.loads(archive.zf.read("index.json"))["posts"]
    assert len(posts) == POSTS and {p["title"] for p in posts} == {"Edited"}
    assert sum(n.startswith("posts/") for n in archive.names()) == POSTS


async def test_a_read_whose_connection_goes_silent_is_stopped_as_a_stall_and_the_retry_completes(
        bus: Bus, store: ObjectStore, settings: Settings, module_postgres_dsn: str, proxy: TcpProxy,
        running: tuple[dict, Stack]) -> None:
    """A frozen server or a partition answers nothing and closes nothing. The stall check stops the
    step after GROVE_STALL_AFTER_S; the read's end must not then wait on that connection — its
    rollback (and the cancel request before it) waited for ever, so the stopped step never ended: no
    failed attempt, no retry, its slot held, the export "cataloging" for good."""
    tenant = await _seed(module_postgres_dsn, store, settings)
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        export_id = await request_export(bus, tenant)
        await _posts_cursor(admin, module_postgres_dsn)
        proxy.freeze()
        try:
            async def failed_once() -> bool:
                return (await bus.log.load(tenant, export_id)).state.attempts_of("catalog") >= 1

            await until(failed_once, STALL_S + 12, 0.1, "the stalled catalog attempt to be recorded as failed")
        finally:
            proxy.thaw()
        state = await wait_status(bus, tenant, export_id, timeout=30)
    finally:
        await admin.close()
    assert state.status == "complete", (state.failure, logs_of(running[1]))
    assert state.attempts_of("catalog") == 1
    assert state.last_step_error == f"the catalog step made no progress for {STALL_S:g} s"
    archive = await fetch_archive(store, settings, state)
    assert sum(n.startswith("posts/") for n in archive.names()) == POSTS


async def test_closing_the_content_source_while_its_server_is_silent_ends_within_seconds(postgres_dsn: str) -> None:
    """A catalog shutting down (its closers) while PostgreSQL is frozen or cut off: the pool's graceful
    close asks each idle connection's server to end the session and waited for an answer for ever, so
    the process outlived its SIGTERM until it was killed."""
    where = urlsplit(postgres_dsn)
    proxy = TcpProxy(where.hostname or "127.0.0.1", where.port or 5432)
    try:
        db = open_content(urlunsplit(where._replace(netloc=f"{where.username}@127.0.0.1:{proxy.port}")))
        await db.init()
        async with db.read("t") as read:  # two pooled connections, idle once the reads end
            async with db.read("t") as other:
                assert await read.count("posts") == await other.count("posts") == 0
        proxy.freeze()
        started = time.monotonic()
        async with asyncio.timeout(END_TIMEOUT_S + 10):
            await db.close()
        assert time.monotonic() - started < END_TIMEOUT_S + 2
    finally:
        proxy.close()


async def test_a_server_that_never_answers_the_connect_is_said_in_words(postgres_dsn: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen server at start-up: the connect's timeout said "the content database did not answer:
    TimeoutError: " — a line ending in nothing (a timeout has no message of its own)."""
    monkeypatch.setattr("shared.content.postgres.CONNECT_TIMEOUT_S", 1.0)
    where = urlsplit(postgres_dsn)
    proxy = TcpProxy(where.hostname or "127.0.0.1", where.port or 5432)
    try:
        proxy.freeze()
        db = open_content(urlunsplit(where._replace(netloc=f"{where.username}@127.0.0.1:{proxy.port}")))
        async with asyncio.timeout(10):
            with pytest.raises(ContentUnavailable) as raised:
                await db.init()
        assert str(raised.value) == "the content database did not answer: TimeoutError"
        await db.close()
    finally:
        proxy.close()


def _tenant_row(tenant_id: str) -> list[dict[str, Any]]:
    return [{"id": tenant_id, "username": "u", "display_name": None, "email": None, "created_at": 1}]


async def _held_claim(db: PostgresContent, holding: asyncio.Event) -> None:
    async with db.import_claim("t_claimed"):
        holding.set()
        await asyncio.Event().wait()  # an import's work, until it is cancelled


CALLS: dict[str, Callable[[PostgresContent], Awaitable[object]]] = {
    "init": lambda db: db.init(),
    "tenant": lambda db: db.tenant("t_none"),
    "insert_tables": lambda db: db.insert_tables([("tenants", _tenant_row("t_new"))]),
    "check_write": lambda db: db.check_write([("tenants", _tenant_row("t_checked"))]),
}


@pytest.mark.parametrize("call", [*CALLS, "import_claim"])
async def test_a_call_cancelled_while_its_server_is_silent_ends_within_seconds(postgres_dsn: str, call: str) -> None:
    """Ctrl-C of an import, a seed or a tenant lookup while PostgreSQL is frozen or cut off: the cancel
    stopped the query, but its end — the transaction's rollback, the pooled connection's reset, the
    claim's connection's graceful close, each waiting for that server's answer — waited for ever, and
    the command hung until it was killed. Each ends as a read's does: END_TIMEOUT_S at most."""
    direct = open_content(postgres_dsn)  # the tables, straight to the database
    try:
        await direct.init()
    finally:
        await direct.close()
    where = urlsplit(postgres_dsn)
    proxy = TcpProxy(where.hostname or "127.0.0.1", where.port or 5432)
    db = PostgresContent(urlunsplit(where._replace(netloc=f"{where.username}@127.0.0.1:{proxy.port}")), pool_max=2)
    try:
        assert await db.tenant("t_none") is None  # the pool open, its connection idle
        if call == "import_claim":
            holding = asyncio.Event()
            task = asyncio.create_task(_held_claim(db, holding))
            await asyncio.wait_for(holding.wait(), 10)
            proxy.freeze()
        else:
            proxy.freeze()
            task = asyncio.create_task(CALLS[call](db))

            async def sent_into_the_silence() -> bool:
                return proxy.swallowed.is_set()

            await until(sent_into_the_silence, 10, 0.02, f"{call}'s first statement to reach the frozen proxy")
        started = time.monotonic()
        await cancelled(task, END_TIMEOUT_S + 5, call)
        assert time.monotonic() - started < END_TIMEOUT_S + 2
    finally:
        proxy.close()
        await db.close()


async def test_a_backend_terminated_at_any_point_of_a_read_is_content_unavailable(postgres_dsn: str) -> None:
    """A termination that lands while the read's connection is idle between two fetches (the catalog
    renders between them) reaches asyncpg unasked; the next fetch, sent before asyncpg saw the socket
    close, failed as 'InternalClientError: cannot switch to state 16; another operation (2) is in
    progress' — no driver error the read translates: the catalog's "An internal error occurred." and
    a log line naming asyncpg's state machine (40 of 150 reads here; the test above flaked on it under
    load). Every read so cut is ContentUnavailable, said as the connection's end."""
    db = open_content(postgres_dsn)
    admin = await asyncpg.connect(ADMIN_DSN)
    seen: dict[str, int] = {}
    try:
        await db.init()
        for n in range(150):
            try:
                async with db.read("t") as read:
                    pid = await read.value("SELECT pg_backend_pid() WHERE ?::text IS NOT NULL")
                    rows = read.rows("SELECT g::text AS id FROM generate_series(1, 2000) g WHERE ?::text IS NOT NULL")
                    await anext(aiter(rows))
                    kill = asyncio.create_task(admin.execute("SELECT pg_terminate_backend($1)", pid))
                    for _ in range(n % 15):  # the next fetch at another point of the termination's arrival
                        await asyncio.sleep(0)
                    async for _ in rows:
                        pass
                    await kill
                kind = "not cut"
            except ContentUnavailable:
                kind = "ContentUnavailable"
            except Exception as e:
                kind = f"{type(e).__name__}: {e}"
            seen[kind] = seen.get(kind, 0) + 1
    finally:
        await admin.close()
        await db.close()
    assert set(seen) <= {"ContentUnavailable", "not cut"}, seen
