"""A command whose own write fails on a full disk says so, not that NATS failed. Seen: `grove-export
backup DIR` with the disk full said "NATS at nats://… failed: File too large" (and `import`, which
asks no NATS at all, the same): main() took every OSError without a file name for the server's. The
disk is filled by a file size limit (RLIMIT_FSIZE), which a write meets as EFBIG, as ENOSPC on a full
disk; both are the same line."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from shared.bus.connect import Bus
from tests.support.env import to_env


async def test_a_backup_on_a_full_disk_blames_the_disk_and_leaves_no_folder(values: dict[str, Any], bus: Bus,
                                                                            tmp_path: Path) -> None:
    folder = tmp_path / "bk"
    out = await asyncio.to_thread(  # ``bus`` made the stream and buckets: the backup gets as far as its files
        subprocess.run, [sys.executable, "-m", "services.cli", "backup", str(folder)],
        env={**os.environ, **to_env(values)}, capture_output=True, text=True, timeout=60, check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64)))
    assert (out.returncode, out.stderr.count("\n")) == (1, 1), out.stderr
    assert out.stderr.startswith("grove-export: File too large: a file on this machine could not be written"), \
        out.stderr
    assert "NATS at" not in out.stderr, out.stderr
    assert not folder.exists()  # made by the backup, removed with what it wrote
