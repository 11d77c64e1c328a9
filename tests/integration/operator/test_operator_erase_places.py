"""``grove-export erase-tenant`` erases only where the deployment keeps the tenant's data, and refuses
before changing anything when it cannot tell.

Seen: run from a folder other than the stack's, the command purged the tenant's log, then said
"removed 0 archives … removed 0 read-model rows in var/read-model.db … nothing left" and exited 0,
while the ZIP and the read-model row (with the requester's email) stayed where they really were; a
mistyped ``--read-model`` did the same. And with exports that had not stopped within ``--wait``, it
erased anyway and exited 0. Here a real nats-server, the filesystem store and SQLite read model:
each refusal leaves the log, the store and the read model exactly as they were.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.env import to_env

ROOT = Path(__file__).resolve().parents[3]  # this checkout, importable from any working folder


def cli(values: dict[str, Any], *args: str, cwd: Path | None = None, drop: tuple[str, ...] = (),
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in {**os.environ, **to_env(values)}.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=cwd or ROOT)


async def _tenant_with_an_archive(bus: Bus, store: ObjectStore, settings: Settings, values: dict[str, Any],
                                  tenant: str) -> tuple[str, str]:
    """A requested export in the log, an archive in the store and the export's row in the read model
    (built by `grove-export replay`, as a gateway's is). No services run: the export stays pending."""
    export_id = ev.new_export_id()
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id=tenant, user_id="u1",
                                            user_email=f"{tenant}@example.org", username="autumn"), 0)
    key = f"exports/{tenant}/{export_id}/archive.zip"
    await store.put(settings.buckets.exports, key, b"PK\x05\x06" + b"\x00" * 18)
    replay = cli(values, "replay")
    assert replay.returncode == 0, replay.stderr
    return export_id, key


async def _held(bus: Bus, store: ObjectStore, settings: Settings, tenant: str) -> tuple[int, list[str], int]:
    """Events, store keys and read-model rows of ``tenant``, looked up independently of the command."""
    info = await bus.js.stream_info(settings.stream_name, subjects_filter=f"{settings.subject_prefix}.{tenant}.>")
    events = sum((info.state.subjects or {}).values())
    objects = [o.key for o in await store.list_keys(settings.buckets.exports, f"exports/{tenant}/")]
    rows = sqlite3.connect(settings.read_model_db).execute(
        "SELECT COUNT(*) FROM storage_exports WHERE tenant_id = ?", (tenant,)).fetchone()[0]
    return events, objects, rows


def _one_line(out: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one stderr line of a refusal: exit 1, or ``code`` 2 for a bad command line (README, Exit codes)."""
    assert out.returncode == code, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


async def test_run_from_another_folder_it_refuses_before_purging_anything(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, tmp_path: Path) -> None:
    tenant = "tenant_elsewhere"
    await _tenant_with_an_archive(bus, store, settings, values, tenant)
    before = await _held(bus, store, settings, tenant)
    assert before[0] == 1 and before[1] and before[2] == 1
    empty = tmp_path / "empty"
    empty.mkdir()

    # the NATS settings only, as in `cd /tmp/empty && GROVE_NATS_URL=… grove-export erase-tenant T`:
    # the read model, store and outbox fall back to ./var/…, which is not where they are
    elsewhere = cli(values, "erase-tenant", tenant, "--by", "ada", "--reason", "gdpr", cwd=empty,
                    drop=("GROVE_READ_MODEL_DB", "GROVE_STORE_ROOT", "GROVE_MAIL__OUTBOX_DIR"))
    line = _one_line(elsewhere)
    assert str(empty / "var" / "read-model.db") in line and "GROVE_READ_MODEL_DB" in line, line
    assert "nothing was erased" in line and "--no-read-model" in line, line
    assert elsewhere.stdout == ""
    assert await _held(bus, store, settings, tenant) == before

    # the read model found, the store not: refused as well, naming the store's setting
    no_store = cli(values, "erase-tenant", tenant, "--read-model", str(settings.read_model_db), cwd=empty,
                   drop=("GROVE_STORE_ROOT",))
    line = _one_line(no_store)
    assert str(empty / "var" / "store") in line and "GROVE_STORE_ROOT" in line, line
    assert await _held(bus, store, settings, tenant) == before

    # a store folder that exists but is not the store (no exports bucket folder in it)
    (tmp_path / "not-the-store").mkdir()
    wrong_store = cli({**values, "store_root": str(tmp_path / "not-the-store")}, "erase-tenant", tenant)
    line = _one_line(wrong_store)
    assert "has no grove-exports/ bucket folder" in line and "GROVE_STORE_ROOT" in line, line
    assert await _held(bus, store, settings, tenant) == before

    # --no-read-model skips only the read-model check: the store's still stands
    line = _one_line(cli(values, "erase-tenant", tenant, "--no-read-model", cwd=empty, drop=("GROVE_STORE_ROOT",)))
    assert "GROVE_STORE_ROOT" in line, line
    assert await _held(bus, store, settings, tenant) == before

    # the dry run is refused the same way: it would otherwise count 0 rows in the wrong file
    dry = cli(values, "erase-tenant", tenant, "--dry-run", cwd=empty, drop=("GROVE_READ_MODEL_DB",))
    assert "GROVE_READ_MODEL_DB" in _one_line(dry)


async def test_a_mistyped_read_model_path_is_refused_and_no_read_model_says_what_it_leaves(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, tmp_path: Path) -> None:
    tenant = "tenant_typo"
    await _tenant_with_an_archive(bus, store, settings, values, tenant)
    before = await _held(bus, store, settings, tenant)

    # no such file on the command line: a bad argument, exit 2 (README, Exit codes), as `verify`'s
    typo = cli(values, "erase-tenant", tenant, "--read-model", "/nonexistent/rm.db", "--reason", "gdpr")
    line = _one_line(typo, code=2)
    assert "/nonexistent/rm.db does not exist (--read-model)" in line and "nothing was erased" in line, line
    assert await _held(bus, store, settings, tenant) == before

    not_a_model = tmp_path / "content.db"  # a file that is there but is no read model
    sqlite3.connect(not_a_model).execute("CREATE TABLE posts (id TEXT)").connection.commit()
    line = _one_line(cli(values, "erase-tenant", tenant, "--read-model", str(not_a_model)))
    assert "has no storage_exports table" in line, line
    assert not_a_model.stat().st_size > 0 and await _held(bus, store, settings, tenant) == before

    both = cli(values, "erase-tenant", tenant, "--no-read-model", "--read-model", str(settings.read_model_db))
    assert both.returncode == 2 and "Traceback" not in both.stderr, both.stderr  # the command line: exit 2
    assert both.stderr.count("\n") == 1 and "contradict" in both.stderr, both.stderr
    assert await _held(bus, store, settings, tenant) == before

    # a deployment whose gateways keep their read models out of reach: erased but the read model,
    # and the output says so instead of "nothing left … or the read model"
    out = cli(values, "erase-tenant", tenant, "--no-read-model", "--wait", "0", "--erase-running")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "read-model rows" not in out.stdout and "none cleared (--no-read-model)" in out.stdout, out.stdout
    assert "the read model" not in out.stdout.splitlines()[-1], out.stdout
    assert await _held(bus, store, settings, tenant) == (0, [], 1)  # the row is the gateways' to drop


async def test_exports_still_running_after_the_wait_are_an_error_that_erases_nothing(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings) -> None:
    tenant = "tenant_running"
    export_id, _ = await _tenant_with_an_archive(bus, store, settings, values, tenant)
    _, objects, rows = await _held(bus, store, settings, tenant)

    # no services run: the cancel is logged but nothing stops the export
    out = cli(values, "erase-tenant", tenant, "--wait", "1", "--by", "ada", "--reason", "gdpr")
    line = _one_line(out)
    assert f"1 exports had not stopped after 1s ({export_id}" in line and "nothing was erased" in line, line
    assert "--erase-running" in line, line
    events, still_objects, still_rows = await _held(bus, store, settings, tenant)
    assert events == 2 and still_objects == objects and still_rows == rows  # ExportRequested + CancelRequested
    assert [type(e).__name__ for _, e in [x async for x in bus.log.history(tenant, export_id)]] == [
        "ExportRequested", "CancelRequested"]

    forced = cli(values, "erase-tenant", tenant, "--wait", "1", "--erase-running", "--by", "ada", "--reason", "gdpr")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "1 exports had not stopped after 1s (erased anyway, --erase-running)" in forced.stdout, forced.stdout
    assert await _held(bus, store, settings, tenant) == (0, [], 0)


def test_a_read_model_that_is_a_fifo_or_a_folder_is_refused_at_once(tmp_path: Path) -> None:
    """Seen: `erase-tenant T --read-model FIFO` (or GROVE_READ_MODEL_DB naming one) waited for ever in
    SQLite's open, where neither Ctrl-C nor SIGTERM ended it; a folder said "disk I/O error". Given as
    --read-model, such a path is a bad argument: exit 2, as `verify`'s FIFO or folder (it exited 1,
    against README, Exit codes); named by GROVE_READ_MODEL_DB, a place not there from here: exit 1, as
    a GROVE_STORE_ROOT that names no store."""
    fifo, folder = tmp_path / "rm.db", tmp_path / "rm"
    os.mkfifo(fifo)
    folder.mkdir()
    env = {**os.environ, "GROVE_NATS_URL": "nats://127.0.0.1:1"}  # refused before any server is asked
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    for path in (fifo, folder):
        out = subprocess.run([sys.executable, "-m", "services.cli", "erase-tenant", "t1", "--read-model", str(path)],
                             env=env, capture_output=True, text=True, timeout=20, check=False, cwd=ROOT)
        assert (out.returncode, out.stderr) == (
            2, f"grove-export: the read model {path} (--read-model) is not a regular file (a folder, a device, a "
               f"pipe): it is not a gateway's read model; nothing was erased\n"), out.stderr
        out = subprocess.run([sys.executable, "-m", "services.cli", "erase-tenant", "t1"],
                             env={**env, "GROVE_READ_MODEL_DB": str(path)}, capture_output=True, text=True,
                             timeout=20, check=False, cwd=ROOT)
        assert (out.returncode, out.stderr) == (
            1, f"grove-export: the read model {path} (GROVE_READ_MODEL_DB) is not a regular file (a folder, a "
               f"device, a pipe): it is not a gateway's read model; nothing was erased\n"), out.stderr
