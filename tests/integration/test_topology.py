"""The admin set-up (``grove-export setup``): idempotent, and it adopts what the old layout created.

Before the step table, each service created its stream, buckets and durable consumers itself at
start-up (faststream's pull subscriber with the config below). Upgrading runs ``setup`` against
that server: it must converge without error and keep every durable's position.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType

from services.devtools.stack.natsserver import env_without_proxies
from shared.bus import topology
from shared.bus.connect import kv_names
from shared.bus.topology import DurableOutdated
from shared.core import events as ev
from shared.core import steps
from shared.eventlog.jetstream import EventLog
from shared.runtime.settings import Settings
from tests.cluster.procs import LAUNCH
from tests.support.env import to_env


async def _old_layout(settings: Settings, nc: nats.NATS) -> None:
    """What the services of the previous layout created on their own (shared/bus/connect.py, shared/runtime/service.py)."""
    js = nc.jetstream()
    await EventLog(js, settings.stream_name, settings.subject_prefix).ensure_stream(1)
    await js.create_key_value(KeyValueConfig(bucket=f"{settings.kv_prefix}_heartbeats", ttl=settings.heartbeat_ttl_s,
                                             storage=StorageType.FILE, history=1))
    await js.create_key_value(KeyValueConfig(bucket=f"{settings.kv_prefix}_admission", storage=StorageType.FILE,
                                             history=1))
    for c in steps.all_consumers():
        config = ConsumerConfig(durable_name=c.durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=settings.ack_wait_s,
                                max_deliver=-1, deliver_policy=DeliverPolicy.ALL, max_ack_pending=1000)
        await js.pull_subscribe(f"{settings.subject_prefix}.*.*.{c.trigger}", durable=c.durable,
                                stream=settings.stream_name, config=config)


async def test_setup_adopts_the_old_layout_and_keeps_every_durables_position(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        await _old_layout(settings, nc)
        js = nc.jetstream()
        log = EventLog(js, settings.stream_name, settings.subject_prefix, "test")
        for i in range(3):
            await log.append(ev.ExportRequested(export_id=f"exp_{i}", tenant_id="t", user_id="u",
                                                user_email="u@example.org", username="u"), 0)
        sub = await js.pull_subscribe_bind("catalog", settings.stream_name)
        (first,) = await sub.fetch(1, timeout=5)
        await first.ack_sync()  # the old catalog consumed one request before the upgrade

        lines = await topology.ensure(js, settings)
        again = await topology.ensure(js, settings)  # and once more: nothing changes

        # The old buckets allowed rollup headers (one user's key could purge a bucket): turned off once.
        assert [line.replace("created", "exists").replace("updated (rollup headers off)", "exists")
                for line in lines] == again and sum("rollup headers off" in line for line in lines) == 2
        for bucket in kv_names(settings):
            assert not (await js.stream_info(f"KV_{bucket}")).config.allow_rollup_hdrs
        infos = {c.name: c for c in await js.consumers_info(settings.stream_name)}
        assert set(infos) == {c.durable for c in steps.all_consumers()}
        catalog = infos["catalog"]
        assert catalog.delivered.stream_seq == 1 and catalog.ack_floor.stream_seq == 1 and catalog.num_pending == 2
        assert catalog.config.filter_subject == f"{settings.subject_prefix}.*.*.ExportRequested"
        assert catalog.config.max_deliver == -1 and catalog.config.ack_wait == settings.ack_wait_s
    finally:
        await nc.close()


async def test_setup_on_an_empty_server_creates_every_durable_of_the_step_table(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        lines = await topology.ensure(js, settings)
        infos = {c.name: c.config for c in await js.consumers_info(settings.stream_name)}
        for c in steps.all_consumers():
            subjects = [f"{settings.subject_prefix}.*.*.{trigger}" for trigger in c.triggers]
            assert [infos[c.durable].filter_subject] == subjects or infos[c.durable].filter_subjects == subjects
            assert f"durable {c.durable}: {', '.join(subjects)}" in lines
        assert (await js.stream_info(settings.stream_name)).config.allow_direct
    finally:
        await nc.close()


async def test_setup_brings_an_existing_heartbeat_bucket_to_a_changed_ttl(settings: Settings) -> None:
    """Seen: with GROVE_HEARTBEAT_TTL_S changed from 300 to 10 and setup run again, the bucket kept 300 s,
    so a stopped assembler's heartbeat outlived it by minutes and the janitor took the step as alive."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await topology.ensure(js, settings)
        bucket = topology.kv_name(settings, "heartbeats")
        assert (await js.stream_info(f"KV_{bucket}")).config.max_age == settings.heartbeat_ttl_s
        shorter = settings.model_copy(update={"heartbeat_ttl_s": 10.0})
        lines = await topology.ensure(js, shorter)
        assert f"kv bucket {bucket}: updated (max_age {settings.heartbeat_ttl_s:g} → 10)" in lines, lines
        assert (await js.stream_info(f"KV_{bucket}")).config.max_age == 10
        kv = await js.key_value(bucket)  # still the same bucket, with what it held
        await kv.put("assemble.t.e", b"x")
        assert (await kv.get("assemble.t.e")).value == b"x"
        again = await topology.ensure(js, shorter)
        assert f"kv bucket {bucket}: exists" in again  # converged: nothing more to change
    finally:
        await nc.close()


async def test_setup_gives_the_failure_emails_durable_every_failure_type_and_keeps_its_place(
        settings: Settings, values: dict[str, Any]) -> None:
    """The release before made ``notifier-failed`` on ``<prefix>.*.*.ExportFailed`` alone: it would take
    none of each publisher's own failure types, and no failure email would go out. A service refuses
    to start on it (run setup); setup gives it every ``ExportFailed`` type's subject in place of its
    one (``filter_subjects``), keeping its position: a failure appended before the upgrade and not yet
    mailed is still delivered, then the new types."""
    p = settings.subject_prefix
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await topology.ensure(js, settings)
        mailer = next(c for c in steps.all_consumers() if c.durable == "notifier-failed")
        await js.delete_consumer(settings.stream_name, mailer.durable)
        await js.add_consumer(settings.stream_name, ConsumerConfig(  # as the release before made it
            name=mailer.durable, durable_name=mailer.durable, filter_subject=f"{p}.*.*.ExportFailed",
            ack_policy=AckPolicy.EXPLICIT, ack_wait=settings.ack_wait_s, max_deliver=-1,
            deliver_policy=DeliverPolicy.ALL, max_ack_pending=1000))
        log = EventLog(js, settings.stream_name, p, "test")
        for i in range(2):  # two exports failed by the older release; the first one's email was sent
            seq = await log.append(ev.ExportRequested(export_id=f"exp_{i}", tenant_id="t", user_id="u",
                                                      user_email="u@example.org", username="u"), 0)
            await log.append(ev.ExportFailed(export_id=f"exp_{i}", tenant_id="t", step="catalog", reason="x"), seq)
        sub = await js.pull_subscribe_bind(mailer.durable, settings.stream_name)
        (first,) = await sub.fetch(1, timeout=5)
        await first.ack_sync()
        with pytest.raises(DurableOutdated, match="run `grove-export setup`"):
            await topology.check_durables(js, settings, [mailer])
        out = await asyncio.to_thread(subprocess.run, [*LAUNCH, "run", "notifier"], capture_output=True, text=True,
                                      timeout=60, env={**env_without_proxies(), **to_env(values)})
        assert out.returncode != 0 and "durable notifier-failed does not take" in out.stderr, out.stdout + out.stderr

        lines = await topology.ensure(js, settings)
        subjects = [f"{p}.*.*.{name}" for name in ("ExportFailed", "ExportFailedAtCatalog", "ExportFailedAtAssemble",
                                                   "ExportFailedAtFinalize", "ExportFailedByJanitor")]
        assert f"durable notifier-failed: {', '.join(subjects)}" in lines
        info = await js.consumer_info(settings.stream_name, mailer.durable)
        assert info.config.filter_subjects == subjects and not info.config.filter_subject
        assert info.ack_floor.stream_seq == first.metadata.sequence.stream and info.num_pending == 1
        await topology.check_durables(js, settings, steps.all_consumers())  # converged: a service starts
        assert await topology.ensure(js, settings) == lines  # and once more: nothing changes

        seq = await log.append(ev.ExportRequested(export_id="exp_2", tenant_id="t", user_id="u",
                                                  user_email="u@example.org", username="u"), 0)
        await log.append(ev.ExportFailedAtAssemble(export_id="exp_2", tenant_id="t", reason="y"), seq)
        sub = await js.pull_subscribe_bind(mailer.durable, settings.stream_name)
        got = await sub.fetch(2, timeout=5)
        assert [m.subject for m in got] == [f"{p}.t.exp_1.ExportFailed", f"{p}.t.exp_2.ExportFailedAtAssemble"]
    finally:
        await nc.close()
