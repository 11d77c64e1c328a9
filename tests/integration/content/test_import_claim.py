"""The import claim, on every adapter: one holder per tenant, other tenants free, released on exit
and by the database or the kernel when its holder is killed (SIGKILL: no clean-up runs)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.content.factory import open_content, sqlite_dsn
from shared.content.port import ClaimHeld

DEADLINE_S = 30
HOLDER = """
import asyncio, sys
from shared.content.factory import open_content

async def main() -> None:
    db = open_content(sys.argv[1])
    async with db.import_claim(sys.argv[2]):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture(params=["sqlite", "postgresql"])
async def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    dsn = str(request.getfixturevalue("postgres_dsn")) if request.param == "postgresql" \
        else sqlite_dsn(tmp_path / "content.db")
    db = open_content(dsn)
    await db.init()
    await db.close()
    yield dsn


async def test_one_holder_per_tenant_and_released_on_exit(dsn: str) -> None:
    a, b = open_content(dsn), open_content(dsn)
    try:
        async with a.import_claim("tenant_a"):
            with pytest.raises(ClaimHeld):
                async with b.import_claim("tenant_a"):
                    pass
            async with b.import_claim("tenant_b"):  # another tenant is not held by it
                pass
        async with b.import_claim("tenant_a"):  # released
            pass
        with pytest.raises(RuntimeError):
            async with a.import_claim("tenant_a"):
                raise RuntimeError("the import failed")
        async with b.import_claim("tenant_a"):  # released by a failure too
            pass
    finally:
        await a.close()
        await b.close()


async def test_a_killed_holder_leaves_no_claim(dsn: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    holder = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLDER, dsn, "tenant_a", env=env,
                                                  stdout=asyncio.subprocess.PIPE)
    db = open_content(dsn)
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(holder.stdout.readline(), DEADLINE_S)
        assert line == b"held\n"
        with pytest.raises(ClaimHeld):
            async with db.import_claim("tenant_a"):
                pass
        holder.send_signal(signal.SIGKILL)
        await asyncio.wait_for(holder.wait(), DEADLINE_S)
        deadline = time.monotonic() + DEADLINE_S  # PostgreSQL notices the closed session at once, here
        while True:
            try:
                async with db.import_claim("tenant_a"):
                    break
            except ClaimHeld:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the claim was still held {DEADLINE_S} s after its holder was killed") \
                        from None
                await asyncio.sleep(0.05)
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await db.close()
