"""``grove-export erase-tenant`` and the bytes left on disk: after it says "nothing left", the erased
requester's address must not be in any file of the nats-server's store (the stream's and the KV
buckets' block files) nor in the read model's files (main file, -wal, -shm). Real nats-server with
its file store, real SQLite; the raw bytes are scanned."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from services.devtools.stack.natsserver import NatsServer
from services.gateway.projection import Row
from services.gateway.readmodel import ReadModel
from services.operator.erase import Eraser
from shared.bus.connect import Bus
from shared.eventlog.jetstream import stream_config
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.integration.operator.test_operator_erase_hostile import _tenant, cli


def _stream_files(server: NatsServer, settings: Settings) -> dict[str, bytes]:
    """Every file of the deployment's streams (the event stream and both KV buckets) in the server's store."""
    streams = Path(server.store_dir) / "jetstream" / "$G" / "streams"
    ours = [streams / settings.stream_name, *streams.glob(f"KV_{settings.kv_prefix}_*")]
    assert (streams / settings.stream_name).is_dir(), sorted(p.name for p in streams.iterdir())
    return {str(f.relative_to(streams)): f.read_bytes() for d in ours for f in d.rglob("*") if f.is_file()}


def _holding(files: dict[str, bytes], needle: bytes) -> list[str]:
    return sorted(name for name, data in files.items() if needle in data)


async def _apply_progress(model: ReadModel) -> None:
    """Rows as a running gateway's projector writes them: once per event (INSERT OR REPLACE), t1's
    row shrinking and growing (an error message set, then cleared by a retry) among other tenants'."""
    seq = 0

    def row(tenant: str) -> Row:
        return Row(id=f"exp_{tenant}", tenant_id=tenant, user_email=f"{tenant}@example.org", mode="blog",
                   include_images=1, delivery_method="email", status="pending", progress=0,
                   created_at=int(time.time()))

    for i in range(200):
        seq += 1
        await model.apply(seq, row(f"o{i}"))
    for step in range(20):
        seq += 1
        await model.apply(seq, dataclasses.replace(row("t1"), progress=step, status="running",
                                                   error_message="e" * (300 - step * 15) or None))
        for i in range(0, 200, 7):
            seq += 1
            await model.apply(seq, dataclasses.replace(row(f"o{i}"), progress=step,
                                                       item_counts=json.dumps({"posts": step})))
    for progress in range(0, 101, 10):
        seq += 1
        await model.apply(seq, dataclasses.replace(row("t10"), progress=progress, status="running"))


async def test_the_erased_requesters_address_is_in_no_block_file_of_the_stream(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, nats_server: NatsServer) -> None:
    """A JetStream purge unlinks the messages from the stream's index, and leaves their bytes in the
    message block (``msgs/1.blk``). Seen: after "nothing left in the stream", ``t1@example.org`` was
    still in the stream's block file, and stayed there after the server stopped."""
    await _tenant(bus, store, settings, "t1")
    await _tenant(bus, store, settings, "t10")  # after t1's: t1's events are not the block's last bytes
    assert _holding(_stream_files(nats_server, settings), b"t1@example.org")  # the scan sees it before
    out = cli(values, "erase-tenant", "t1", "--wait", "0", "--erase-running", "--no-read-model")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "nothing left in the stream" in out.stdout, out.stdout
    files = _stream_files(nats_server, settings)
    assert _holding(files, b"t1@example.org") == [], out.stdout
    assert _holding(files, b"t10@example.org")  # the other tenant's events are all there
    kept = await bus.js.stream_info(settings.stream_name, subjects_filter=f"{settings.subject_prefix}.t10.>")
    assert sum((kept.state.subjects or {}).values()) == 1


async def test_a_stream_made_refusing_message_deletes_is_purged_and_says_its_bytes_stay(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, nats_server: NatsServer) -> None:
    """A stream made before erase wrote events over was made with ``deny_delete``, which nats-server
    never lets an update clear: erase purges there as before, and says the bytes were not written over
    rather than implying it."""
    await bus.js.delete_stream(settings.stream_name)
    await bus.js.add_stream(dataclasses.replace(
        stream_config(settings.stream_name, settings.subject_prefix, 1, 30), deny_delete=True))
    await _tenant(bus, store, settings, "t1")
    dry = cli(values, "erase-tenant", "t1", "--dry-run", "--no-read-model")
    assert "its 1 events of the tenant would be purged, not written over" in dry.stdout, dry.stdout
    out = cli(values, "erase-tenant", "t1", "--wait", "0", "--erase-running", "--no-read-model")
    assert out.returncode == 0, out.stdout + out.stderr
    left = await bus.js.stream_info(settings.stream_name, subjects_filter=f"{settings.subject_prefix}.t1.>")
    assert not left.state.subjects, left.state.subjects
    assert f"the stream {settings.stream_name} refuses message deletes" in out.stdout, out.stdout
    assert "purged, not written over" in out.stdout, out.stdout
    assert "nothing left in the stream (to read)," in out.stdout, out.stdout
    setup = cli(values, "setup", "--nats-only")  # setup converges it without clearing what cannot be cleared
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert (await bus.js.stream_info(settings.stream_name)).config.deny_delete is True


async def test_the_erased_address_is_in_no_file_of_a_read_model_a_gateway_wrote_event_by_event(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings) -> None:
    """A running gateway writes an export's row once per event (INSERT OR REPLACE): each replace
    frees the row's former cell, address and all, without overwriting it, and the erasing
    connection's secure_delete zeroes only the row it deletes itself."""
    await _tenant(bus, store, settings, "t1")
    await _tenant(bus, store, settings, "t10")
    model = await ReadModel.open(settings.read_model_db)  # the gateway's own writer, kept open
    try:
        await _apply_progress(model)
        out = cli(values, "erase-tenant", "t1", "--wait", "0", "--erase-running")
        assert out.returncode == 0, out.stdout + out.stderr
        db = Path(settings.read_model_db)
        files = {f.name: f.read_bytes() for f in db.parent.glob(db.name + "*")}
        assert _holding(files, b"t1@example.org") == [], list(files)
        got = sqlite3.connect(db).execute("SELECT COUNT(*), MAX(progress) FROM storage_exports WHERE tenant_id "
                                          "IN ('t1', 't10')").fetchall()
        assert got == [(1, 100)]
    finally:
        await model.close()


async def test_rows_a_gateway_replaced_without_secure_delete_are_in_no_file_after_the_erasure(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings) -> None:
    """A gateway on an SQLite built without SQLITE_SECURE_DELETE (this one has it; many do not), or
    one from before it asked for it, left each replaced row's former cell, address and all, in the
    file: the erasing connection's secure_delete zeroes only the row it deletes itself."""
    await _tenant(bus, store, settings, "t1")
    await _tenant(bus, store, settings, "t10")
    model = await ReadModel.open(settings.read_model_db)
    try:
        await model.db.execute("PRAGMA secure_delete = OFF")  # as such a build, or an older gateway, wrote it
        await _apply_progress(model)
        db = Path(settings.read_model_db)
        assert _holding({f.name: f.read_bytes() for f in db.parent.glob(db.name + "*")}, b"t1@example.org")
        out = cli(values, "erase-tenant", "t1", "--wait", "0", "--erase-running")
        assert out.returncode == 0, out.stdout + out.stderr
        files = {f.name: f.read_bytes() for f in db.parent.glob(db.name + "*")}
        assert _holding(files, b"t1@example.org") == [], list(files)
        async with model.db.execute("SELECT COUNT(*) FROM storage_exports") as cur:  # the gateway reads on
            assert await cur.fetchone() == (201,)
    finally:
        await model.close()


async def test_an_event_gone_between_the_listing_and_its_delete_is_no_error(
        bus: Bus, store: ObjectStore, settings: Settings) -> None:
    """An event that ages out (the stream's max age) after erase listed it: the server answers its
    delete with "no message found", which leaves nothing to write over."""
    ack = await bus.js.publish(f"{settings.subject_prefix}.t1.exp_0123456789abcdef01234567.StepFailed", b"{}")
    eraser = Eraser(settings, bus, store, [])
    await eraser._delete(settings.stream_name, ack.seq)
    await eraser._delete(settings.stream_name, ack.seq)  # gone: no error
    assert (await bus.js.stream_info(settings.stream_name)).state.messages == 0
