"""The admission protocol on the JetStream KV bucket ``<kv_prefix>_admission``, in server time.

* ``now``: the gateway writes a probe key ``clock.<instance>`` and reads the last message on that
  subject back (``STREAM.MSG.GET``: the bucket is not created with direct gets); the message's
  ``time`` is the server's clock (a concurrent probe of the same instance may answer with a
  slightly later time, which is still "now"). A probe is two round trips and a stored message, so
  admission takes one at most every ``CLOCK_REFRESH_S`` and counts on from it with the monotonic
  clock (:class:`ServerClock`): still the server's time, to within the probe's round trip.
* ``tenant.<id>``: the slot (see :mod:`services.gateway.admission`), read the same way (value,
  revision, time) and written with ``kv.update(key, value, last=revision)`` / ``kv.create``; a
  ``KeyWrongLastSequenceError`` means another request won: re-read and re-decide.
* ``idem.<tenant>.<sha256([user, Idempotency-Key])>``: ``{exportId, body}`` (a key is its user's own), honoured for 24 h by the entry's
  time and written with a 24 h per-message TTL so the server drops it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.js.errors import APIError, KeyWrongLastSequenceError, NotFoundError

from services.gateway import admission as adm
from services.gateway.problems import Unavailable
from services.gateway.readmodel import ReadModel
from shared.bus.answers import stored_answer
from shared.bus.connect import Bus, kv_names
from shared.core import events as ev
from shared.runtime.settings import Settings

log = logging.getLogger(__name__)
IDEMPOTENCY_TTL = adm.IDEMPOTENCY_TTL
MAX_ROUNDS = 25
CLOCK_REFRESH_S = 1.0

Outcome = adm.Admit | adm.Conflict | adm.RateLimited | adm.Replay | adm.Mismatch


class ServerClock:
    """The server's time from a probe taken at most every ``refresh_s``, counted on with the
    monotonic clock in between (one probe at a time; never earlier than a time it gave before)."""

    def __init__(self, probe: Callable[[], Awaitable[datetime]], refresh_s: float = CLOCK_REFRESH_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._probe, self._refresh_s, self._monotonic = probe, refresh_s, monotonic
        self._base: tuple[datetime, float] | None = None  # (server time, monotonic reading when it was read)
        self._last: datetime | None = None
        self._probing: asyncio.Task[None] | None = None

    async def now(self) -> datetime:
        if self._stale():
            # one probe for every request that finds the time stale while it runs: they share its
            # answer and its failure (behind a lock each took its own failing probe in turn, the
            # fifth waiting five bus timeouts for its 503); one given up on leaves it to the others
            if self._probing is None:
                self._probing = asyncio.create_task(self._take())
                self._probing.add_done_callback(lambda t: t.cancelled() or t.exception())  # none unretrieved
            await asyncio.shield(self._probing)
        assert self._base is not None
        server, taken = self._base
        now = server + timedelta(seconds=self._monotonic() - taken)
        self._last = now if self._last is None or now > self._last else self._last
        return self._last

    async def _take(self) -> None:
        try:
            taken = self._monotonic()
            server = await self._probe()
            self._base = (server, taken)
        finally:
            self._probing = None  # a failed probe is taken again by the next request

    def _stale(self) -> bool:
        return self._base is None or self._monotonic() - self._base[1] >= self._refresh_s


Newest = Callable[[str], Awaitable["adm.Slot | None"]]


class AdmissionStore:
    """Reads and compare-and-sets the admission bucket for one gateway instance.

    ``newest(tenant)``: the slot the log gives when the bucket's is no gateway's — the tenant's
    newest export as the read model holds it (:func:`newest_from`): a value anyone aimed at the key
    (a PubAck: any publisher names the reply subject) freed the slot, so the tenant could run two
    exports at once and the rate limit was forgotten. Without it (the operator's commands), such a
    slot is free, as before."""

    def __init__(self, bus: Bus, settings: Settings, instance: str, newest: Newest | None = None) -> None:
        self.bus = bus
        self.newest = newest
        self.settings = settings
        self.bucket = kv_names(settings)[1]
        self.stream = f"KV_{self.bucket}"
        self.clock_key = f"clock.{instance}"
        self.clock = ServerClock(self.server_now)

    async def server_now(self) -> datetime:
        """A fresh probe of the server's clock (see :attr:`clock` for the one admission reads)."""
        await self.bus.admission.put(self.clock_key, b"")
        msg = await self.bus.js.get_last_msg(self.stream, f"$KV.{self.bucket}.{self.clock_key}")
        if msg.time is None:
            raise Unavailable("The bus did not report its time.")
        return msg.time

    async def read(self, key: str) -> tuple[dict[str, Any] | None, int, datetime | None]:
        """(value, revision, server time of the write); revision 0 when the key never existed. A value
        no gateway wrote — the server's answer to someone's request stored under the key (any user can
        aim one there: shared/bus/answers.py), or anything but a JSON object — is no value: the key
        counts as free, and the next write replaces it (its revision is kept for that)."""
        value, revision, written, _ = await self._read(key)
        return value, revision, written

    async def _read(self, key: str) -> tuple[dict[str, Any] | None, int, datetime | None, bool]:
        """:meth:`read`, and whether the key holds a value no gateway wrote."""
        try:
            msg = await self.bus.js.get_last_msg(self.stream, f"$KV.{self.bucket}.{key}")
        except NotFoundError:
            return None, 0, None, False
        revision = int(msg.seq or 0)
        # A copy the server stored as its answer is asked about first: a direct get's copy carries the
        # headers and body of a message the requester chose, so one of an empty message, or of one
        # with a `KV-Operation: DEL` header, read as the key's delete marker — a free slot, the running
        # export forgotten and a second one admitted beside it (the PubAck's door, through another).
        answer = stored_answer(msg.headers, direct=False)
        if not answer and ((msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE") or not msg.data):
            return None, revision, None, False
        try:
            value = None if answer or not msg.data else json.loads(msg.data)
        except (ValueError, RecursionError):  # nested thousands deep: RecursionError, a traceback
            value = None
        if not isinstance(value, dict):
            log.warning("admission: %s holds a value no gateway wrote", key)
            return None, revision, None, True
        return value, revision, msg.time, False

    async def write(self, key: str, value: dict[str, Any], revision: int) -> bool:
        """Compare-and-set: False when the key moved past ``revision``."""
        data = json.dumps(value, separators=(",", ":")).encode()
        try:
            if revision:
                await self.bus.admission.update(key, data, last=revision)
            else:
                await self.bus.admission.create(key, data)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def active_status(self, tenant_id: str, export_id: str) -> str | None:
        """Folded status of one export; None while it has no request (no events yet, or only ones
        every reader drops). Always the fold: the type token of the last stored message is not an
        event until its body is read, and even a valid one may be one the fold ignores (a second
        ExportRequested, an ExportFailed after ExportCompleted) — it read "pending" or "failed" and
        locked a tenant out, or let a second export run beside the first."""
        state = (await self.bus.log.load(tenant_id, export_id)).state
        return state.status if state.exists else None

    async def admit(self, tenant_id: str, new_export_id: str, fingerprint: str | None) -> Outcome:
        """Run the protocol until a decision sticks. ``fingerprint``: "<key hash>:<body hash>"."""
        s = self.settings
        key = f"tenant.{tenant_id}"
        for _ in range(MAX_ROUNDS):
            now = await self.clock.now()
            if fingerprint:
                remembered = await self.remembered(tenant_id, fingerprint, now)
                if remembered:
                    return remembered
            data, revision, _, foreign = await self._read(key)
            # an object naming none of a slot's fields (a PubAck: {"stream": …, "seq": …}) is none
            foreign = foreign or (data is not None and not data.keys() & adm.SLOT_FIELDS)
            slot = adm.Slot.from_json(data) if data and not foreign else None
            if slot is not None and slot.unreadable:
                log.warning("admission: %s: %s cannot be read", key, ", ".join(slot.unreadable))
            from_log = (foreign or (slot is not None and slot.unreadable)) and self.newest is not None
            if from_log:
                assert self.newest is not None
                slot = await self.newest(tenant_id)  # decided from the log; the write below replaces it
                if slot is not None and slot.reserved_at is not None and slot.reserved_at > now:
                    # created_at is the publisher's clock (a gateway of one's own may be years ahead):
                    # a 429 (or 409) until then, for good, as the foreign value stayed
                    slot = dataclasses.replace(slot, reserved_at=now)
            active = slot.active_export_id if slot else None
            status = await self.active_status(tenant_id, active) if active else None
            repeat = adm.match_idempotency(slot, status, now, s.reservation_timeout_s, fingerprint)
            if repeat:
                return repeat
            decision = adm.decide(now, slot, status, new_export_id=new_export_id, window_s=s.rate_window_s,
                                  reservation_timeout_s=s.reservation_timeout_s, idempotency=fingerprint)
            if not isinstance(decision, adm.Admit):
                if from_log and slot is not None:  # fixed in server time, and a slot `unlock` can free
                    await self.write(key, slot.to_json(), revision)
                return decision
            if await self.write(key, decision.slot.to_json(), revision):
                return decision
        raise Unavailable("Too many concurrent requests for this tenant; try again.")

    async def remembered(self, tenant_id: str, fingerprint: str, now: datetime) -> adm.Replay | adm.Mismatch | None:
        key_hash, _, body_hash = fingerprint.partition(":")
        data, _, written = await self.read(f"idem.{tenant_id}.{key_hash}")
        if not data or written is None or now - written >= IDEMPOTENCY_TTL:
            return None
        export_id = data.get("exportId")
        if not isinstance(export_id, str) or not ev.is_valid_id(export_id):  # no gateway wrote it: not remembered
            log.warning("admission: idem.%s.%s names no export; taken as not remembered", tenant_id, key_hash)
            return None
        return adm.Replay(export_id) if data.get("body") == body_hash else adm.Mismatch(export_id)

    async def remember(self, tenant_id: str, fingerprint: str, export_id: str) -> None:
        key_hash, _, body_hash = fingerprint.partition(":")
        value = json.dumps({"exportId": export_id, "body": body_hash}).encode()
        subject = f"$KV.{self.bucket}.idem.{tenant_id}.{key_hash}"
        try:  # the server forgets the key after 24 h (per-message TTL, nats-server 2.11+)
            await self.bus.js.publish(subject, value, msg_ttl=IDEMPOTENCY_TTL.total_seconds())
        except APIError:  # a bucket made without per-message TTLs: the entry's time still bounds it
            await self.bus.admission.put(f"idem.{tenant_id}.{key_hash}", value)


async def newest_from(model: ReadModel, tenant_id: str) -> adm.Slot | None:
    """The slot the log gives for ``tenant_id``: its newest export (the read model's, which holds
    only events every reader takes) as the active one, reserved when it was requested; its folded
    status then says whether it is running or counts toward the limit, as for any slot."""
    rows = await model.recent(tenant_id, 1)
    if not rows:
        return None
    return adm.Slot(active_export_id=rows[0].id, reserved_at=datetime.fromtimestamp(rows[0].created_at / 1000, UTC))
