"""Reading a step's heartbeat key as its worker left it: the janitor (is the step alive?) and the
step worker itself (did the run before this one die in the middle?) read it the same way.

A direct get with the headers, as the bucket's own get is but with them: a deleted key, an expired
one, a copy the server stored there as its answer to someone's request (``shared/bus/answers.py``)
and anything not shaped as this step's worker writes it (``keys.parse_beat``: a PubAck aimed at the
key has no server headers, but no step and no worker either) all read as no beat.
"""

from __future__ import annotations

import logging
from typing import Any

from nats.js.errors import NotFoundError

from shared.bus.answers import stored_answer
from shared.bus.connect import Bus, kv_names
from shared.core.keys import heartbeat_key, parse_beat
from shared.runtime.settings import Settings

log = logging.getLogger(__name__)


async def last_beat(bus: Bus, settings: Settings, step: str, tenant_id: str,
                    export_id: str) -> dict[str, Any] | None:
    """The beat a worker of ``step`` last put under the export's heartbeat key; None when there is
    none. A failed read raises (a KV hiccup says nothing about the worker)."""
    bucket = kv_names(settings)[0]
    try:
        msg = await bus.js.get_last_msg(f"KV_{bucket}", f"$KV.{bucket}.{heartbeat_key(step, tenant_id, export_id)}",
                                        direct=True)
    except NotFoundError:  # expired, or never put
        return None
    if (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE") or not msg.data:
        return None  # deleted by its worker
    if stored_answer(msg.headers):
        log.warning("the %s heartbeat of %s was stored by the server as an answer, not put by a worker; "
                    "it counts for nothing", step, export_id, extra={"export_id": export_id, "tenant_id": tenant_id})
        return None
    return parse_beat(msg.data, step)
