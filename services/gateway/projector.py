"""Feeds the read model from the log: a JetStream ordered consumer over ``exports.>`` that starts
right after the last applied stream sequence, and :func:`replay`, which rebuilds the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from pathlib import Path

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from services.gateway.readmodel import ReadModel
from shared import events as ev
from shared.bus import Bus
from shared.settings import Settings

log = logging.getLogger(__name__)
IDLE_CHECK_S = 5.0


def decode(msg: Msg) -> ev.Event | None:
    """The event in ``msg``, or None for a type (or shape) this version does not know."""
    try:
        return ev.parse_event(msg.subject.rsplit(".", 1)[-1], msg.data)
    except (ev.UnknownEvent, ValidationError, ValueError):
        log.warning("read model skips %s", msg.subject)
        return None


async def _subscribe(bus: Bus, start: int) -> JetStreamContext.PushSubscription:
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, start))
    return await bus.js.subscribe(f"{bus.log.prefix}.>", stream=bus.log.stream, ordered_consumer=True,
                                  config=config)


async def _apply(model: ReadModel, msg: Msg) -> None:
    await model.apply(msg.metadata.sequence.stream, decode(msg))


class Projector:
    """Keeps one :class:`ReadModel` current; re-subscribes if the consumer goes quiet while behind."""

    def __init__(self, bus: Bus, model: ReadModel) -> None:
        self.bus = bus
        self.model = model
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-projector")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                sub = await _subscribe(self.bus, self.model.position + 1)
                try:
                    await self._consume(sub)
                finally:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("projector restarting after %r", exc)
                await asyncio.sleep(1.0)

    async def _consume(self, sub: JetStreamContext.PushSubscription) -> None:
        quiet = 0.0
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                quiet += 1.0
                if quiet >= IDLE_CHECK_S:
                    quiet = 0.0
                    if await self._behind():
                        return  # the consumer is stuck (e.g. lost in a server restart): re-subscribe
                continue
            quiet = 0.0
            await _apply(self.model, msg)

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
            sub = await _subscribe(bus, 1)
            try:
                while model.position < last:
                    await _apply(model, await sub.next_msg(timeout=timeout))
            finally:
                await sub.unsubscribe()
        rows = len(await model.dump())
    except BaseException:
        await model.close()
        tmp.unlink(missing_ok=True)
        raise
    await model.close()
    for stale in (Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        stale.unlink(missing_ok=True)
    os.replace(tmp, path)
    return rows
