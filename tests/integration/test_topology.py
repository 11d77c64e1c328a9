"""The admin set-up (``grove-export setup``): idempotent, and it adopts what the old layout created.

Before the step table, each service created its stream, buckets and durable consumers itself at
start-up (faststream's pull subscriber with the config below). Upgrading runs ``setup`` against
that server: it must converge without error and keep every durable's position.
"""

from __future__ import annotations

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType

from shared.bus import topology
from shared.bus.connect import kv_names
from shared.core import events as ev
from shared.core import steps
from shared.eventlog.jetstream import EventLog
from shared.runtime.settings import Settings


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
            assert infos[c.durable].filter_subject == f"{settings.subject_prefix}.*.*.{c.trigger}"
            assert any(line.startswith(f"durable {c.durable}:") for line in lines)
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


async def test_setup_brings_every_durable_to_a_changed_window(settings: Settings) -> None:
    """``GROVE_MAX_ACK_PENDING`` changed after the durables exist: setup converges them to it."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await topology.ensure(js, settings)
        await topology.ensure(js, settings.model_copy(update={"max_ack_pending": 50}))
        infos = {c.name: c.config for c in await js.consumers_info(settings.stream_name)}
        assert {infos[c.durable].max_ack_pending for c in steps.all_consumers()} == {50}
    finally:
        await nc.close()
