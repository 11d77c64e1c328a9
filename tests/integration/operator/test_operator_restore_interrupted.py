"""``grove-export restore`` cut short by Ctrl-C part-way leaves the server as it found it.

Seen: Ctrl-C while the second stream was being sent (asyncio.run cancels the command's task)
left EXPORTS restored and the KV buckets' streams absent — the half-restored server restore
otherwise never leaves: ``setup`` (and ``serve`` at every start) then made the missing buckets
empty beside the restored log, and the same restore was refused ("the server already has stream
EXPORTS"). Only an ``Exception`` was undone; a cancellation passed by. Real nats-server; the backup
is `grove-export backup`'s own. (By hand: SIGINT to `grove-export restore` once it printed its first
stream left that stream on the server; now it prints that it deleted it again, and exits 130.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from services.operator import backup as bk
from shared.bus.connect import Bus, kv_names
from shared.core import events as ev
from shared.runtime.settings import Settings


async def _streams(bus: Bus, names: list[str]) -> list[str]:
    have = []
    for name in names:
        try:
            await bus.js.stream_info(name)
        except Exception:  # noqa: BLE001 - not found
            continue
        have.append(name)
    return have


async def test_a_restore_interrupted_part_way_leaves_no_stream_restored(
        bus: Bus, settings: Settings, tmp_path: Path) -> None:
    names = [settings.stream_name, *(f"KV_{b}" for b in kv_names(settings))]
    await bus.log.append(ev.ExportRequested(export_id=ev.new_export_id(), tenant_id="tenant_i", user_id="u1",
                                            user_email="i@example.org", username="autumn"), 0)
    backup = tmp_path / "backup"
    await bk.backup(bus.nc, settings, backup)
    for name in names:
        await bus.js.delete_stream(name)

    task: asyncio.Task[Any] | None = None

    def restored(stream: str, _messages: int) -> None:
        assert task is not None
        task.cancel()  # Ctrl-C: asyncio.run cancels the command's task; it lands in the next stream's restore

    task = asyncio.create_task(bk.restore(bus.nc, backup, settings, restored=restored))
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert task.cancelled()
    await asyncio.sleep(0.5)
    assert await _streams(bus, names) == []  # nothing restored: the same restore can simply run again

    assert [s for s, _ in await bk.restore(bus.nc, backup, settings)] == names
