"""``grove-export restore`` restores only what the set-up makes: every key of a backup's stream config
(``<stream>.json``) must be one the set-up makes, with the set-up's value where it matters, and every
consumer the server restores from a snapshot one of the step table's durables as the set-up makes it.

Seen: only republish, sources, mirror, subject_transform and sealed were refused; an altered backup
restored a log with work-queue retention (each event gone once acknowledged), ``max_msgs: 10``, memory
storage, rollup headers on…, and a snapshot holding a push consumer that delivered every event to a
subject of the alterer's choosing. Real nats-server; the backups are ``grove-export backup``'s own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, StorageType

from services.operator.backup import BackupError, check_backup
from shared.bus.connect import Bus, kv_names
from shared.core import events as ev
from shared.core import steps
from shared.eventlog.jetstream import EventLog
from shared.runtime.settings import Settings
from tests.support.env import build, to_env


def cli(values: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env={**os.environ, **to_env(values)},
                          capture_output=True, text=True, timeout=120, check=False)


def names(settings: Settings) -> list[str]:
    return [settings.stream_name, *(f"KV_{b}" for b in kv_names(settings))]


async def _present(bus: Bus, settings: Settings) -> list[str]:
    have = []
    for name in names(settings):
        try:
            await bus.js.stream_info(name)
            have.append(name)
        except Exception:  # noqa: BLE001 - not found
            continue
    return have


async def _backup(values: dict[str, Any], bus: Bus, folder: Path) -> Path:
    await bus.log.append(ev.ExportRequested(export_id=ev.new_export_id(), tenant_id="tenant_a", user_id="u1",
                                            user_email="a@example.org", username="autumn"), 0)
    out = cli(values, "backup", str(folder))
    assert out.returncode == 0, out.stderr
    return folder


def _edit(folder: Path, stream: str, **changes: Any) -> None:
    meta = json.loads((folder / f"{stream}.json").read_text())
    meta["config"].update({k: v for k, v in changes.items() if v is not DROP})
    for key in [k for k, v in changes.items() if v is DROP]:
        del meta["config"][key]
    (folder / f"{stream}.json").write_text(json.dumps(meta))


async def test_genuine_backups_restore_and_hold_only_what_the_set_up_makes(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    folder = await _backup(values, bus, tmp_path / "bk")
    # another deployment's replicas and max age (restored as this one's: as_restored)
    assert check_backup(folder, build({**values, "stream_replicas": 3, "stream_max_age_days": 2.5}))
    out = cli(values, "restore", "--replace", str(folder))
    assert out.returncode == 0, out.stderr
    assert f"{settings.stream_name}: restored, 1 messages" in out.stdout, out.stdout
    consumers = {c.name for c in await bus.js.consumers_info(settings.stream_name)}
    assert consumers == {c.durable for c in steps.all_consumers()}


async def test_a_backup_with_a_max_age_of_a_second_restores_the_whole_log(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    """Seen: a backup altered to ``max_age`` one second restored its log and nats-server at once expired
    every event older than that — the log emptied before ``setup`` could put this deployment's max age
    back. Restore sends this deployment's replicas, max age and duplicate window instead."""
    appended = time.monotonic()
    folder = await _backup(values, bus, tmp_path / "bk")
    _edit(folder, settings.stream_name, max_age=NS, duplicate_window=NS)
    _edit(folder, names(settings)[1], max_age=NS, duplicate_window=NS)
    await asyncio.sleep(max(0.0, 1.5 - (time.monotonic() - appended)))  # the event is older than the 1 s then
    out = cli(values, "restore", "--replace", str(folder))
    assert out.returncode == 0, out.stderr
    await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - appended)))  # past when 1 s would have expired it
    info = await bus.js.stream_info(settings.stream_name)
    assert (info.state.messages, info.config.max_age, info.config.duplicate_window) == (
        1, settings.stream_max_age_days * 86400, 3600), info
    bucket = await bus.js.stream_info(names(settings)[1])
    assert (bucket.config.max_age, bucket.config.duplicate_window) == (settings.heartbeat_ttl_s, 120), bucket.config


async def test_a_backup_of_the_old_single_account_layout_restores(
        values: dict[str, Any], settings: Settings, tmp_path: Path, nats_server: Any) -> None:
    """Each service made its own buckets then (no direct get, rollup headers on) and its durables with
    one filter subject: restore takes them, with the buckets' rollup headers off as setup leaves them."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        await EventLog(js, settings.stream_name, settings.subject_prefix).ensure_stream(1)
        hb, admission = kv_names(settings)
        await js.create_key_value(KeyValueConfig(bucket=hb, ttl=settings.heartbeat_ttl_s, storage=StorageType.FILE,
                                                 history=1))
        await js.create_key_value(KeyValueConfig(bucket=admission, storage=StorageType.FILE, history=1))
        for c in steps.all_consumers():
            await js.add_consumer(settings.stream_name, ConsumerConfig(
                durable_name=c.durable, filter_subject=f"{settings.subject_prefix}.*.*.{c.trigger}",
                ack_policy=AckPolicy.EXPLICIT, ack_wait=settings.ack_wait_s, max_deliver=-1, max_ack_pending=1000))
        out = cli(values, "backup", str(tmp_path / "bk"))
        assert out.returncode == 0, out.stderr
        assert json.loads((tmp_path / "bk" / f"KV_{hb}.json").read_text())["config"]["allow_rollup_hdrs"] is True
        out = cli(values, "restore", "--replace", str(tmp_path / "bk"))
        assert out.returncode == 0, out.stderr
        assert (await js.stream_info(f"KV_{hb}")).config.allow_rollup_hdrs is False
    finally:
        await nc.close()


NS = 1_000_000_000
DROP = object()  # the key left out
ALTERED: list[tuple[str, str, Any]] = [  # (stream: log or kv, key, value)
    ("log", "retention", "workqueue"), ("log", "retention", "interest"), ("log", "storage", "memory"),
    ("log", "discard", "new"), ("log", "max_msgs", 10), ("log", "max_bytes", 4096), ("log", "max_msg_size", 1 << 20),
    ("log", "max_msgs_per_subject", 1), ("log", "max_consumers", 2), ("log", "no_ack", True),
    ("log", "allow_rollup_hdrs", True), ("log", "allow_msg_ttl", True), ("log", "allow_direct", False),
    ("log", "deny_purge", True), ("log", "mirror_direct", True), ("log", "sealed", True),
    ("log", "republish", {"src": ">", "dest": "leak.>"}), ("log", "sources", [{"name": "OTHER"}]),
    ("log", "mirror", {"name": "OTHER"}), ("log", "subject_transform", {"src": ">", "dest": "y.>"}),
    ("log", "consumer_limits", {"inactive_threshold": NS}), ("log", "compression", "s2"),
    ("log", "description", "x"), ("log", "placement", {"cluster": "elsewhere"}), ("log", "first_seq", 99),
    ("log", "metadata", {"owner": "them"}), ("log", "duplicate_window", 7200 * NS), ("log", "max_age", -1),
    ("log", "num_replicas", 0), ("log", "allow_msg_schedules", True), ("log", "some_future_field", 1),
    ("kv", "deny_delete", False), ("kv", "discard", "old"), ("kv", "max_msgs_per_subject", 64),
    ("kv", "retention", "interest"), ("kv", "republish", {"src": ">", "dest": "leak.>"}),
    ("kv", "duplicate_window", 3600 * NS), ("kv", "allow_direct", "yes"),
    ("log", "Retention", "workqueue"),  # nats-server reads a key whatever its case
    ("kv", "discard", DROP), ("kv", "deny_delete", DROP), ("kv", "max_msgs_per_subject", DROP),  # read as the
    ("log", "max_msg_size", DROP), ("log", "allow_direct", DROP),  # server's default, not the set-up's
]


async def test_each_altered_config_field_is_refused_before_anything_is_restored(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    folder = await _backup(values, bus, tmp_path / "bk")
    kv = names(settings)[2]
    original = {n: (folder / f"{n}.json").read_text() for n in names(settings)}
    missed = []
    for where, key, value in ALTERED:
        stream = settings.stream_name if where == "log" else kv
        _edit(folder, stream, **{key: value})
        try:
            check_backup(folder, settings)
            missed.append((where, key, value))
        except BackupError as e:
            assert f"{stream}.json: its config holds {key} as this deployment's set-up never makes" in str(e), e
        (folder / f"{stream}.json").write_text(original[stream])
    assert not missed, missed
    # another deployment's replicas and max age are accepted, and restored as this deployment's
    _edit(folder, settings.stream_name, num_replicas=3, max_age=7 * 86400 * NS)
    _edit(folder, kv, num_replicas=3, max_age=60 * NS, duplicate_window=60 * NS)
    meta = json.loads((folder / f"{kv}.json").read_text())
    (folder / f"{kv}.json").write_text(json.dumps({**meta, "Config": {**meta["config"], "retention": "interest"}}))
    entries = check_backup(folder, settings)
    assert all(set(e["meta"]) == {"config", "state"} for e in entries)  # what is sent: not the "Config" beside it
    for name in names(settings):
        (folder / f"{name}.json").write_text(original[name])

    _edit(folder, settings.stream_name, retention="workqueue", max_msgs=10)
    for name in names(settings):
        await bus.js.delete_stream(name)
    out = cli(values, "restore", str(folder))
    assert out.returncode == 1 and out.stdout == "" and out.stderr.count("\n") == 1, out.stdout + out.stderr
    assert f"{settings.stream_name}.json: its config holds retention, max_msgs as this deployment's" in out.stderr
    assert "Nothing was restored" in out.stderr and await _present(bus, settings) == []


def _foreign(settings: Settings, where: str) -> tuple[str, ConsumerConfig]:
    log, kv = settings.stream_name, names(settings)[1]
    step = steps.all_consumers()[0]
    return {
        "a push consumer": (log, ConsumerConfig(durable_name="leak", deliver_subject="leak.here",
                                                ack_policy=AckPolicy.NONE)),
        "a pull consumer of another name": (log, ConsumerConfig(durable_name="extra", ack_policy=AckPolicy.EXPLICIT)),
        "a step's durable taking every subject": (log, ConsumerConfig(durable_name=step.durable, filter_subject=">",
                                                                      ack_policy=AckPolicy.EXPLICIT)),
        "a consumer on a bucket's stream": (kv, ConsumerConfig(durable_name="kvreader",
                                                               ack_policy=AckPolicy.EXPLICIT)),
        "a step's durable that takes no acks": (log, ConsumerConfig(
            durable_name=step.durable, filter_subject=f"{settings.subject_prefix}.*.*.{step.trigger}",
            ack_policy=AckPolicy.NONE)),
    }[where]


@pytest.mark.parametrize("where", ["a push consumer", "a pull consumer of another name",
                                   "a step's durable taking every subject", "a consumer on a bucket's stream",
                                   "a step's durable that takes no acks"])
async def test_a_snapshot_holding_a_consumer_the_set_up_never_makes_is_refused_before_it_is_sent(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path, where: str) -> None:
    stream, config = _foreign(settings, where)
    if config.durable_name in {c.durable for c in steps.all_consumers()}:
        await bus.js.delete_consumer(stream, config.durable_name)
    await bus.js.add_consumer(stream, config)  # the snapshot holds what the server had: as an alterer's would
    folder = await _backup(values, bus, tmp_path / "bk")
    for name in names(settings):
        await bus.js.delete_stream(name)
    out = cli(values, "restore", str(folder))
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stdout + out.stderr
    assert f"{stream}.tar.s2: its snapshot holds " in out.stderr and config.durable_name in out.stderr, out.stderr
    assert "Nothing was restored" in out.stderr and out.stdout == "", out.stdout + out.stderr
    assert await _present(bus, settings) == []
