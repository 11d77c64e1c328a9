"""``grove-export erase-tenant`` after a replay was killed beside the read model it erases from.

Seen: a replay killed outright (SIGKILL, the out-of-memory killer) after it had written its first
rows left ``read-model.db.replay-<hex>`` and its ``-wal`` beside the read model — every requester's
address in the rows so far — and erase-tenant, given that read model, removed the tenant's row from
it, said "nothing left in … the read model" and exited 0, the tenant's address still on disk beside
it. Erase now removes what a killed replay left beside each read model it is given, says so, and
refuses a read model a replay is rebuilding right now (its rows read from the log before the
erasure would be swapped in after it). Real nats-server, processes and the filesystem store."""

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
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.integration.operator.test_operator_erase_places import cli
from tests.support.env import to_env

TENANT = "tenant_erase_me"


def _stopped_mid_rebuild(values: dict[str, Any], read_model: Path) -> subprocess.Popen[str]:
    """A replay stopped (SIGSTOP) once its rebuilt file's -wal holds rows (the first batch written)."""
    env = {**os.environ, **to_env(values)}
    p = subprocess.Popen([sys.executable, "-m", "services.cli", "replay"], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not any(w.stat().st_size > 256 * 1024 for w in read_model.parent.glob(f"{read_model.name}.replay-*-wal")):
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, "replay wrote no rows"
        time.sleep(0.002)
    p.send_signal(signal.SIGSTOP)
    return p


def _addresses_beside(read_model: Path) -> list[str]:
    return sorted(p.name for p in read_model.parent.glob(f"{read_model.name}*")
                  if f"{TENANT}@example.org".encode() in p.read_bytes())


async def test_erase_removes_what_a_killed_replay_left_and_refuses_while_one_runs(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings) -> None:
    read_model = Path(settings.read_model_db)
    export_id = ev.new_export_id()
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id=TENANT, user_id="u1",
                                            user_email=f"{TENANT}@example.org", username="autumn"), 0)
    await store.put(settings.buckets.exports, f"exports/{TENANT}/{export_id}/archive.zip", b"PK\x05\x06" + b"\x00" * 18)
    for _ in range(16):  # other tenants' exports: a replay long enough to stop part-way
        await asyncio.gather(*(bus.log.append(ev.ExportRequested(
            export_id=ev.new_export_id(), tenant_id=f"tenant_{i % 7}", user_id="u1",
            user_email=f"who{i}@example.org", username="autumn"), 0) for i in range(500)))
    assert cli(values, "replay").returncode == 0
    erase = ("erase-tenant", TENANT, "--by", "ada", "--reason", "request 88", "--erase-running", "--wait", "0")

    replaying = await asyncio.to_thread(_stopped_mid_rebuild, values, read_model)
    try:
        assert replaying.poll() is None and _addresses_beside(read_model)  # the row is in the rebuilt file too
        out = cli(values, *erase)  # a replay running into the read model: refused, nothing erased
        assert out.returncode == 1 and out.stderr.count("\n") == 1, (out.stdout, out.stderr)
        assert "a replay is rebuilding" in out.stderr and "nothing was erased" in out.stderr, out.stderr
    finally:
        replaying.send_signal(signal.SIGKILL)  # killed at that moment: what it wrote stays
        replaying.wait()
    assert any(".replay-" in name for name in _addresses_beside(read_model))

    out = cli(values, *erase)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert "files of an unfinished replay beside" in out.stdout, out.stdout
    assert _addresses_beside(read_model) == []
    assert sorted(p.name for p in read_model.parent.glob(f"{read_model.name}*")) == [read_model.name]
