"""The mail port: what the notifier needs from any way of sending email."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .message import Email


@runtime_checkable
class Mailer(Protocol):
    """Sends one :class:`Email`; returns the channel name (``"smtp"``, ``"http"``, ``"outbox"``).

    Raises :class:`TransientMailError` when a retry may help and :class:`PermanentMailError` when it
    cannot. Sending the same email twice (same idempotency key) must be safe.
    """

    async def send(self, email: Email) -> str: ...

    async def close(self) -> None: ...
