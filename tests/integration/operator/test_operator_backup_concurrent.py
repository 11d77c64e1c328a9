"""Two ``grove-export backup`` runs into one folder at once (two operators, a cron run beside a manual one).

Seen with two real processes into one new folder: both printed "backup in …" and exited 0, and the
folder held a mix of both snapshots — restore refused it ("EXPORTS_….tar.s2 does not match its
checksum in manifest.json"): a backup reported twice and not restorable. Each opened the same file
names on its own and wrote its own snapshot into them. Now a backup holds an flock on the folder while
it writes, and the second is refused in one line, nothing written. Driven: the first is frozen
(SIGSTOP) as soon as the folder is there, before its first file; the second runs whole meanwhile."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from services.operator import backup as bk
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.runtime.settings import Settings
from tests.support.env import to_env


def _backup(env: dict[str, str], folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "services.cli", "backup", str(folder)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _frozen_once_the_folder_is_there(env: dict[str, str], folder: Path) -> subprocess.Popen[str]:
    p = _backup(env, folder)
    deadline = time.monotonic() + 30
    while not folder.is_dir():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, "backup made no folder"
        time.sleep(0.0002)
    p.send_signal(signal.SIGSTOP)
    return p


async def test_a_second_backup_into_a_folder_being_written_is_refused(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    for n in range(200):
        await bus.log.append(ev.ExportRequested(export_id=ev.new_export_id(), tenant_id=f"tenant_{n}", user_id="u1",
                                                user_email=f"r{n}@example.org", username="autumn"), 0)
    env = {**os.environ, **to_env(values)}
    for attempt in range(10):  # until the first is frozen before it wrote a file: the case in question
        folder = tmp_path / f"backup-{attempt}"
        first = await asyncio.to_thread(_frozen_once_the_folder_is_there, env, folder)
        if not any(folder.iterdir()):
            break
        first.send_signal(signal.SIGCONT)
        first.communicate()
    else:
        raise AssertionError("the first backup always wrote a file before it was frozen")
    try:
        second = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "services.cli", "backup", str(folder)], env=env,
            capture_output=True, text=True, timeout=120, check=False)
    finally:
        first.send_signal(signal.SIGCONT)
    _, first_err = await asyncio.to_thread(first.communicate)
    codes = sorted([(first.returncode, first_err), (second.returncode, second.stderr)])
    assert [c for c, _ in codes] == [0, 1], codes  # before: [0, 0], both "backup in …"
    refused = codes[1][1]
    assert refused in (  # frozen holding the folder; or frozen before it took it, and then found it written
        f"grove-export: another backup is writing into {folder} right now: nothing was written; "
        "wait for it to end, or choose another folder\n",
        f"grove-export: {folder} already holds a backup; choose an empty folder\n"), refused
    bk.check_backup(folder, settings)  # whole: every checksum matches its manifest
