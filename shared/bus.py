"""Connecting to NATS: one connection per process, the stream and KV buckets ensured from code."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from shared.eventlog import EventLog
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Bus:
    nc: Client
    js: JetStreamContext
    log: EventLog
    heartbeats: KeyValue
    admission: KeyValue

    async def close(self) -> None:
        await self.nc.drain()


def nats_servers(url: str) -> list[str]:
    """``GROVE_NATS_URL`` may list several servers, comma-separated (e.g. every node of a cluster)."""
    return [u.strip() for u in url.split(",") if u.strip()]


def kv_names(settings: Settings) -> tuple[str, str]:
    return f"{settings.kv_prefix}_heartbeats", f"{settings.kv_prefix}_admission"


async def _ensure_kv(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        return await js.create_key_value(config)


async def _quiet(_: Exception) -> None:
    """One-shot commands report a failed connection as an error, not as a stream of tracebacks."""


async def connect(settings: Settings, producer: str, *, ensure: bool = True, name: str | None = None,
                  persistent: bool = True) -> Bus:
    """Connect, and create stream and buckets idempotently. Services are ``persistent`` (they retry
    and reconnect forever); one-shot commands give up after a few seconds with an exception."""
    opts: dict[str, object] = {} if persistent else {"error_cb": _quiet}
    if settings.nats_user:
        opts["user"] = settings.nats_user
        opts["password"] = settings.nats_password.get_secret_value() if settings.nats_password else ""
    nc = await nats.connect(
        nats_servers(settings.nats_url), name=name or f"grove-{producer}",
        max_reconnect_attempts=-1 if persistent else 2, reconnect_time_wait=0.5, connect_timeout=5,
        allow_reconnect=True, **opts,  # type: ignore[arg-type]
    )
    js = nc.jetstream(timeout=10)
    event_log = EventLog(js, settings.stream_name, settings.subject_prefix, producer)
    hb_name, adm_name = kv_names(settings)
    if ensure:
        await event_log.ensure_stream(settings.stream_replicas, settings.stream_max_age_days)
    heartbeats = await _ensure_kv(js, KeyValueConfig(
        bucket=hb_name, ttl=settings.heartbeat_ttl_s, storage=StorageType.FILE,
        replicas=settings.stream_replicas, history=1))
    admission = await _ensure_kv(js, KeyValueConfig(
        bucket=adm_name, storage=StorageType.FILE, replicas=settings.stream_replicas, history=1))
    return Bus(nc, js, event_log, heartbeats, admission)
