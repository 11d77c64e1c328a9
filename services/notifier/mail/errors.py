"""What can go wrong on the mail path, as the caller needs to see it.

Errors::

    MailError                 every error carries ``reason``: one line, fit for NotificationFailed
    ├── TransientMailError    worth retrying: connection refused/reset, timeout, SMTP 4xx, HTTP 5xx/429
    ├── PermanentMailError    retrying cannot help: SMTP 5xx, bad credentials, HTTP 4xx, bad address
    └── MailGaveUp            send_with_retries ran out of attempts on transient errors

Backends translate their library's exceptions into these at the edge (``raise ... from exc``), so
nothing above them imports aiosmtplib or aiohttp.
"""

from __future__ import annotations

from shared.core.printable import printable

MAX_REASON = 1000  # characters: an SMTP server's refusal may be 32 KiB


def one_line(reason: str) -> str:
    """``reason`` as one line an event can carry: runs of whitespace (a multi-line SMTP reply is
    joined with line breaks) as one space, any other control or bidi character and any lone
    surrogate (a server's byte that is not UTF-8, kept by ``surrogateescape``) as its escape, and at
    most :data:`MAX_REASON` characters. A surrogate made NotificationFailed unencodable: the step
    raised and recorded nothing."""
    text = printable(" ".join(reason.split()))
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


class MailError(Exception):
    """Base of every mail error. ``reason`` is a readable one-line explanation (:func:`one_line`),
    whatever a mail server put in it."""

    def __init__(self, reason: str) -> None:
        reason = one_line(reason)
        super().__init__(reason)
        self.reason = reason


class TransientMailError(MailError):
    """The send may succeed if tried again later.

    ``retry_after`` is the server's hint in seconds (HTTP ``Retry-After``), when it gave one.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentMailError(MailError):
    """The send will fail the same way every time; do not retry."""


class MailGaveUp(MailError):
    """Every attempt failed with a transient error; ``last_error`` is the final one."""

    def __init__(self, reason: str, *, attempts: int, last_error: MailError) -> None:
        super().__init__(reason)
        self.attempts = attempts
        self.last_error = last_error
