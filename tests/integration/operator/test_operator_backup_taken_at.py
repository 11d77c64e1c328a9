"""A backup's ``created`` (what restore names as the time the backup was taken, and tells the operator to
erase again every tenant erased since) is when the backup began, before its first snapshot: nothing the
backup lacks may have been written before it. Taken after the last snapshot, as it was, a large log's
minutes of snapshotting fell before it: a tenant erased while the event stream's snapshot was being
sent is in the backup, yet was erased "before the backup was taken", so the restore's note left it out
and its requester's address came back for good; an export requested meanwhile is not in the backup,
yet was requested "before" it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from services.operator import backup as bk
from shared.bus.connect import Bus
from shared.runtime.settings import Settings


async def test_what_the_backup_lacks_was_written_after_the_time_it_names(
        bus: Bus, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, written = bk.snapshot, []

    async def then_a_request(nc: Any, stream: str, out: Path) -> bk.Saved:
        saved = await real(nc, stream, out)
        if stream == settings.stream_name:  # the log's snapshot is taken; a request lands after it
            ack = await bus.js.publish(f"{settings.subject_prefix}.t_late.exp_late.ExportRequested", b"{}",
                                       stream=settings.stream_name)
            written.append((await bus.js.get_msg(settings.stream_name, seq=ack.seq, direct=True)).time)
        return saved

    monkeypatch.setattr(bk, "snapshot", then_a_request)
    saved = await bk.backup(bus.nc, settings, tmp_path / "backup")
    log = next(s for s in saved if s.stream == settings.stream_name)
    assert log.messages == 0 and len(written) == 1  # the request is not in the backup
    created = datetime.fromisoformat(json.loads((tmp_path / "backup" / "manifest.json").read_text())["created"])
    assert created <= written[0], (created, written[0])
