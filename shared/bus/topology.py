"""What exists on the NATS server before any service starts: the stream, the KV buckets and every
durable consumer of the step table. Created (or brought to this config) by the admin step
``grove-export setup`` — which ``grove-export serve`` runs at start — never by a service: service
users may not create, update or delete streams, consumers or buckets.

Idempotent: run it again after an upgrade or a settings change and it converges.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError

from shared.core import steps
from shared.eventlog.jetstream import EventLog
from shared.runtime.settings import Settings

MAX_ACK_PENDING = 1000


class TopologyMissing(Exception):
    """The stream or a bucket does not exist: the admin set-up has not run."""


class BucketMissing(TopologyMissing):
    """A KV bucket of the set-up does not exist on the server asked: nothing of Grove's set-up there,
    as a rule (connect binds the buckets first) — a new server, one awaiting a restore, or another one."""

    def __init__(self, bucket: str) -> None:
        super().__init__(f"KV bucket {bucket} does not exist: run `grove-export setup` first")
        self.bucket = bucket
        # messages in the log's stream when it is there (a set-up server missing a bucket: deleted, or a
        # restore that stopped part-way); None when it is not, or was not asked (a service user)
        self.stream_messages: int | None = None


class DurableOutdated(TopologyMissing):
    """A durable takes other subjects than the step table says: the admin set-up of this release has
    not run (``notifier-failed`` made before each publisher had its own ``ExportFailed`` type would
    take none of them, and no failure email would ever be sent)."""


def kv_name(settings: Settings, role: str) -> str:
    return f"{settings.kv_prefix}_{role}"


# A bucket's stream refuses rollup headers: with them, ``Nats-Rollup: all`` on the one key a user may
# write (its own heartbeat) purged the whole bucket — every other step's heartbeat. No service purges
# a key (they put and delete), and nats-py's create_key_value always allows them: _converge_kv turns
# them off, on a new bucket and on one made before.
def kv_config(settings: Settings, role: str) -> KeyValueConfig:
    ttl = settings.heartbeat_ttl_s if role == "heartbeats" else None
    return KeyValueConfig(bucket=kv_name(settings, role), ttl=ttl, storage=StorageType.FILE,
                          replicas=settings.stream_replicas, history=1, direct=True)


def kv_stream_config(config: KeyValueConfig) -> StreamConfig:
    """A bucket's stream as the set-up leaves it: nats-py's ``create_key_value`` stream config
    (nats/js/client.py, whose duplicate window is two minutes, or the TTL when shorter), then
    :func:`_converge_kv`'s rollup headers off. Restore holds a backup's bucket configs to it."""
    return StreamConfig(
        name=f"KV_{config.bucket}", subjects=[f"$KV.{config.bucket}.>"], allow_direct=config.direct,
        allow_rollup_hdrs=False, allow_msg_ttl=True, deny_delete=True, discard=DiscardPolicy.NEW,
        duplicate_window=min(120.0, config.ttl) if config.ttl else 120.0, max_age=config.ttl,
        max_bytes=config.max_bytes, max_consumers=-1, max_msg_size=config.max_value_size, max_msgs=-1,
        max_msgs_per_subject=config.history, num_replicas=config.replicas, storage=config.storage)


def filter_subjects(settings: Settings, consumer: steps.Consumer) -> list[str]:
    """The subjects a durable takes: one per event type it is triggered by (``Consumer.triggers``)."""
    return [f"{settings.subject_prefix}.*.*.{trigger}" for trigger in consumer.triggers]


def consumer_config(settings: Settings, consumer: steps.Consumer) -> ConsumerConfig:
    """A step's durable: explicit acks, no max_deliver and no BackOff (retries are counted in the log).

    One trigger type: ``filter_subject``, as every durable had it. Several (``notifier-failed``: each
    publisher's ``ExportFailed`` type, and the older one): ``filter_subjects`` (nats-server 2.10 on),
    which ``grove-export setup`` puts in place of an existing durable's single filter, keeping its
    position; the messages it already holds on the old subject are still delivered."""
    subjects = filter_subjects(settings, consumer)
    one = len(subjects) == 1
    return ConsumerConfig(
        name=consumer.durable, durable_name=consumer.durable,
        filter_subject=subjects[0] if one else None, filter_subjects=None if one else subjects,
        ack_policy=AckPolicy.EXPLICIT, ack_wait=settings.ack_wait_s, max_deliver=-1,
        deliver_policy=DeliverPolicy.ALL, max_ack_pending=MAX_ACK_PENDING,
    )


async def check_durables(js: JetStreamContext, settings: Settings, consumers: Iterable[steps.Consumer]) -> None:
    """Raise :class:`DurableOutdated` for a durable whose filter is not the step table's; one not made
    yet is left to the subscriber (an open development server, where a service may make its own)."""
    for consumer in consumers:
        try:
            info = await js.consumer_info(settings.stream_name, consumer.durable)
        except NotFoundError:
            continue
        have = set(info.config.filter_subjects or [info.config.filter_subject or ">"])
        want = set(filter_subjects(settings, consumer))
        if have != want:
            wrong = [f"does not take {', '.join(sorted(want - have))}"] if want - have else []
            wrong += [f"takes {', '.join(sorted(have - want))}"] if have - want else []
            raise DurableOutdated(f"durable {consumer.durable} {' and '.join(wrong)}: run `grove-export setup` "
                                  f"(the admin set-up of this release)")


async def _converge_kv(js: JetStreamContext, config: KeyValueConfig) -> str:
    """Bring an existing bucket to ``config``'s TTL and replicas: a changed GROVE_HEARTBEAT_TTL_S
    (or GROVE_STREAM_REPLICAS) was otherwise kept at the bucket's first value for good, and the
    janitor judges a step alive by whether its heartbeat key still exists."""
    info = await js.stream_info(f"KV_{config.bucket}")
    age, replicas = float(config.ttl or 0), config.replicas
    had_age, had_replicas = float(info.config.max_age or 0), info.config.num_replicas or 1
    changes = [f"{name} {old:g} → {new:g}" for name, old, new in
               (("max_age", had_age, age), ("num_replicas", had_replicas, replicas)) if old != new]
    if info.config.allow_rollup_hdrs:
        changes.append("rollup headers off")
    if not changes:
        return "exists"
    window = info.config.duplicate_window or 0
    await js.update_stream(dataclasses.replace(
        info.config, max_age=age, num_replicas=replicas, allow_rollup_hdrs=False,
        duplicate_window=min(window, age) if age else window))  # the server refuses a window over max_age
    return f"updated ({', '.join(changes)})"


async def ensure(js: JetStreamContext, settings: Settings) -> list[str]:
    """Create or converge the stream, the buckets and the durables; returns what it did, one line each."""
    done: list[str] = []
    await EventLog(js, settings.stream_name, settings.subject_prefix).ensure_stream(
        settings.stream_replicas, settings.stream_max_age_days)
    done.append(f"stream {settings.stream_name}: subjects {settings.subject_prefix}.>, "
                f"{settings.stream_replicas} replica(s), direct get on")
    for role in steps.KV_ROLES:
        config = kv_config(settings, role)
        try:
            await js.key_value(config.bucket)
        except BucketNotFoundError:
            await js.create_key_value(config)
            await _converge_kv(js, config)  # nats-py makes every bucket with rollup headers allowed
            done.append(f"kv bucket {config.bucket}: created")
            continue
        done.append(f"kv bucket {config.bucket}: {await _converge_kv(js, config)}")
    for consumer in steps.all_consumers():
        await js.add_consumer(settings.stream_name, consumer_config(settings, consumer))
        done.append(f"durable {consumer.durable}: {', '.join(filter_subjects(settings, consumer))}")
    return done
