"""The event log: one JetStream stream, one subject per event, fenced appends per export.

Reads trust the subject, not the body: the server's permissions vouch for who may publish on a
subject, so an event whose body names another tenant, export or type than its subject is dropped
(logged and counted in ``grove_events_rejected_total``), as is a type this version does not know
or a body that does not parse. Reads use batched direct get: no consumer is created.

Errors::

    EventLogError
    ├── Conflict      another writer appended first (err 10071): re-read, re-decide
    └── LogUnavailable  the bus did not answer in time
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from shared.bus.answers import stored_answer
from shared.core import events as ev
from shared.core.lifecycle import ExportState, fold
from shared.core.printable import printable
from shared.eventlog.directget import (
    BATCH,
    DirectGetUnavailable,
    Stored,
    count_and_first,
    get_batch,
    get_seq,
    last_per_subject,
)
from shared.runtime import metrics, tracing

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 256 * 1024
WORKER_ID = f"{socket.gethostname()}-{os.getpid()}"  # this replica, stamped on what it appends
WRONG_LAST_SEQUENCE = (10071, 10164)
NO_MESSAGE_FOUND = 10037  # STREAM.MSG.GET found no message (of the subject, from the sequence on)


class EventLogError(Exception):
    pass


class Conflict(EventLogError):
    """The export's log moved since the writer folded it."""


class LogUnavailable(EventLogError):
    pass


# How much of a dropped message's subject and reason its line shows. Both are a publisher's text (the
# gateway's user may publish on ``<prefix>.*.*.ExportRequested``, any tokens; a body's ``type`` is
# anything up to 256 KiB), so the line shows their control and bidi characters as escapes and cuts them
# short: a raw U+202E reversed the rest of the line, and a 250 KB ``type`` was copied whole into the
# line of every reader that dropped it.
SHOWN_CHARS = 300


def _shown(text: str) -> str:
    cut = text[:SHOWN_CHARS]
    return printable(cut) + (f"… ({len(text)} characters)" if len(text) > SHOWN_CHARS else "")


# How far each reader has said the messages it drops, by (reader, export): the message at a sequence
# never changes, and every read of an export walks all of its messages again, in sequence order — each
# step's load, each fenced append's re-read, the gateway's history, the assembler's re-read on every
# CancelRequested it hears. Any user can have the server store thousands on one export's subjects
# (PubAcks aimed there), and each read said each of them again: K of them cost K lines a read, and K
# aimed at a running assembly's CancelRequested (each a core wake-up and a read) K²/2. Said once per
# process now: one sequence kept an export (its highest said), the least recently dropped-from of
# SAID_KEPT exports forgotten — so however many messages one export holds, its later reads say none
# again (a set of (reader, subject, sequence) forgot the first of 33,768 on one export before the read
# came back to it, and every read said them all). A read that meets an export's messages out of order
# may leave one unsaid; each is still counted at every drop.
SAID_KEPT = 65_536
_said: dict[int, int] = {}


def _first_time(consumer: str, subject: str, seq: int) -> bool:
    key = hash((consumer, subject.rpartition(".")[0]))  # the export: the subject less its type
    said = _said.pop(key, 0)  # stream sequences start at 1
    first = seq > said
    _said[key] = max(seq, said)  # most recently dropped-from last
    if len(_said) > SAID_KEPT:
        del _said[next(iter(_said))]
    return first


def reject(consumer: str, subject: str, error: ev.BadEvent, seq: int | None = None) -> None:
    """Drop a message that is not a usable event: one short, escaped log line and one count, never a retry.
    ``seq``: a stored message read again and again (the log's reads): counted at every drop, its line said
    the first time only."""
    metrics.EVENTS_REJECTED.labels(consumer, error.reason).inc()
    if seq is not None and not _first_time(consumer, subject, seq):
        return
    # The text, not the exception: its traceback holds the decoder's frame and so the whole body, for
    # as long as a handler keeps the record (a buffering one, a test's capture). The subject and the
    # error naming it as escapes: a subject may hold any character but a space, a dot or a wildcard,
    # and any user can have a message stored on one of an export's subjects (an escape there repainted
    # the terminal of an operator whose command read the log).
    log.warning("%s drops %s event on %s: %s", consumer, error.reason, _shown(subject), _shown(str(error)))


@dataclass(frozen=True)
class Loaded:
    """One export's folded state and the stream sequence of its last event (0 = none)."""

    state: ExportState
    last_seq: int


# Message deletes are allowed: ``grove-export erase-tenant`` deletes each of a tenant's events with
# the server's message delete, which writes random bytes over the message in its block file — a
# purge leaves the bytes there (the requester's address was still in the stream's ``msgs/1.blk``
# after the erasure). No service user may call the delete API (shared/bus/permissions.py) — save through
# a reply subject, an open gap (README, Locked down) — and the admin could purge the stream anyway. A stream made before keeps ``deny_delete``: nats-server never
# lets an update clear it (:meth:`EventLog.ensure_stream` keeps it, erase says what that costs).
def stream_config(name: str, prefix: str, replicas: int, max_age_days: float) -> StreamConfig:
    return StreamConfig(
        name=name,
        subjects=[f"{prefix}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        max_age=max_age_days * 86400,
        duplicate_window=3600,
        max_msg_size=MAX_EVENT_BYTES,
        allow_direct=True,
        deny_delete=False,
    )


class EventLog:
    """Append and read events of exports on a JetStream stream."""

    def __init__(self, js: JetStreamContext, stream: str = "EXPORTS", prefix: str = "exports",
                 producer: str = "unknown", indexed_reads: bool = False) -> None:
        self.js = js
        # Only when one server answers direct gets (a stream of one replica): then the two reads
        # of load() see one history, the second no older than the first. Replicas answer direct
        # gets too, each from its own (possibly lagging) copy, as does a mirror made with
        # mirror_direct (the admin set-up makes none).
        self.indexed_reads = indexed_reads
        self.stream = stream
        self.prefix = prefix
        self.producer = producer

    async def ensure_stream(self, replicas: int = 1, max_age_days: float = 30.0) -> None:
        """Create the stream, or bring an existing one to this config (idempotent)."""
        config = stream_config(self.stream, self.prefix, replicas, max_age_days)
        try:
            await self.js.add_stream(config)
        except APIError as e:
            if e.err_code != 10058:  # stream name already in use with a different config
                raise
            if (await self.js.stream_info(self.stream)).config.deny_delete:  # one-way: an update may not clear it
                config = dataclasses.replace(config, deny_delete=True)
            await self.js.update_stream(config)

    def subject(self, event: ev.Event) -> str:
        return ev.subject_for(self.prefix, event)

    async def append(self, event: ev.Event, expected_seq: int, msg_id: str | None = None) -> int:
        """Append ``event`` if the export's last sequence is still ``expected_seq``.

        The message id makes a retried publish of this very append a no-op (JetStream dedupe
        window); it is not what makes steps idempotent — deciding from the fold plus this fence is.
        It carries the event's random ``event_id`` (unguessable before the append) and the expected
        sequence (the same event appended again at a later position is a new append); ``msg_id``
        is only a readable prefix. A PubAck that says "duplicate" is believed only when the message
        stored at its sequence is this very event on this subject: anything else is someone else's
        message squatting our id, and the append is a :class:`Conflict` — never a silent success.
        """
        stamp = {k: v for k, v in (("producer", self.producer), ("worker", WORKER_ID))
                 if getattr(event, k) in ("", "unknown")}
        if stamp:
            event = event.model_copy(update=stamp)
        data = event.to_json()
        if len(data) > MAX_EVENT_BYTES:
            raise EventLogError(f"{event.name()} is {len(data)} bytes; events must stay under 256 KiB")
        headers = {
            "Nats-Expected-Last-Subject-Sequence": str(expected_seq),
            "Nats-Expected-Last-Subject-Sequence-Subject": ev.export_filter(
                self.prefix, event.tenant_id, event.export_id
            ),
            "Nats-Msg-Id": f"{msg_id or f'{event.export_id}:{event.name()}'}:{event.event_id}@{expected_seq}",
            **tracing.message_headers(event, self.subject(event)),  # {} unless tracing is on
        }
        subject = self.subject(event)
        for attempt in range(6):
            try:
                ack = await self.js.publish(subject, data, headers=headers, timeout=5)
                if ack.duplicate:
                    await self._verify_duplicate(int(ack.seq), subject, data)
                return int(ack.seq)
            except APIError as e:
                if e.err_code in WRONG_LAST_SEQUENCE:
                    raise Conflict(f"{event.export_id}: log moved past {expected_seq}") from None
                if e.code == 503 and attempt < 5:
                    await asyncio.sleep(0.2 * 2**attempt)  # no responders / leader election
                    continue
                if e.code == 503:  # still refused (its storage full, no leader): the bus is unavailable
                    raise LogUnavailable(f"{event.name()} of {event.export_id}: {e.description}") from e
                raise EventLogError(str(e)) from e
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError,
                    nats.errors.ConnectionClosedError):
                if attempt == 5:
                    raise LogUnavailable(f"no PubAck for {event.name()} of {event.export_id}") from None
                await asyncio.sleep(0.2 * 2**attempt)  # same Nats-Msg-Id: a retry cannot double-append
        raise LogUnavailable("unreachable")

    async def _verify_duplicate(self, seq: int, subject: str, data: bytes) -> None:
        stored = await get_seq(self.js, self.stream, seq)
        if stored is None or stored.subject != subject or stored.data != data:
            metrics.EVENTS_REJECTED.labels("append", "squatted").inc()
            log.warning("duplicate PubAck for %s points at seq %s, which is not our event", subject, seq)
            raise Conflict(f"{subject}: message id taken by another message (seq {seq})")

    async def last_seq(self, tenant_id: str, export_id: str) -> int:
        """Sequence of the export's last event, 0 when it has none."""
        try:
            msg = await self.js.get_last_msg(
                self.stream, ev.export_filter(self.prefix, tenant_id, export_id), direct=True
            )
        except NotFoundError:
            return 0
        return int(msg.seq or 0)

    async def history(self, tenant_id: str, export_id: str) -> AsyncIterator[tuple[int, ev.Event]]:
        """Every event of one export, in order, with its stream sequence (bad events dropped)."""
        async for batch in self._batches(tenant_id, export_id):
            for stored in batch:
                try:
                    yield stored.seq, ev.decode(self.prefix, stored.subject, stored.data, answer=stored.answer)
                except ev.BadEvent as e:
                    reject("log", stored.subject, e, stored.seq)

    async def load(self, tenant_id: str, export_id: str, *, at_leader: bool = False) -> Loaded:
        """Fold one export's history. ``at_leader``: read by the stream's leader (:meth:`_leader_batches`),
        for a look that decides to delete objects; else by direct gets. ``last_seq`` is the export's last *stored* message, dropped
        ones included: it is what the server's fence compares with, so a forged message on the
        export's subjects costs a writer one re-read, never a loop. Folded one batch at a time:
        any service user may append events of up to 256 KiB to any export, and the fold keeps only
        what it needs of them, so a long history is never held whole."""
        state, last = ExportState(), 0
        batches = self._leader_batches if at_leader else self._batches
        async for batch in batches(tenant_id, export_id):
            state = fold(self._decoded(batch), state)
            last = batch[-1].seq
        return Loaded(state, last)

    async def _batches(self, tenant_id: str, export_id: str) -> AsyncIterator[list[Stored]]:
        """Every message stored on one export's subjects, in order, a batch at a time (none empty).

        An export's events are interleaved with every other export's, and the server finds the
        next message on a wildcard by walking every message in between: with thousands of exports
        in flight that walk was most of nats-server's CPU, growing with their number. So ask the
        per-subject index first: the last message of each of the export's subjects, then the
        first message and how many there are. A count equal to the number of subjects means each
        event type once (the usual case): those messages are the whole history. Otherwise walk
        it, asking for as many as there are (a larger batch walks on to the end of the stream)."""
        try:
            async for batch in self._read_batches(tenant_id, export_id):
                yield batch
        except DirectGetUnavailable as e:
            # No server answers for the stream (its replicas down): the bus did not answer, as a publish
            # without a PubAck — a 503 at the gateway (it was a 500), not a failed attempt of a step.
            raise LogUnavailable(f"{export_id}: {e}") from None

    async def _leader_batches(self, tenant_id: str, export_id: str) -> AsyncIterator[list[Stored]]:
        """Every message stored on one export's subjects, in order, one at a time, as the stream's
        leader holds them: the non-direct get (``STREAM.MSG.GET``), which only the leader answers. A
        direct get is answered by any replica from its own copy, and nats-server lets a follower still
        catching up answer: a look read there may miss the export's newest events, or all of them. A
        message at a time (that get has no batches): only for the rare look that decides a deletion."""
        subject, seq = ev.export_filter(self.prefix, tenant_id, export_id), 1
        while True:
            try:
                m = await self.js.get_msg(self.stream, seq=seq, subject=subject, next=True, direct=False)
            except NotFoundError as e:
                if e.err_code == NO_MESSAGE_FOUND:
                    return  # nothing more on the export's subjects
                # Any other 404 — the stream itself not found (deleted and not yet restored by
                # `restore --replace`, or never made) — says nothing of the export: read as "no message",
                # it was an erased export, and the catalog deleted every work object of it. The direct
                # read answers the same server state with LogUnavailable (no server answers); so does this.
                raise LogUnavailable(f"{export_id}: {e.description or e}") from None
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
                raise LogUnavailable(f"{export_id}: the stream's leader did not answer ({type(e).__name__})") from None
            except APIError as e:
                if e.code == 503:  # no leader (an election)
                    raise LogUnavailable(f"{export_id}: {e.description}") from None
                raise EventLogError(f"{export_id}: {e}") from e
            yield [Stored(int(m.seq or 0), m.subject or "", m.data or b"", stored_answer(m.headers, direct=False))]
            seq = int(m.seq or 0) + 1

    async def _read_batches(self, tenant_id: str, export_id: str) -> AsyncIterator[list[Stored]]:
        """:meth:`_batches`, the reads themselves."""
        js, subject = self.js, ev.export_filter(self.prefix, tenant_id, export_id)
        lasts = await last_per_subject(js, self.stream, subject) if self.indexed_reads else None
        if lasts == []:
            return
        first, count = await count_and_first(js, self.stream, subject)
        if first is None:
            return
        # Read after the lasts, on the same server: messages are only ever added (no deletes), so a
        # count equal to the subjects then was one message per subject then. Were the oldest aged
        # out in between, the first message would not be the lasts' first.
        if lasts is not None and count == len(lasts) and first.seq == lasts[0].seq:
            yield lasts
            return
        seq, want = first.seq, count
        while True:  # batched direct gets until one reaches the end
            batch = await get_batch(js, self.stream, seq=seq, subject=subject, batch=max(1, min(BATCH, want)))
            if batch.messages:
                yield batch.messages
            if not batch.messages or not batch.pending:
                return
            seq, want = batch.messages[-1].seq + 1, batch.pending

    def _decoded(self, stored: list[Stored]) -> list[ev.Event]:
        """The usable events among ``stored``; the rest dropped, logged and counted."""
        events = []
        for m in stored:
            try:
                events.append(ev.decode(self.prefix, m.subject, m.data, answer=m.answer))
            except ev.BadEvent as e:
                reject("log", m.subject, e, m.seq)
        return events
