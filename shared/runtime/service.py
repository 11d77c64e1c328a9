"""The shape every step service shares: a FastStream app whose durable pull subscribers hand
messages to a :class:`StepWorker`. Each service's ``main.py`` is its composition root and only
says which events it consumes and what work it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faststream import AckPolicy, FastStream
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, NatsUserPassword, PullSub
from faststream.specification import AsyncAPI

from shared import __version__
from shared.bus.connect import Bus, connect, inbox_prefix, new_client, wait_for_nats
from shared.bus.permissions import js_domain
from shared.bus.probe import BusProbe
from shared.bus.topology import check_durables, consumer_config
from shared.core import steps
from shared.core.steps import Consumer
from shared.runtime import metrics
from shared.runtime.settings import Settings, nats_servers
from shared.runtime.worker import StepWorker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subscription:
    """One durable consumer of the step table: events of type ``event`` go to step ``worker``'s worker."""

    event: str
    durable: str
    worker: str
    description: str = ""


def subscriptions_of(name: str) -> list[Subscription]:
    """What service ``name`` consumes, read from the step table (``shared/core/steps.py``)."""
    return [Subscription(c.trigger, c.durable, spec.step, c.description)
            for spec in steps.steps_of(name) for c in spec.consumers]


@dataclass
class ServiceRuntime:
    """What a running service holds; filled in at start-up by its bootstrap."""

    name: str
    settings: Settings
    bus: Bus | None = None
    workers: dict[str, StepWorker] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


Bootstrap = Callable[[ServiceRuntime], Awaitable[None]]


def build_app(name: str, settings: Settings, bootstrap: Bootstrap,
              description: str = "") -> tuple[FastStream, ServiceRuntime]:
    """The FastStream app of one service: its durable subscriptions come from the step table;
    ``bootstrap`` connects adapters and creates one worker per step the table gives it."""
    subscriptions = subscriptions_of(name)
    broker_opts: dict[str, object] = {"max_reconnect_attempts": -1, "reconnect_time_wait": 0.5,
                                      "inbox_prefix": inbox_prefix(settings.nats_user),
                                      "js_options": {"domain": js_domain(settings.nats_user)}}
    if settings.nats_user:
        broker_opts["security"] = NatsUserPassword(
            settings.nats_user, settings.nats_password.get_secret_value() if settings.nats_password else "")
    # faststream logs through ours (JSON lines); per-message chatter only at DEBUG
    broker = _Broker(nats_servers(settings.nats_url), logger=logging.getLogger("grove.broker"), log_level=logging.DEBUG,
                        **broker_opts)  # type: ignore[arg-type]
    app = FastStream(broker, logger=logging.getLogger("grove.app"), specification=AsyncAPI(
        title=f"Grove Export — {name}", version=__version__, description=description))
    runtime = ServiceRuntime(name, settings)
    stream = JStream(settings.stream_name, declare=False)

    for sub in subscriptions:
        _subscribe(broker, runtime, settings, stream, sub)

    @app.on_startup
    async def start() -> None:  # runs before the broker connects (FastStream: hooks, then the broker)
        if settings.metrics_port:  # first: alive (/healthz) while it waits for NATS and JetStream, and not ready
            runner = await metrics.serve(settings.metrics_port, ready, refresh_lag, host=settings.metrics_host)
            runtime.closers.append(runner.cleanup)
        await wait_for_nats(settings, name)
        runtime.bus = await connect(settings, name)
        # A durable the admin set-up of an older release made takes other subjects (notifier-failed:
        # the one ExportFailed subject, none of each publisher's own): refuse to start, saying so.
        await check_durables(runtime.bus.js, settings,
                             [c for spec in steps.steps_of(name) for c in spec.consumers])
        await bootstrap(runtime)
        missing = {sub.worker for sub in subscriptions} - set(runtime.workers)
        if missing:  # a step in the table with no worker would nak its messages forever
            raise RuntimeError(f"{name}: no worker for step(s) {sorted(missing)} of the step table")

    probe = BusProbe()

    async def ready() -> bool:  # started (its workers made), and NATS answers a PING (connected is not enough:
        # a frozen server stays so); served from the start, so not ready while it waits for NATS or JetStream
        return bool(runtime.workers) and runtime.bus is not None and not await probe.failing(runtime.bus.nc)

    async def refresh_lag() -> None:
        # Asked one after another, with the bus's request timeout, a server gone or frozen held every
        # scrape past Prometheus' own timeout: the target went down, every counter with it. Not asked
        # while disconnected, and each ask bounded; a durable not answered keeps its last value.
        bus = runtime.bus
        if bus is None or not bus.nc.is_connected:
            return

        async def lag(durable: str) -> None:
            info = await bus.js.consumer_info(settings.stream_name, durable, timeout=metrics.LAG_TIMEOUT_S)
            metrics.CONSUMER_LAG.labels(durable).set((info.num_pending or 0) + (info.num_ack_pending or 0))

        await asyncio.gather(*(lag(sub.durable) for sub in subscriptions), return_exceptions=True)

    @app.on_shutdown
    async def stop() -> None:
        tasks = [t for w in runtime.workers.values() for t in w.running.values()]
        for task in tasks:
            task.cancel("shutting down")  # the worker naks: not an attempt, another replica resumes
        await asyncio.gather(*tasks, return_exceptions=True)
        for close in reversed(runtime.closers):
            with contextlib.suppress(Exception):
                await close()
        if runtime.bus:
            with contextlib.suppress(Exception):
                await runtime.bus.close()

    return app, runtime


class _Broker(NatsBroker):
    """FastStream's broker on our NATS client (``shared.bus.connect.new_client``): its pull consumers
    read a message's headers as every other reader of ours does. On nats-py's own client a stored
    ExportRequested with a ``Status: 404`` header of its publisher's was taken for the server's status
    by the fetch, discarded unacked and redelivered for ever, holding one of the durable's pending acks."""

    async def _connect(self) -> Any:
        connection = new_client()
        await connection.connect(**self._connection_kwargs)
        self.config.connect(connection)
        return connection


async def _undecoded(msg: NatsMessage) -> bytes:
    """The body as delivered: FastStream's own decoder is never run on a trigger. It read the body as
    JSON or text by the publisher's ``content-type`` header, and its errors escaped the handler — a
    body nested deeper than Python's JSON parser goes (RecursionError), ``application/json`` on one
    that is no JSON, ``text/plain`` on one that is no UTF-8: never acked, redelivered after every ack
    wait for ever. The worker decodes every trigger itself (``events.decode``) and drops a bad one."""
    return msg.body


def _subscribe(broker: NatsBroker, runtime: ServiceRuntime, settings: Settings, stream: JStream,
               sub: Subscription) -> None:
    """Bind to the durable the admin set-up created (shared/bus/topology.py); its config is only used
    where the server lets this user create it (an open development server)."""
    js_config = consumer_config(settings, Consumer(sub.durable, sub.event))
    # A durable of several trigger types (notifier-failed) is created with its filter_subjects (nats-py
    # uses the subscriber's subject only where none are given); the subject then names the first.
    subject = js_config.filter_subject or (js_config.filter_subjects or [""])[0]
    config = ConsumerConfig(
        durable_name=sub.durable, ack_policy=js_config.ack_policy, ack_wait=js_config.ack_wait,
        max_deliver=js_config.max_deliver, deliver_policy=js_config.deliver_policy,
        max_ack_pending=js_config.max_ack_pending, filter_subjects=js_config.filter_subjects,
    )

    @broker.subscriber(subject, stream=stream, durable=sub.durable, config=config,
                       pull_sub=PullSub(batch_size=1, timeout=1.0), ack_policy=AckPolicy.MANUAL, decoder=_undecoded,
                       inbox_prefix=f"{inbox_prefix(settings.nats_user)}.".encode(),
                       title=f"{sub.durable}:{sub.event}", description=sub.description or None)
    async def handle(body: Any) -> None:
        # The message from faststream's context, not as a `msg: NatsMessage` parameter: fast_depends
        # resolves such a Context field with a sync function, so it ran in anyio's thread pool — a
        # thread hop per message in every service (a test keeps handlers free of such fields).
        msg: NatsMessage = broker.context.get_local("message")
        worker = runtime.workers.get(sub.worker)
        if worker is None:
            await msg.nack(delay=1)  # still starting
            return
        await worker.handle(msg.raw_message)
