"""An in-memory event log: the twin of :class:`shared.eventlog.jetstream.EventLog` for pure-logic tests.

Same contract, held to the JetStream log by ``tests/integration/test_eventlog_contract.py``:
one global sequence, per-export fencing (an append names the export's last sequence it folded,
or 0 for the first event; anything else is a :class:`Conflict`), then the message id: as on
nats-server 2.15, the fence is checked first, so a retry of an append that did land is a
Conflict (re-read, re-decide). Message ids carry the event's random id; a duplicate is believed
only when the message stored under that id is this very event on this subject (else Conflict):
an id first used outside the export's subjects cannot make a fenced append vanish.
Step decisions (should it run, retry or fail, stand down on a lost fence) run on it in
milliseconds, without a server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from shared.core import events as ev
from shared.core.lifecycle import fold
from shared.eventlog.jetstream import WORKER_ID, Conflict, EventLogError, Loaded


class InMemoryEventLog:
    """Append and read events of exports, kept in a list."""

    def __init__(self, prefix: str = "exports", producer: str = "unknown") -> None:
        self.prefix = prefix
        self.producer = producer
        self.messages: list[tuple[str, ev.Event]] = []  # index + 1 = stream sequence
        self._ids: dict[str, int] = {}

    async def append(self, event: ev.Event, expected_seq: int, msg_id: str | None = None) -> int:
        stamp = {k: v for k, v in (("producer", self.producer), ("worker", WORKER_ID))
                 if getattr(event, k) in ("", "unknown")}
        if stamp:
            event = event.model_copy(update=stamp)
        if len(event.to_json()) > 256 * 1024:
            raise EventLogError(f"{event.name()} is too large; events must stay under 256 KiB")
        key = f"{msg_id or f'{event.export_id}:{event.name()}'}:{event.event_id}@{expected_seq}"
        if await self.last_seq(event.tenant_id, event.export_id) != expected_seq:
            raise Conflict(f"{event.export_id}: log moved past {expected_seq}")
        subject = ev.subject_for(self.prefix, event)
        if key in self._ids:  # JetStream's duplicate PubAck, verified against what is stored there
            seq = self._ids[key]
            if self.messages[seq - 1] != (subject, event):
                raise Conflict(f"{subject}: message id taken by another message (seq {seq})")
            return seq
        self.messages.append((subject, event))
        seq = len(self.messages)
        self._ids[key] = seq
        return seq

    def _of(self, tenant_id: str, export_id: str) -> list[tuple[int, ev.Event]]:
        head = f"{self.prefix}.{tenant_id}.{export_id}."
        return [(i + 1, e) for i, (subject, e) in enumerate(self.messages) if subject.startswith(head)]

    async def last_seq(self, tenant_id: str, export_id: str) -> int:
        found = self._of(tenant_id, export_id)
        return found[-1][0] if found else 0

    async def history(self, tenant_id: str, export_id: str) -> AsyncIterator[tuple[int, ev.Event]]:
        for seq, event in self._of(tenant_id, export_id):
            yield seq, event

    async def load(self, tenant_id: str, export_id: str, *, at_leader: bool = False) -> Loaded:
        found = self._of(tenant_id, export_id)
        return Loaded(fold(e for _, e in found), found[-1][0] if found else 0)
