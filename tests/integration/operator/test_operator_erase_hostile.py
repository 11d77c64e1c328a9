"""``grove-export erase-tenant`` against a hostile state: tenant ids that are prefixes of others, data
left by interrupted writes, hostile text in the log. Real nats-server, filesystem store, SQLite read
model; no services run."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from services.gateway import admission as adm
from services.gateway.admission_kv import AdmissionStore
from shared.bus.connect import Bus, kv_names
from shared.core import events as ev
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.env import to_env
from tests.support.wait import until

ROOT = Path(__file__).resolve().parents[3]


def cli(values: dict[str, Any], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **to_env(values)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=ROOT)


async def _tenant(bus: Bus, store: ObjectStore, settings: Settings, tenant: str) -> str:
    """An admitted, requested export with an archive, a snapshot, a heartbeat and an outbox email."""
    admission = AdmissionStore(bus, settings.model_copy(update={"rate_window_s": 0.0}), "test")
    export_id = ev.new_export_id()
    fp = f"{hashlib.sha256(export_id.encode()).hexdigest()}:{'b' * 64}"
    assert isinstance(await admission.admit(tenant, export_id, fp), adm.Admit)
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id=tenant, user_id="u1",
                                            user_email=f"{tenant}@example.org", username="autumn"), 0)
    await admission.remember(tenant, fp, export_id)
    bucket = settings.buckets.exports
    await store.put(bucket, f"exports/{tenant}/{export_id}/grove-export-autumn-2026-01-01.zip", b"PK\x05\x06" + bytes(18))
    await store.put(bucket, f"exports/{tenant}/{export_id}/work/snapshot.jsonl", b'{"title": "secret"}\n')
    hb, _ = kv_names(settings)
    await bus.js.publish(f"$KV.{hb}.assemble.{tenant}.{export_id}", b'{"step": "assemble", "worker": "w", "at": 1}')
    outbox = Path(settings.mail.outbox_dir)
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / f"{export_id}.ready.{tenant}.eml").write_bytes(
        f"Message-ID: <{export_id}.ready.{tenant}@grove.local>\nTo: {tenant}@example.org\n\nhi\n".encode())
    return export_id


def _files(root: Path, tenant: str) -> list[str]:
    """Every file under the tenant's folder of the store, dotfiles too."""
    base = root / "exports" / tenant
    return sorted(p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file()) if base.exists() else []


async def _held(bus: Bus, settings: Settings, tenant: str) -> dict[str, Any]:
    hb, admission = kv_names(settings)

    async def subjects(stream: str, subject: str) -> dict[str, int]:
        return dict((await bus.js.stream_info(stream, subjects_filter=subject)).state.subjects or {})

    rows = sqlite3.connect(settings.read_model_db).execute(
        "SELECT COUNT(*) FROM storage_exports WHERE tenant_id = ?", (tenant,)).fetchone()[0]
    return {
        "events": await subjects(settings.stream_name, f"{settings.subject_prefix}.{tenant}.>"),
        "admission": await subjects(f"KV_{admission}", f"$KV.{admission}.idem.{tenant}.>")
        | await subjects(f"KV_{admission}", f"$KV.{admission}.tenant.{tenant}"),
        "heartbeats": await subjects(f"KV_{hb}", f"$KV.{hb}.*.{tenant}.>"),
        "files": _files(Path(settings.store_root) / settings.buckets.exports, tenant),
        "rows": rows,
        "emails": sorted(p.name for p in Path(settings.mail.outbox_dir).iterdir() if f".{tenant}." in p.name),
    }


async def test_erasing_a_tenant_whose_id_prefixes_others_touches_none_of_theirs(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings) -> None:
    tenants = ["t1", "t10", "t1_x", "t1-x", "T1", "xt1"]
    for t in tenants:
        await _tenant(bus, store, settings, t)
    assert cli(values, "replay").returncode == 0
    before = {t: await _held(bus, settings, t) for t in tenants}
    out = cli(values, "erase-tenant", "t1", "--wait", "0", "--erase-running")
    print(out.stdout, out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert await _held(bus, settings, "t1") == {"events": {}, "admission": {}, "heartbeats": {}, "files": [],
                                                 "rows": 0, "emails": []}
    for t in tenants[1:]:
        assert await _held(bus, settings, t) == before[t], t


async def test_a_write_cut_short_in_the_tenants_folder_is_erased_too(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings) -> None:
    """A killed or disk-full write leaves its temp file (``.<name>.<hex>.tmp``, part of the tenant's
    rendered posts) beside the objects; the store's listing hides it. Seen: erase said "nothing left in
    ... the store", exit 0, and the file stayed, with the folders named by the tenant and export ids."""
    export_id = await _tenant(bus, store, settings, "t1")
    other = await _tenant(bus, store, settings, "t10")
    bucket = Path(settings.store_root) / settings.buckets.exports
    for tenant, export in (("t1", export_id), ("t10", other)):
        (bucket / "exports" / tenant / export / "work" / ".texts.bin.0123456789abcdef0123456789abcdef.tmp"
         ).write_bytes(b"# My secret diary\n")
    assert cli(values, "replay").returncode == 0
    kept = await _held(bus, settings, "t10")
    dry = cli(values, "erase-tenant", "t1", "--dry-run")
    assert "would remove 1 other things in the store (temp files of writes cut short, older object versions)" in dry.stdout, dry.stdout
    out = cli(values, "erase-tenant", "t1", "--wait", "0", "--erase-running")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "removed 1 other things in the store (temp files of writes cut short, older object versions)" in out.stdout, out.stdout
    assert (await _held(bus, settings, "t1"))["files"] == []
    assert not (bucket / "exports" / "t1").exists()  # the folders named by its ids went too
    assert await _held(bus, settings, "t10") == kept


async def test_hostile_ids_in_the_log_are_printed_as_escapes(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings) -> None:
    await _tenant(bus, store, settings, "t1")
    hostile = "exp_\x1b]0;pwned\x07\x1b[2J\u202eevil\u2028x"
    await bus.js.publish(f"{settings.subject_prefix}.t1.{hostile}.ExportRequested", b'{"x": "\x1b[2J"}')
    await bus.js.publish(f"{settings.subject_prefix}.t1.{hostile}.CancelRequested", b"not json")
    odd = f"{settings.subject_prefix}.t1.exp_0123456789abcdef01234567"
    await bus.js.publish(f"{odd}.ExportRequested", json.dumps(
        {"export_id": "exp_0123456789abcdef01234567", "tenant_id": "t1", "username": "\x1b[2J\u202e",
         "user_email": "\x1b]0;x\x07@example.org", "\x1b[31m": "\u2028"}, ensure_ascii=False).encode())
    await bus.js.publish(f"{odd}.Ex\x1b[2Jport\u202e", "\x1b[2J\u202e".encode())
    assert cli(values, "replay").returncode == 0
    for args in (("--dry-run",), ("--wait", "0", "--erase-running")):
        out = cli(values, "erase-tenant", "t1", *args)
        print(out.returncode, repr(out.stdout), repr(out.stderr))
        assert out.returncode == 0, out.stdout + out.stderr
        for bad in ("\x1b", "\x07", "\u202e", "\u2028"):
            assert bad not in out.stdout + out.stderr
    assert (await _held(bus, settings, "t1"))["events"] == {}


async def test_a_tenant_with_more_than_100_000_subjects_is_counted_whole(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings) -> None:
    """The server gives a stream's subject details 100,000 subjects a page; only the first was read.
    Seen: 100,150 events of the tenant purged, and "removed 100000 events of 1 exports" said. The
    events are progress events (``PartUploaded``, one export each), which erase purges without writing
    each over: another type is written over one message delete at a time (minutes for 100,000)."""
    many = 100_150
    await _tenant(bus, store, settings, "t10")
    assert cli(values, "replay").returncode == 0
    prefix = f"{settings.subject_prefix}.t1"
    for i in range(many):  # plain publishes (the stream keeps them): quick, then wait for all of them
        await bus.nc.publish(f"{prefix}.exp_{i:024x}.PartUploaded", b"{}")
    await bus.nc.flush()

    async def stored() -> bool:
        return (await bus.js.stream_info(settings.stream_name)).state.messages == many + 1

    await until(stored, 60, 0.2, "every event stored")
    dry = cli(values, "erase-tenant", "t1", "--dry-run", "--no-read-model")
    assert f"would remove {many} events of {many} exports from stream subjects" in dry.stdout, dry.stdout
    out = cli(values, "erase-tenant", "t1", "--wait", "0", "--no-read-model")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"removed {many} events of {many} exports from stream subjects" in out.stdout, out.stdout
    assert (await _held(bus, settings, "t1"))["events"] == {}
    assert sum((await _held(bus, settings, "t10"))["events"].values()) == 1


async def test_a_reason_or_name_that_is_not_utf8_is_refused_in_one_line_before_anything_changes(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings) -> None:
    """A byte the locale cannot decode (``é`` typed in a Latin-1 terminal: 0xE9) reaches Python as a
    lone surrogate, which no JSON event can carry. Seen: erase-tenant (and cancel, retry, resend,
    unlock) ended in a PydanticSerializationError traceback, exit 1, at the first CancelRequested."""
    await _tenant(bus, store, settings, "t1")
    assert cli(values, "replay").returncode == 0
    before = await _held(bus, settings, "t1")
    for flag in ("--reason", "--by"):
        out = cli(values, "erase-tenant", "t1", "--wait", "0", flag, "L\udce9schung")
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and f"{flag} must be UTF-8 text" in out.stderr, out.stderr
    assert await _held(bus, settings, "t1") == before



async def test_the_erased_rows_are_gone_from_the_read_models_files_too(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings) -> None:
    """SQLite leaves a deleted row's bytes in its page, and with the file held open in WAL mode (a
    running gateway) the old page stays in the main file until a later checkpoint. Seen: after the
    erasure, ``t1@example.org`` (the requester's address) was still in read-model.db."""
    await _tenant(bus, store, settings, "t1")
    await _tenant(bus, store, settings, "t10")
    assert cli(values, "replay").returncode == 0
    gateway = sqlite3.connect(settings.read_model_db)  # a running gateway keeps its read model open
    try:
        gateway.execute("PRAGMA journal_mode=WAL")
        assert gateway.execute("SELECT COUNT(*) FROM storage_exports").fetchone() == (2,)
        out = cli(values, "erase-tenant", "t1", "--wait", "0", "--erase-running")
        assert out.returncode == 0, out.stdout + out.stderr
        db = Path(settings.read_model_db)
        files = {f.name: f.read_bytes() for f in db.parent.glob(db.name + "*")}
        assert not [name for name, data in files.items() if b"t1@example.org" in data], list(files)
        assert gateway.execute("SELECT user_email FROM storage_exports").fetchall() == [("t10@example.org",)]
    finally:
        gateway.close()


async def test_on_a_versioned_bucket_the_erased_objects_old_versions_go_too(
        values: dict[str, Any], bus: Bus, moto_server: str) -> None:
    """S3 keeps every version of an object in a bucket with versioning on: a delete adds a delete
    marker, and the archive stays, readable by its version id. Seen: erase said "nothing left in ...
    the store", exit 0, and list_object_versions still listed the tenant's archive and snapshot."""
    from shared.objectstore.factory import open_store
    from tests.support.env import build, s3_values

    values = {**values, **s3_values(moto_server)}
    settings = build(values)
    store = await open_store(settings, create_buckets=True)
    try:
        client = store.client  # type: ignore[attr-defined]
        bucket = settings.buckets.exports
        await client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        await _tenant(bus, store, settings, "t1")
        kept = await _tenant(bus, store, settings, "t10")
        assert cli(values, "replay").returncode == 0
        out = cli(values, "erase-tenant", "t1", "--wait", "0", "--erase-running")
        assert out.returncode == 0, out.stdout + out.stderr

        async def versions(prefix: str) -> list[str]:
            listed = await client.list_object_versions(Bucket=bucket, Prefix=prefix)
            return sorted(v["Key"] for v in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])])

        assert await versions("exports/t1/") == [], out.stdout
        assert len(await versions(f"exports/t10/{kept}/")) == 2
    finally:
        await store.close()
