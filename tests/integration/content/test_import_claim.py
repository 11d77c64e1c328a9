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
from typing import Any

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


async def test_a_released_claim_leaves_no_folder_beside_the_sqlite_file(tmp_path: Path) -> None:
    # An empty `<db>.imports/` was left beside the database after every import.
    db = open_content(sqlite_dsn(tmp_path / "content.db"))
    await db.init()
    other = open_content(sqlite_dsn(tmp_path / "content.db"))
    try:
        async with db.import_claim("tenant_a"):
            async with other.import_claim("tenant_b"):
                pass
            assert (tmp_path / "content.db.imports").is_dir()  # tenant_a's claim is still in it
        async with db.import_claim("tenant_a"):
            pass
    finally:
        await db.close()
        await other.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("content.db-")) == ["content.db"]


RELEASER = """
import asyncio, sys
from shared.content.factory import open_content

async def main() -> None:
    db = open_content(sys.argv[1])
    async with db.import_claim(sys.argv[2]):
        print("held", flush=True)
        sys.stdin.readline()
    print("released", flush=True)

asyncio.run(main())
"""


async def test_a_claim_taken_while_the_last_holder_removes_the_folder_is_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race the folder's removal opens: a claimer has made the folder and is about to create its
    lock file in it when the last holder releases and removes the (then empty) folder. Driven, not
    slept: the claimer's open of its lock file first lets the holder (another process) release."""
    import subprocess

    dsn = sqlite_dsn(tmp_path / "content.db")
    db = open_content(dsn)
    await db.init()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    # Blocking on purpose: the claimer's os.open (synchronous) waits for the holder's release.
    holder = subprocess.Popen([sys.executable, "-c", RELEASER, dsn, "tenant_a"], env=env,  # noqa: ASYNC220
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    real_open = os.open
    released: list[str] = []

    def open_after_the_holder_released(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith(".lock") and not released:  # between our mkdir and our open
            assert holder.stdin is not None and holder.stdout is not None
            holder.stdin.write("go\n")
            holder.stdin.flush()
            released.append(holder.stdout.readline())  # the holder has unlinked its file (and the folder)
        return real_open(path, flags, *args, **kwargs)

    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), DEADLINE_S)
        assert line == "held\n"
        with pytest.raises(ClaimHeld):  # held by the other process, whose file is in the folder
            async with db.import_claim("tenant_a"):
                pass
        monkeypatch.setattr(os, "open", open_after_the_holder_released)
        async with asyncio.timeout(DEADLINE_S), db.import_claim("tenant_a"):
            monkeypatch.setattr(os, "open", real_open)
            assert released == ["released\n"]
        assert holder.wait(DEADLINE_S) == 0
    finally:
        monkeypatch.setattr(os, "open", real_open)
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        await db.close()
    assert not (tmp_path / "content.db.imports").exists()
