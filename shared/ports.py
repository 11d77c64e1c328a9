"""Ports: what the steps need from the outside, as small Protocols.

``Clock`` is the time a step decides with (the finalizer's expiry, the janitor's "now"); the content
source's port is :class:`shared.content.port.ContentSource`, the object store's
:class:`shared.objectstore.ObjectStore`.

The real adapters are :class:`shared.eventlog.jetstream.EventLog` (JetStream) and the object stores in
:mod:`shared.objectstore`; :class:`shared.eventlog.memory.InMemoryEventLog` is the event log's twin for
pure-logic tests, held to the JetStream adapter by one contract test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from shared.core import events as ev
from shared.eventlog.jetstream import Loaded


class EventLogPort(Protocol):
    """One export's append-only history: fenced appends, ordered reads, the fold."""

    async def append(self, event: ev.Event, expected_seq: int, msg_id: str | None = None) -> int:
        """Append if the export's last sequence is still ``expected_seq``; else raise Conflict."""
        ...

    async def last_seq(self, tenant_id: str, export_id: str) -> int: ...

    def history(self, tenant_id: str, export_id: str) -> AsyncIterator[tuple[int, ev.Event]]: ...

    async def load(self, tenant_id: str, export_id: str, *, at_leader: bool = False) -> Loaded:
        """Fold one export's history; ``at_leader``: as the stream's leader holds it (a look that
        decides a deletion), not as whichever replica answers direct gets."""
        ...


class Clock(Protocol):
    """Now, in UTC: the only time a step's decisions read."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class FixedClock:
    """A clock that stands still, for pure-logic tests."""

    at: datetime

    def now(self) -> datetime:
        return self.at


SYSTEM_CLOCK: Clock = SystemClock()
