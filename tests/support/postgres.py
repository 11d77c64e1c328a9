"""A fresh PostgreSQL database per test, on the machine's server (127.0.0.1:5432 unless
``GROVE_TEST_POSTGRES`` names another admin DSN).

When no server answers, the test skips saying so, unless GROVE_REQUIRE_ALL=1 (CI), where it fails:
a green run must not silently mean "never ran on PostgreSQL".
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ADMIN_DSN = os.environ.get("GROVE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _run(job: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run admin work on a loop of its own in a thread of its own: a fixture may be set up while
    the test's loop is running (an async fixture asking for it)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, job()).result()


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def require_postgres() -> None:
    """Skip (fail under GROVE_REQUIRE_ALL=1) when the PostgreSQL server does not answer."""

    async def probe() -> str | None:
        try:
            conn = await asyncpg.connect(ADMIN_DSN, timeout=3)
        except (OSError, TimeoutError, asyncpg.PostgresError) as e:
            return f"{type(e).__name__}: {e}"
        await conn.close()
        return None

    error = _run(probe)
    if error is None:
        return
    where = urlsplit(ADMIN_DSN).netloc.rsplit("@", 1)[-1]
    message = (f"no PostgreSQL server answers at {where} ({error}); start it with "
               "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
    if os.environ.get("GROVE_REQUIRE_ALL") == "1":
        pytest.fail(message + " and GROVE_REQUIRE_ALL=1")
    pytest.skip(message)


def fresh_database() -> Iterator[str]:
    """CREATE DATABASE with a uuid name; yield its DSN; DROP it (closing stray sessions) after."""
    require_postgres()
    name = f"grove_test_{uuid.uuid4().hex}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run(lambda: admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(ADMIN_DSN, name)
    finally:
        _run(lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """The DSN of a database made for this test alone."""
    yield from fresh_database()


@pytest.fixture(scope="module")
def module_postgres_dsn() -> Iterator[str]:
    """The DSN of a database made for one test module (its services share it)."""
    yield from fresh_database()
