"""Retrying a send: transient errors back off exponentially, permanent ones end it at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .errors import MailGaveUp, TransientMailError
from .message import Email
from .port import Mailer

Sleep = Callable[[float], Awaitable[object]]


def backoff_delay(retry: int, base_delay: float, max_delay: float, hint: float | None = None) -> float:
    """Delay before retry number ``retry`` (0-based): ``base_delay * 2**retry``, at least the
    server's ``Retry-After`` hint, never more than ``max_delay``."""
    delay = base_delay * 2.0 ** min(retry, 62)  # bounded exponent: no float overflow
    if hint is not None:
        delay = max(delay, hint)
    return max(0.0, min(delay, max_delay))


async def send_with_retries(
    mailer: Mailer,
    email: Email,
    attempts: int,
    base_delay: float,
    sleep: Sleep = asyncio.sleep,
    *,
    max_delay: float = 30.0,
) -> str:
    """Send ``email``, trying up to ``attempts`` times; returns the channel name.

    Raises :class:`PermanentMailError` from the first permanent failure (no retry), or
    :class:`MailGaveUp` (``reason`` names the attempts and the last error) when every attempt
    failed transiently. Both are :class:`MailError`, whose ``reason`` fits ``NotificationFailed``.
    """
    attempts = max(1, attempts)
    for attempt in range(attempts):
        try:
            return await mailer.send(email)
        except TransientMailError as exc:
            if attempt + 1 >= attempts:
                raise MailGaveUp(
                    f"gave up after {attempts} attempt{'s' if attempts > 1 else ''}: {exc.reason}",
                    attempts=attempts,
                    last_error=exc,
                ) from exc
            await sleep(backoff_delay(attempt, base_delay, max_delay, exc.retry_after))
    raise AssertionError("unreachable")
