"""Two ``grove-export restore`` runs at once (two operators following the same runbook).

Seen with two real processes on an empty server: one restored EXPORTS, the other's restore of it was
refused ("stream name already in use", 10130) and its undo deleted every stream of the backup the
server had — the first one's EXPORTS among them. Both ended "nothing was restored", or, when the
first was already past EXPORTS, it went on with the buckets and exited 0 saying all three were
restored, with no EXPORTS on the server: a half-restored server reported whole. A restore now takes
back only what it made; the one refused says why. Real nats-server; the order is driven: the second
looks (finds none) before the first has made EXPORTS, and sends its own after."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from services.operator import backup as bk
from shared.bus.connect import Bus, kv_names
from shared.core import events as ev
from shared.runtime.settings import Settings
from tests.integration.operator.test_operator_restore_existing import _streams


async def test_a_restore_refused_because_another_made_the_stream_leaves_that_ones_streams(
        bus: Bus, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [settings.stream_name, *(f"KV_{b}" for b in kv_names(settings))]
    for n in range(20):
        await bus.log.append(ev.ExportRequested(export_id=ev.new_export_id(), tenant_id=f"tenant_{n}", user_id="u1",
                                                user_email=f"r{n}@example.org", username="autumn"), 0)
    backup = tmp_path / "backup"
    await bk.backup(bus.nc, settings, backup)
    for name in names:
        await bus.js.delete_stream(name)

    real = bk.restore_stream
    first_made_the_log, second_ended = asyncio.Event(), asyncio.Event()
    order: list[str] = []
    tasks: dict[str, asyncio.Task[Any]] = {}

    async def driven(nc: Any, folder: Path, entry: dict[str, Any]) -> dict[str, Any]:
        me = "first" if asyncio.current_task() is tasks["first"] else "second"
        if me == "second" and entry["stream"] == settings.stream_name:
            await first_made_the_log.wait()  # it found none; the first makes it meanwhile
        if me == "first" and entry["stream"] != settings.stream_name:
            await second_ended.wait()  # the second's refusal and its undo land while the first goes on
        order.append(f"{me} {entry['stream']}")
        try:
            return await real(nc, folder, entry)
        finally:
            if me == "first" and entry["stream"] == settings.stream_name:
                first_made_the_log.set()

    monkeypatch.setattr(bk, "restore_stream", driven)

    async def second() -> list[tuple[str, int]]:
        try:
            return await bk.restore(bus.nc, backup, settings)
        finally:
            second_ended.set()

    tasks["first"] = asyncio.create_task(bk.restore(bus.nc, backup, settings))
    tasks["second"] = asyncio.create_task(second())
    first, refused = await asyncio.gather(tasks["first"], tasks["second"], return_exceptions=True)

    assert order[:2] == [f"first {settings.stream_name}", f"second {settings.stream_name}"], order
    assert first == [(settings.stream_name, 20), (names[1], 0), (names[2], 0)], first  # it says all restored
    assert await _streams(bus, names) == {settings.stream_name: 20, names[1]: 0, names[2]: 0}  # and they are
    assert isinstance(refused, bk.BackupError), refused
    assert "stream name already in use" in str(refused) and "another restore" in str(refused), refused
    assert "nothing was restored" in str(refused) and "deleted again" not in str(refused), refused
