"""An in-memory event log that stores an append of one event type and then answers Conflict, as a
JetStream publish retried after a lost PubAck does (the retry meets its own message already in)."""

from __future__ import annotations

from shared.core import events as ev
from shared.eventlog.jetstream import Conflict
from shared.eventlog.memory import InMemoryEventLog


class LostReplyOf(InMemoryEventLog):
    def __init__(self, lost: type[ev.Event]) -> None:
        super().__init__()
        self.lost = lost

    async def append(self, event: ev.Event, expected_seq: int, msg_id: str | None = None) -> int:
        seq = await super().append(event, expected_seq, msg_id)
        if isinstance(event, self.lost):
            raise Conflict(f"{event.export_id}: log moved past {expected_seq}")
        return seq
