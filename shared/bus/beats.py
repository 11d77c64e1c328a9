"""Reading a step's heartbeat key as its worker left it: the janitor (is the step alive?) and the
step worker itself (did the run before this one die in the middle?) read it the same way.

A direct get with the headers, as the bucket's own get is but with them: a deleted key, an expired
one, a copy the server stored there as its answer to someone's request (``shared/bus/answers.py``)
and anything not shaped as this step's worker writes it (``keys.parse_beat``: a PubAck aimed at the
key has no server headers, but no step and no worker either) all read as no beat.

Such a value no worker put also stands *over* the worker's beat: the bucket keeps one value a key,
and any user can have the server store its answer under any key, as often as it likes. So whether a
worker beats (:func:`beating`, the janitor's question) is not told by the stored value alone when
that value is no beat: the puts that follow are heard for a while, and a worker that beats puts one
within its interval, whatever was stored in between.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from shared.bus.answers import stored_answer
from shared.bus.connect import Bus, kv_names
from shared.core.keys import heartbeat_key, parse_beat
from shared.runtime.settings import Settings

log = logging.getLogger(__name__)


def _subject(settings: Settings, step: str, tenant_id: str, export_id: str) -> tuple[str, str]:
    bucket = kv_names(settings)[0]
    return f"KV_{bucket}", f"$KV.{bucket}.{heartbeat_key(step, tenant_id, export_id)}"


async def _stored(bus: Bus, settings: Settings, step: str, tenant_id: str,
                  export_id: str) -> tuple[dict[str, Any] | None, bool]:
    """(the beat under the key, whether the key holds a value no worker of ``step`` put)."""
    stream, subject = _subject(settings, step, tenant_id, export_id)
    try:
        msg = await bus.js.get_last_msg(stream, subject, direct=True)
    except NotFoundError:  # expired, or never put
        return None, False
    if (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE") or not msg.data:
        return None, False  # deleted by its worker
    if stored_answer(msg.headers):
        log.warning("the %s heartbeat of %s was stored by the server as an answer, not put by a worker; "
                    "it counts for nothing", step, export_id, extra={"export_id": export_id, "tenant_id": tenant_id})
        return None, True
    beat = parse_beat(msg.data, step)
    return beat, beat is None


async def last_beat(bus: Bus, settings: Settings, step: str, tenant_id: str,
                    export_id: str) -> dict[str, Any] | None:
    """The beat a worker of ``step`` last put under the export's heartbeat key; None when there is
    none. A failed read raises (a KV hiccup says nothing about the worker)."""
    return (await _stored(bus, settings, step, tenant_id, export_id))[0]


def is_put_beat(msg: Msg, step: str) -> bool:
    """A put heard on a heartbeat key is a beat of ``step``'s worker: shaped as one, and neither a
    delete nor a copy the server sent there as its answer (those carry its headers)."""
    headers = msg.headers or {}
    if headers.get("KV-Operation") is not None or stored_answer(headers, direct=False) or not msg.data:
        return False
    return parse_beat(msg.data, step) is not None


async def beating(bus: Bus, settings: Settings, step: str, tenant_id: str, export_id: str) -> bool:
    """Whether a worker of ``step`` beats for the export: its beat is under the key — or the key holds
    a value no worker put and a beat is put within two beat intervals (``progress_interval_s``). A
    PubAck aimed at a running export's key, again and again, stood over each beat, and the janitor
    failed the export as dead; on a dead export's key no beat follows, and it is failed all the same.
    A failed read raises."""
    _, subject = _subject(settings, step, tenant_id, export_id)
    heard = asyncio.Event()

    async def put(msg: Msg) -> None:
        if is_put_beat(msg, step):
            heard.set()

    beat, foreign = await _stored(bus, settings, step, tenant_id, export_id)
    if beat is not None or not foreign:
        return beat is not None
    log.warning("the %s heartbeat key of %s holds a value no worker put; listening for a beat",
                step, export_id, extra={"export_id": export_id, "tenant_id": tenant_id})
    # A beat put between the read and the subscription is missed: a live worker puts the next one
    # within its interval, and the wait is two of them.
    sub = await bus.nc.subscribe(subject, cb=put)
    try:
        async with asyncio.timeout(2 * settings.progress_interval_s + 1.0):
            await heard.wait()
    except TimeoutError:
        return False
    finally:
        await sub.unsubscribe()
    return True
