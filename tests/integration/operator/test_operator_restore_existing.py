"""``grove-export restore`` into a server that has some of the backup's streams restores none of them.

Seen: with only EXPORTS deleted, restore restored EXPORTS, then failed on KV_…_heartbeats with
"stream name already in use", exit 1, printing nothing about EXPORTS: a half-restored server on
which the same command then failed on EXPORTS. Real nats-server; the backup is `grove-export
backup`'s own."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.bus.connect import Bus, kv_names
from shared.core import events as ev
from shared.runtime.settings import Settings
from tests.support.backups import archive_snapshot
from tests.support.env import to_env


def cli(values: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env={**os.environ, **to_env(values)},
                          capture_output=True, text=True, timeout=120, check=False)


async def _streams(bus: Bus, names: list[str]) -> dict[str, int]:
    """The streams of ``names`` the server has, with their message counts."""
    have = {}
    for name in names:
        try:
            have[name] = int((await bus.js.stream_info(name)).state.messages)
        except Exception:  # noqa: BLE001 - not found
            continue
    return have


async def _backed_up(values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> tuple[list[str], Path]:
    """The deployment's streams (the log, then the two KV buckets'), one request in the log, and
    `grove-export backup`'s own backup of them in ``tmp_path/backup``."""
    hb, admission = (f"KV_{b}" for b in kv_names(settings))
    await bus.log.append(ev.ExportRequested(export_id=ev.new_export_id(), tenant_id="tenant_r", user_id="u1",
                                            user_email="r@example.org", username="autumn"), 0)
    backup = tmp_path / "backup"
    assert cli(values, "backup", str(backup)).returncode == 0
    return [settings.stream_name, hb, admission], backup


async def test_restore_refuses_before_restoring_anything_when_one_stream_exists(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    names, backup = await _backed_up(values, bus, settings, tmp_path)
    hb, admission = names[1:]

    await bus.js.delete_stream(settings.stream_name)  # only the log is gone; the KV buckets' streams stay
    out = cli(values, "restore", str(backup))
    assert out.returncode == 1 and out.stdout == "", out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"the server already has streams {hb}, {admission}: " in lines[0], lines[0]
    assert "nothing was restored" in lines[0] and "grove-setup Job" in lines[0], lines[0]
    # Seen: it named `nats stream rm -f …`, the nats CLI, which nothing here installs: now a command one has
    assert lines[0].endswith(f"replace them, deleting what they hold: `grove-export restore --replace {backup}`"), \
        lines[0]
    assert "nats stream" not in lines[0]
    assert await _streams(bus, names) == {hb: 0, admission: 0}  # EXPORTS was not restored

    out = cli(values, "restore", "--replace", str(backup))  # the command the line names, as it names it
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"{hb}: deleted (--replace)", f"{admission}: deleted (--replace)",
                                       f"{settings.stream_name}: restored, 1 messages", f"{hb}: restored, 0 messages",
                                       f"{admission}: restored, 0 messages"], out.stdout
    assert await _streams(bus, names) == {settings.stream_name: 1, hb: 0, admission: 0}
    # a tenant erased after the backup was taken is back: the operator is told to erase it again
    taken = json.loads((backup / "manifest.json").read_text())["created"]
    assert out.stderr == (f"grove-export: note: this backup was taken {taken}; a tenant erased since then is back "
                          "with it: run `grove-export erase-tenant TENANT` again for each one; and an export "
                          "requested since then is not in the restored log: the janitor leaves its archive and work "
                          "objects in the store and names its export in its summary (`not deleted: N objects of M "
                          "exports the log does not hold …`)\n"), out.stderr


async def test_a_restore_that_fails_part_way_leaves_the_server_as_it_found_it(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    """Seen: the second snapshot refused by the server left EXPORTS restored (a half-restored server)
    with a line asking the operator to delete it; and a timeout or read error there did not even name
    it. Restore now deletes the streams it made (none was there when it began) and says so."""
    hb, admission = (f"KV_{b}" for b in kv_names(settings))
    names = [settings.stream_name, hb, admission]
    backup = tmp_path / "backup"
    assert cli(values, "backup", str(backup)).returncode == 0
    # the second snapshot is not one the server can restore (its S2 chunks' CRCs are wrong, which restore's
    # own read of its consumers does not check), with a checksum that matches it
    manifest = json.loads((backup / "manifest.json").read_text())
    broken = archive_snapshot()
    (backup / manifest["streams"][1]["file"]).write_bytes(broken)
    manifest["streams"][1]["sha256"] = hashlib.sha256(broken).hexdigest()
    (backup / "manifest.json").write_text(json.dumps(manifest))
    for name in names:
        await bus.js.delete_stream(name)

    out = cli(values, "restore", str(backup))
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout == f"{settings.stream_name}: restored, 0 messages\n", out.stdout
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith(f"grove-export: restore of {hb}"), line
    assert f"nothing was restored ({settings.stream_name} deleted again): run restore again" in line, line
    assert await _streams(bus, names) == {}, line


async def test_a_backup_listing_a_stream_twice_restores_nothing(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    """Seen: a manifest listing EXPORTS twice restored EXPORTS, then failed on its second copy with
    "stream name already in use", leaving the server half restored; and one listing only EXPORTS
    restored it alone and exited 0, the KV buckets never restored."""
    hb, admission = (f"KV_{b}" for b in kv_names(settings))
    names = [settings.stream_name, hb, admission]
    backup = tmp_path / "backup"
    assert cli(values, "backup", str(backup)).returncode == 0
    manifest = json.loads((backup / "manifest.json").read_text())
    for name in names:
        await bus.js.delete_stream(name)
    for streams in ([manifest["streams"][0], *manifest["streams"]], manifest["streams"][:1]):
        (backup / "manifest.json").write_text(json.dumps({**manifest, "streams": streams}))
        out = cli(values, "restore", str(backup))
        assert out.returncode == 1 and out.stdout == "", out.stdout + out.stderr
        assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr
        assert await _streams(bus, names) == {}, out.stderr  # nothing restored


async def test_a_large_snapshot_is_sent_a_chunk_at_a_time(bus: Bus, settings: Settings, tmp_path: Path) -> None:
    """Seen: restore read each snapshot whole into memory before sending it (a backup of a big stream
    needed as much memory as its largest file). 24 MiB that the server refuses as a snapshot: what
    matters here is the memory restore takes on the way, then one BackupError and no stream."""
    import tracemalloc

    from services.operator.backup import BackupError, restore_stream

    data = os.urandom(24 << 20)
    (tmp_path / "big.tar.s2").write_bytes(data)
    name = f"BIG_{settings.kv_prefix}"
    entry = {"stream": name, "file": "big.tar.s2", "sha256": hashlib.sha256(data).hexdigest(),
             "meta": {"config": {"name": name, "subjects": [f"{name}.>"], "storage": "file", "num_replicas": 1},
                      "state": {"messages": 1}}}
    del data
    tracemalloc.start()
    try:
        with pytest.raises(BackupError):
            await restore_stream(bus.nc, tmp_path, entry)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"
    assert await _streams(bus, [name]) == {}


async def test_a_snapshot_changed_since_it_was_checked_is_not_restored(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    """The checksum is taken from the handle the chunks are then read from, before the server is asked:
    a file that no longer matches (replaced since check_backup read it) makes no stream."""
    import asyncio

    from services.operator.backup import BackupError, check_backup, restore_stream

    backup = tmp_path / "backup"
    assert cli(values, "backup", str(backup)).returncode == 0
    entry = check_backup(backup, settings)[0]
    await bus.js.delete_stream(settings.stream_name)
    assert await _streams(bus, [settings.stream_name]) == {}
    with pytest.raises(BackupError, match="does not match its checksum"):
        await restore_stream(bus.nc, backup, {**entry, "sha256": "0" * 64})
    await asyncio.sleep(1)
    assert await _streams(bus, [settings.stream_name]) == {}


async def test_a_restore_that_times_out_part_way_leaves_the_server_as_it_found_it(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: a timeout on the second stream escaped as NATS's own timeout line, EXPORTS restored and not named."""
    from nats.errors import TimeoutError as NatsTimeout

    from services.operator import backup as bk

    names = [settings.stream_name, *(f"KV_{b}" for b in kv_names(settings))]
    backup = tmp_path / "backup"
    assert cli(values, "backup", str(backup)).returncode == 0
    for name in names:
        await bus.js.delete_stream(name)
    real = bk.restore_stream

    async def times_out(nc: Any, folder: Path, entry: dict[str, Any]) -> dict[str, Any]:
        if entry["stream"] != settings.stream_name:
            raise NatsTimeout
        return await real(nc, folder, entry)

    monkeypatch.setattr(bk, "restore_stream", times_out)
    with pytest.raises(bk.BackupError) as failed:
        await bk.restore(bus.nc, backup, settings)
    assert f"TimeoutError: nats: timeout; nothing was restored ({settings.stream_name} deleted again)" \
        in str(failed.value), str(failed.value)
    assert await _streams(bus, names) == {}


async def test_a_replace_whose_second_delete_fails_names_the_stream_it_already_deleted(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`restore --replace` deletes the backup's streams the server has, then restores. Seen (review):
    when the second delete failed, the line said only "nothing was restored" — the first stream,
    already deleted with what it held, was named nowhere but in a line printed above it. The
    refusal names it and says how to get it back."""
    from services.operator import backup as bk

    hb, admission = (f"KV_{b}" for b in kv_names(settings))
    backup = tmp_path / "backup"
    assert cli(values, "backup", str(backup)).returncode == 0
    await bus.js.delete_stream(settings.stream_name)  # the two KV streams stay: both to be replaced
    real = bk._delete

    async def refused(nc: Any, name: str) -> None:
        if name == admission:
            raise bk.BackupError(f"deleting {name}: insufficient resources (code 10023)")
        await real(nc, name)

    monkeypatch.setattr(bk, "_delete", refused)
    with pytest.raises(bk.BackupError) as failed:
        await bk.restore(bus.nc, backup, settings, replace=True)
    line = str(failed.value)
    assert line.startswith(f"deleting {admission}: insufficient resources (code 10023); nothing was restored"), line
    assert f"{hb} was deleted before it, with what it held" in line, line
    assert line.endswith(f"run `grove-export restore --replace {backup}` again once that is fixed"), line
    assert await _streams(bus, [settings.stream_name, hb, admission]) == {admission: 0}


async def test_replace_with_a_config_the_server_refuses_deletes_nothing(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    """Seen: a backup of a three-replica cluster restored with --replace into one server deleted the
    server's streams, then the server refused the backup's first config ("replicas > 1 not supported
    in non-clustered mode"): the server was left with no streams at all. Each config is now put to the
    server first, under a probe stream's name, made and deleted again. (A backup's replicas are now
    restored as this deployment's: the server refuses them when the deployment asks for three
    replicas of one server; the three-replica backup then restores into it as one.)"""
    names, backup = await _backed_up(values, bus, settings, tmp_path)
    hb, admission = names[1:]
    for name in names:  # as a three-node cluster's backup says
        meta = json.loads((backup / f"{name}.json").read_text())
        meta["config"]["num_replicas"] = 3
        (backup / f"{name}.json").write_text(json.dumps(meta))
    before = await _streams(bus, names)
    assert before == {settings.stream_name: 1, hb: 0, admission: 0}

    out = cli({**values, "stream_replicas": 3}, "restore", "--replace", str(backup))
    assert out.returncode == 1 and out.stdout == "", out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"this server refuses the config {settings.stream_name} would be restored with: " in lines[0], lines[0]
    assert "replicas > 1 not supported" in lines[0], lines[0]
    assert lines[0].endswith("(this deployment's GROVE_STREAM_REPLICAS); nothing was deleted or restored"), lines[0]
    assert await _streams(bus, names) == before  # the live streams are all there, with what they held
    left = [info.config.name for info in await bus.js.streams_info()]
    assert not [n for n in left if n.startswith("grove-restore-probe-")], left  # no probe left behind

    out = cli(values, "restore", "--replace", str(backup))  # this deployment's one replica
    assert out.returncode == 0, out.stdout + out.stderr
    assert {n: (await bus.js.stream_info(n)).config.num_replicas for n in names} == dict.fromkeys(names, 1)

