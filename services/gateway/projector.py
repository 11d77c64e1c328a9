"""Feeds the read model from the log: a JetStream ordered consumer over ``exports.>`` that starts
right after the last applied stream sequence, and :func:`replay`, which rebuilds the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from services.gateway.projection import Row, project
from services.gateway.readmodel import ReadModel
from shared import events as ev
from shared.bus import Bus
from shared.settings import Settings

log = logging.getLogger(__name__)
IDLE_CHECK_S = 2.0
REPLAY_BATCH = 5000  # events folded in memory per write when rebuilding


def decode(msg: Msg) -> ev.Event | None:
    """The event in ``msg``, or None for a type (or shape) this version does not know."""
    try:
        return ev.parse_event(msg.subject.rsplit(".", 1)[-1], msg.data)
    except (ev.UnknownEvent, ValidationError, ValueError):
        log.warning("read model skips %s", msg.subject)
        return None


async def _subscribe(bus: Bus, start: int, cb: Callable[[Msg], Awaitable[None]] | None = None,
                     ) -> JetStreamContext.PushSubscription:
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, start))
    return await bus.js.subscribe(f"{bus.log.prefix}.>", stream=bus.log.stream, ordered_consumer=True,
                                  config=config, cb=cb)


async def _apply(model: ReadModel, msg: Msg) -> None:
    await model.apply(msg.metadata.sequence.stream, decode(msg))


class Projector:
    """Keeps one :class:`ReadModel` current.

    Messages arrive on a callback (nats-py awaits it per message, so in order). A watchdog renews
    the subscription from the last applied sequence when an apply failed, or when the consumer went
    quiet while the stream is ahead (e.g. the ephemeral consumer was lost in a server restart).
    """

    def __init__(self, bus: Bus, model: ReadModel) -> None:
        self.bus = bus
        self.model = model
        self._sub: JetStreamContext.PushSubscription | None = None
        self._broken = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-projector")

    async def stop(self) -> None:
        # A flag as well as the cancel: on Python 3.11 a cancel that lands as the watchdog's
        # asyncio.timeout expires can be swallowed as a TimeoutError, and the task would live on.
        self._stopping = True
        self._broken.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._drop()
                self._broken.clear()
                info = await self.bus.js.stream_info(self.bus.log.stream)
                identity = f"{info.config.name}@{getattr(info, 'created', '')}"
                if await self.model.bind(identity) or self.model.position > int(info.state.last_seq):
                    log.warning("the read model was built from another stream: rebuilding it")
                    await self.model.reset()
                self._sub = await _subscribe(self.bus, self.model.position + 1, self._on_msg)
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bus is down or the consumer vanished: retry
                log.warning("projector restarting after %r", exc)
                await asyncio.sleep(1.0)

    async def _on_msg(self, msg: Msg) -> None:
        if self._broken.is_set():
            return  # skip until the watchdog re-subscribes after the last applied sequence
        try:
            await _apply(self.model, msg)
        except Exception:
            log.exception("projector could not apply %s", msg.subject)
            self._broken.set()

    async def _watch(self) -> None:
        """Return when the subscription must be renewed."""
        seen = self.model.position
        while True:
            try:
                async with asyncio.timeout(IDLE_CHECK_S):
                    await self._broken.wait()
                return
            except TimeoutError:
                pass
            if self._stopping:
                return
            if self.model.position == seen and await self._behind():
                return
            seen = self.model.position

    async def _drop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _behind(self) -> bool:
        info = await self.bus.js.stream_info(self.bus.log.stream)
        return int(info.state.last_seq) > self.model.position


async def replay(target: Settings | Path | str, bus: Bus, *, timeout: float = 30.0) -> int:
    """Rebuild the read model at ``target`` (settings.read_model_db or a path) from sequence 1.

    Builds a fresh file beside it and swaps it in, so a failed replay leaves the old table. Run it
    with that gateway stopped (or into a new path). Returns the number of rows.
    """
    path = Path(target.read_model_db if isinstance(target, Settings) else target)
    tmp = path.with_name(f"{path.name}.replay-{uuid.uuid4().hex[:8]}")
    model = await ReadModel.open(tmp)
    try:
        last = int((await bus.js.stream_info(bus.log.stream)).state.last_seq)
        if last:
            inbox: list[Msg] = []
            arrived = asyncio.Event()

            async def on_msg(msg: Msg) -> None:  # no per-message future/timeout as next_msg has
                inbox.append(msg)
                arrived.set()

            rows: dict[tuple[str, str], Row] = {}
            dirty: set[tuple[str, str]] = set()
            reached = pending = 0
            sub = await _subscribe(bus, 1, on_msg)
            try:
                while reached < last:
                    async with asyncio.timeout(timeout):
                        await arrived.wait()
                    arrived.clear()
                    batch, inbox[:] = inbox[:], []
                    for msg in batch:  # fold in memory: no SELECT, no transaction per event
                        reached = msg.metadata.sequence.stream
                        event = decode(msg)
                        if event is None:
                            continue
                        key = (event.tenant_id, event.export_id)
                        row = project(rows.get(key), event, reached)
                        if row is not None:
                            rows[key] = row
                            dirty.add(key)
                    pending += len(batch)
                    if pending >= REPLAY_BATCH or reached >= last:
                        await model.write_rows([rows[k] for k in dirty], reached)
                        dirty.clear()
                        pending = 0
            finally:
                await sub.unsubscribe()
        count = len(await model.dump())
    except BaseException:
        await model.close()
        tmp.unlink(missing_ok=True)
        raise
    await model.close()
    for stale in (Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        stale.unlink(missing_ok=True)
    os.replace(tmp, path)
    return count
