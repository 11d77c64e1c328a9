"""The whole local stack on PostgreSQL: `grove-export demo` (what `make run` does: `serve`, seed,
export through the gateway, download, verify) with GROVE_CONTENT_DSN naming a fresh database."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

from shared.content.factory import open_content


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_local_stack_seeds_and_exports_from_postgresql(tmp_path: Path, postgres_dsn: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    env["GROVE_CONTENT_DSN"] = postgres_dsn
    argv = [sys.executable, "-m", "services.cli", "demo", "--data", str(tmp_path / "var"), "--port", str(_free_port())]
    done = await asyncio.to_thread(subprocess.run, argv, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    archive = Path(lines[-1])
    tenant = next(line.split()[2].rstrip(":") for line in lines if line.startswith("seeded tenant "))
    assert not (tmp_path / "var" / "content.db").exists(), "the stack wrote SQLite, not PostgreSQL"

    db = open_content(postgres_dsn)
    try:
        posts = [r async for r in db.posts(tenant)]
        assert (await db.tenant(tenant)) is not None
    finally:
        await db.close()
    assert len(posts) == 12
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    assert sum(n.startswith("posts/") for n in names) == len(posts)
