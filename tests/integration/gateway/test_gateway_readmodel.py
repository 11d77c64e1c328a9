"""The read model: every replica converges, replay rebuilds it identically, a miss folds the log."""

from __future__ import annotations

import gc
import sqlite3

import pytest

from services.gateway import projector, replay
from services.gateway.keys import READ_MODEL
from services.gateway.readmodel import ReadModel
from shared.core import events as ev


def rows(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM storage_exports ORDER BY id").fetchall()


async def drive_many_exports(gateway, pipeline, headers_for) -> list[str]:
    ids = []
    for n, tenant in enumerate(["tenant_a", "tenant_b", "tenant_c", "tenant_d", "tenant_e"]):
        resp = await gateway.post("/api/export", json={"mode": "storage" if n % 2 else "blog"},
                                  headers=headers_for(tenant))
        export_id = (await resp.json())["exportId"]
        ids.append(export_id)
        if n == 0:
            await pipeline.complete(tenant, export_id, notification="failed")
        elif n == 1:
            await pipeline.fail(tenant, export_id)
        elif n == 2:
            await pipeline.assemble(tenant, export_id, parts=3)
            await gateway.post(f"/api/export/cancel/{export_id}", headers=headers_for(tenant))
            await pipeline.append(ev.ExportCancelled(tenant_id=tenant, export_id=export_id, aborted_upload=True))
        elif n == 3:
            await pipeline.complete(tenant, export_id)
            await pipeline.append(ev.ExportExpired(tenant_id=tenant, export_id=export_id))
    return ids


async def test_replay_into_a_fresh_file_equals_the_live_tables_of_both_replicas(
        start_gateway, gateway, settings, settings_for, pipeline, headers_for, tmp_path, monkeypatch):
    other = await start_gateway(1)
    await drive_many_exports(gateway, pipeline, headers_for)
    await pipeline.settle(gateway, other)
    live = rows(settings.read_model_db)
    assert len(live) == 5 and {r[6] for r in live} == {"complete", "failed", "cancelled", "expired", "pending"}
    assert rows(settings_for(1).read_model_db) == live

    fresh = tmp_path / "replayed.db"
    assert await replay(fresh, pipeline.bus) == 5
    assert rows(fresh) == live
    assert not list(tmp_path.glob("replayed.db.replay-*"))  # the temp file was swapped in

    # Batches of 3 events: reads run ahead and writes lag behind the folding across many batches
    # (an export's events straddle them), and the table still ends the same.
    monkeypatch.setattr(projector, "REPLAY_BATCH", 3)
    small = tmp_path / "small-batches.db"
    assert await replay(small, pipeline.bus) == 5
    assert rows(small) == live


async def test_replay_replaces_a_damaged_table_in_place(settings_for, start_gateway, pipeline, headers_for, gateway):
    await drive_many_exports(gateway, pipeline, headers_for)
    await pipeline.settle(gateway)
    path = settings_for(7).read_model_db
    damaged = await ReadModel.open(path)
    await damaged.db.execute("INSERT INTO storage_exports (id, tenant_id, user_email, created_at) "
                             "VALUES ('exp_ghost', 't', 'e', 0)")
    await damaged.db.commit()
    await damaged.close()
    assert await replay(settings_for(7), pipeline.bus) == 5
    assert rows(path) == rows(settings_for(0).read_model_db)


async def test_replay_folds_with_the_cycle_collector_paused_and_gives_it_back_as_it_was(
        gateway, pipeline, headers_for, tmp_path, monkeypatch):
    await drive_many_exports(gateway, pipeline, headers_for)
    await pipeline.settle(gateway)
    seen: list[bool] = []
    write_rows = ReadModel.write_rows

    async def spying(self, rows, seq):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        await write_rows(self, rows, seq)

    monkeypatch.setattr(ReadModel, "write_rows", spying)
    assert gc.isenabled()
    assert await replay(tmp_path / "a.db", pipeline.bus) == 5
    assert seen == [False] and gc.isenabled()

    gc.disable()  # a caller that had it off keeps it off
    try:
        assert await replay(tmp_path / "b.db", pipeline.bus) == 5
        assert not gc.isenabled()
    finally:
        gc.enable()

    (tmp_path / "not-a-folder").write_text("x")  # a replay that fails gives it back too
    with pytest.raises(sqlite3.Error):
        await replay(tmp_path / "not-a-folder" / "c.db", pipeline.bus)
    assert gc.isenabled() and seen == [False, False]


async def test_a_replica_started_later_catches_up_from_the_log(start_gateway, gateway, pipeline, headers_for):
    await drive_many_exports(gateway, pipeline, headers_for)
    late = await start_gateway(2)
    await pipeline.settle(late)
    assert (await late.app[READ_MODEL].dump()) == (await gateway.app[READ_MODEL].dump())


async def test_status_folds_the_log_when_the_row_is_missing(gateway, pipeline, headers_for):
    export_id = (await (await gateway.post("/api/export", json={}, headers=headers_for())).json())["exportId"]
    await pipeline.assemble("tenant_a", export_id)
    await pipeline.settle(gateway)
    model = gateway.app[READ_MODEL]
    await model.db.execute("DELETE FROM storage_exports WHERE id = ?", (export_id,))
    await model.db.commit()
    resp = await gateway.get(f"/api/export/status/{export_id}", headers=headers_for())
    assert resp.status == 200
    assert (await resp.json())["status"] == "uploading"
