"""``grove-export restore`` into a nats-server older than the snapshots' format says so.

Seen (a newcomer following *Back up and restore the truth* in a shell without the virtualenv): the
README's `nats-server -js …` was Debian's 2.9.10, which restores only the tar snapshots of servers before
2.15. A backup taken from the project's 2.15 server holds NATSARC1 archives; restore said `restore of
EXPORTS: restore failed: archive/tar: invalid tar header (code 10062); nothing was restored: run restore
again once that is fixed` — not what to fix. It now refuses before asking anything of the streams, naming
both versions and the server to use. The unit half needs no old server; the integration half runs
against a real pre-2.15 nats-server when the machine has one on PATH (else it skips)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.operator.backup import unreadable_here
from shared.bus.connect import Bus
from shared.core import events as ev
from tests.integration.operator.test_operator_restore_existing import cli
from tests.support.nojetstream import nats_server_process


def test_the_refusal_is_for_archives_into_a_server_before_2_15_only() -> None:
    line = unreadable_here((2, 9, 10), ["EXPORTS"])
    assert line is not None and "nats-server 2.9.10" in line and "EXPORTS" in line, line
    assert "restore into nats-server 2.15 or later" in line and "nothing was deleted or restored" in line, line
    assert unreadable_here((2, 15, 1), ["EXPORTS"]) is None
    assert unreadable_here((3, 0, 0), ["EXPORTS"]) is None
    assert unreadable_here((2, 9, 10), []) is None  # a backup in the tar format restores there
    assert unreadable_here(None, ["EXPORTS"]) is None  # a server that names no version is asked anyway


def _old_nats_server() -> str | None:
    """A nats-server on PATH (the project's own is 2.15 or later) older than 2.15."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        binary = Path(folder) / "nats-server"
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            continue
        said = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False)
        if (m := re.search(r"v(\d+)\.(\d+)\.", said.stdout + said.stderr)) and (int(m[1]), int(m[2])) < (2, 15):
            return str(binary)
    return None


@pytest.fixture
def old_server(tmp_path: Path) -> Iterator[str]:
    binary = _old_nats_server()
    if binary is None:
        pytest.skip("no nats-server older than 2.15 on PATH (Debian's package is 2.9)")
    with nats_server_process(binary, "-js", "-sd", str(tmp_path / "old")) as url:
        yield url


async def test_a_2_15_backup_restored_into_an_older_server_is_refused_saying_which_server_to_use(
        values: dict[str, Any], bus: Bus, tmp_path: Path, old_server: str) -> None:
    await bus.log.append(ev.ExportRequested(export_id=ev.new_export_id(), tenant_id="tenant_o", user_id="u1",
                                            user_email="o@example.org", username="autumn"), 0)
    backup = tmp_path / "backup"
    assert cli(values, "backup", str(backup)).returncode == 0
    for replace in ((), ("--replace",)):
        out = cli({**values, "nats_url": old_server}, "restore", *replace, str(backup))
        assert out.returncode == 1 and out.stdout == "", out.stdout + out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "restore into nats-server 2.15 or later" in lines[0], out.stderr
        assert re.search(r"this server runs nats-server 2\.(\d|1[0-4])\.", lines[0]), lines[0]
