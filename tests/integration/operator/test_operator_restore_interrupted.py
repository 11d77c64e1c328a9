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
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.operator import backup as bk
from shared.bus.connect import Bus, kv_names
from shared.core import events as ev
from shared.runtime.settings import Settings
from tests.support.env import to_env

ROOT = Path(__file__).resolve().parents[3]


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
    assert await _streams(bus, names) == []  # nothing restored: the same restore can simply run again

    assert [s for s, _ in await bk.restore(bus.nc, backup, settings)] == names


async def test_a_restore_whose_reader_went_away_leaves_no_stream_restored(
        bus: Bus, settings: Settings, tmp_path: Path) -> None:
    # Seen (review): each stream is printed as it is restored, and that print was outside the undo —
    # `grove-export restore DIR | head -1` ended on BrokenPipeError with the first streams restored
    names = [settings.stream_name, *(f"KV_{b}" for b in kv_names(settings))]
    backup = tmp_path / "backup"
    await bk.backup(bus.nc, settings, backup)
    for name in names:
        await bus.js.delete_stream(name)
    printed: list[str] = []

    def restored(stream: str, _messages: int) -> None:
        if printed:
            raise BrokenPipeError(32, "Broken pipe")  # the second line: the reader has gone
        printed.append(stream)

    with pytest.raises(bk.BackupError, match="nothing was restored"):
        await bk.restore(bus.nc, backup, settings, restored=restored)
    assert printed == [names[0]]
    assert await _streams(bus, names) == []


def _restore_cut_short(values: dict[str, Any], backup: Path, sig: int) -> tuple[int, str, str]:
    """`grove-export restore` in a process of its own, sent ``sig`` once it printed its first stream
    (the second, big, is being sent then): (exit code, stdout, stderr)."""
    env = {**os.environ, **to_env(values), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "restore", str(backup)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, first + out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP (its terminal closed)"])
async def test_a_restore_ended_by_sigterm_or_sighup_is_undone_as_ctrl_c_is(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path, sig: int) -> None:
    """Seen: a restore whose ssh session dropped (SIGHUP), or that `timeout`, systemd or Kubernetes
    stopped (SIGTERM), ended at once without the clean-up Ctrl-C gets — here EXPORTS stayed restored,
    the KV buckets' streams missing. Both now end it as Ctrl-C does."""
    names = [settings.stream_name, *(f"KV_{b}" for b in kv_names(settings))]
    beats = await bus.js.key_value(kv_names(settings)[0])
    for i in range(60):  # the second stream takes a while to send: the signal lands in it
        await beats.put(f"catalog.tenant_i.exp_{i}", os.urandom(900_000))
    backup = tmp_path / "backup"
    await bk.backup(bus.nc, settings, backup)
    for name in names:
        await bus.js.delete_stream(name)

    code, out, err = await asyncio.to_thread(_restore_cut_short, values, backup, sig)
    assert out == f"{settings.stream_name}: restored, 0 messages\n", out + err
    assert code == 130 and "Traceback" not in err, err
    assert err.endswith("grove-export: interrupted; restore did not finish\n"), err
    assert await _streams(bus, names) == []  # undone before the process ended


def _restore_hung_up(values: dict[str, Any], backup: Path) -> tuple[int, str]:
    """`grove-export restore` whose stderr is a terminal (a pty) that goes away once it printed its first
    stream — its master closed, as when the ssh session drops: every write there fails with EIO — then
    SIGHUP: (exit code, stdout)."""
    env = {**os.environ, **to_env(values), "PYTHONPATH": str(ROOT)}
    master, terminal = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "restore", str(backup)], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal, text=True)
    finally:
        os.close(terminal)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    os.close(master)  # the terminal is gone
    proc.send_signal(signal.SIGHUP)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, first + out


async def test_a_restore_whose_terminal_went_away_is_undone_and_exits_130(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    """Seen: SIGHUP from a lost terminal undid the restore, then its message saying so failed with EIO
    (stderr gone), and that error replaced the interruption: exit 1, as if the restore had failed."""
    names = [settings.stream_name, *(f"KV_{b}" for b in kv_names(settings))]
    beats = await bus.js.key_value(kv_names(settings)[0])
    for i in range(60):  # the second stream takes a while to send: the signal lands in it
        await beats.put(f"catalog.tenant_i.exp_{i}", os.urandom(900_000))
    backup = tmp_path / "backup"
    await bk.backup(bus.nc, settings, backup)
    for name in names:
        await bus.js.delete_stream(name)

    code, out = await asyncio.to_thread(_restore_hung_up, values, backup)
    assert out == f"{settings.stream_name}: restored, 0 messages\n", out
    assert code == 130
    assert await _streams(bus, names) == []  # the undo is done all the same
