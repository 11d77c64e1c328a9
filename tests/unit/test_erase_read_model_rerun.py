"""An erasure of the read model that stopped after its DELETE committed (killed, Ctrl-C, a VACUUM
refused by a busy file) and is run again: the second run finds no row of the tenant, and must still
rewrite the file — the replaced rows' former cells, the address in each, are still in its free space.
Real SQLite, the raw bytes scanned."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from services.gateway.readmodel import ReadModel
from services.operator.erase import _rows
from tests.integration.operator.test_operator_erase_on_disk import _apply_progress


async def _written_without_secure_delete(path: Path) -> None:
    model = await ReadModel.open(path)
    try:
        await model.db.execute("PRAGMA secure_delete = OFF")  # an older gateway, or an SQLite built so
        await _apply_progress(model)  # as a running gateway writes it, once per event
    finally:
        await model.close()


def _files_holding(path: Path, needle: bytes) -> list[str]:
    return sorted(f.name for f in path.parent.glob(path.name + "*") if needle in f.read_bytes())


def test_an_erasure_run_again_after_its_delete_committed_still_writes_the_file_afresh(tmp_path: Path) -> None:
    db = tmp_path / "read-model.db"
    asyncio.run(_written_without_secure_delete(db))
    # the first run's DELETE, committed with secure_delete, then stopped before its VACUUM
    first = sqlite3.connect(db)
    first.execute("PRAGMA secure_delete = ON")
    first.execute("DELETE FROM storage_exports WHERE tenant_id = 't1'")
    first.commit()
    first.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    first.close()
    assert _files_holding(db, b"t1@example.org")  # the replaced rows' cells, as the run left them
    assert _rows(db, "t1", delete=True) == 0  # run again: no row of the tenant is left to delete
    assert _files_holding(db, b"t1@example.org") == []
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM storage_exports").fetchone() == (201,)
