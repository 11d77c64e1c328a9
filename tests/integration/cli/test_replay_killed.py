"""``grove-export replay`` killed part-way (SIGKILL, the out-of-memory killer) leaves no file for good.

Seen: replay builds the read model in ``<path>.replay-<hex>`` and renames it over ``<path>`` at the
end; killed outright before that, nothing cleans up, and that file with its ``-wal`` and ``-shm``
(the rows written so far, the requesters' addresses in them) stayed beside the read model through
every later replay — no command looked at it, erase-tenant neither. Now each rebuild holds a lock on
its file, and the next replay removes the files no running replay holds; one still running (here
frozen, SIGSTOP) is left alone. Real nats-server, real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shared.bus.connect import Bus
from shared.core import events as ev
from tests.support.env import to_env


def _beside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("rm.db.replay-*"))


def _frozen_mid_rebuild(env: dict[str, str], folder: Path) -> subprocess.Popen[str]:
    """A replay stopped (SIGSTOP) once its rebuild file is written to (its -wal is there): a replay at
    the worst moment, its file made and its schema written."""
    p = subprocess.Popen([sys.executable, "-m", "services.cli", "replay"], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not list(folder.glob("rm.db.replay-*-wal")):
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, "replay made no rebuild file"
        time.sleep(0.001)
    p.send_signal(signal.SIGSTOP)
    return p


def _replay(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", "replay"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


async def test_a_killed_replay_leaves_nothing_once_replay_runs_again(values: dict[str, Any], bus: Bus,
                                                                     tmp_path: Path) -> None:
    for _ in range(20):  # enough events that a replay is still rebuilding when it is stopped
        await asyncio.gather(*(bus.log.append(ev.ExportRequested(
            export_id=ev.new_export_id(), tenant_id=f"tenant_{i % 7}", user_id="u1",
            user_email=f"who{i}@example.org", username="autumn"), 0) for i in range(500)))
    env = {**os.environ, **to_env({**values, "read_model_db": str(tmp_path / "rm.db")})}

    frozen = await asyncio.to_thread(_frozen_mid_rebuild, env, tmp_path)
    try:
        left = _beside(tmp_path)
        assert frozen.poll() is None and left  # stopped mid-rebuild, its file there
        out = await asyncio.to_thread(_replay, env)  # a replay beside a running one: it keeps its file
        assert out.returncode == 0 and "10000 exports rebuilt" in out.stdout, out.stderr
        assert _beside(tmp_path)[:1] == left[:1]
    finally:
        frozen.send_signal(signal.SIGKILL)  # killed at that moment: no clean-up runs
        frozen.wait()
    assert _beside(tmp_path)  # what the killed one left

    out = await asyncio.to_thread(_replay, env)
    assert out.returncode == 0 and "10000 exports rebuilt" in out.stdout, out.stderr
    assert _beside(tmp_path) == []
    assert sorted(p.name for p in tmp_path.glob("rm.db*")) == ["rm.db"]
