"""An :class:`Email` as an RFC 5322 message (multipart/alternative: text, then HTML).

The Message-ID is derived from the idempotency key, so a redelivered event yields the same id and
mail systems (and people) can recognise the repeat.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from shared.core.mailaddr import is_single_address

from .errors import PermanentMailError
from .message import Email

_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")


class _ReusedHeaderClasses(HeaderRegistry):
    """The standard registry, but each header name's class is made once, not on every header set.

    ``HeaderRegistry.__getitem__`` builds a new class with ``type()`` each time a header is set or
    parsed — a tenth of the notifier's CPU per email in a burst (py-spy, GIL samples). The classes
    it builds are stateless, so sharing one per name changes nothing in the message; a unit test
    holds the bytes equal to the default policy's.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


POLICY = policy.default.clone(header_factory=_ReusedHeaderClasses())


def envelope_address(header_value: str) -> str:
    """``Grove Export <exports@grove.local>`` → ``exports@grove.local``."""
    return parseaddr(header_value)[1] or header_value


def require_one_recipient(email: Email) -> None:
    """Refuse to send unless ``To`` is one bare address (no list, display name or header break):
    the gateway checks the token's claim, and every adapter checks again before sending."""
    if not is_single_address(email.to):
        raise PermanentMailError("the recipient is not exactly one email address")


def message_id(key: str, sender: str) -> str:
    """``<exp_1.ready@grove.local>``: the key made dot-atom safe, at the sender's domain."""
    _, at, domain = envelope_address(sender).rpartition("@")
    if not at or not _DOMAIN.match(domain):
        domain = "grove-export"
    left = _NOT_ATEXT.sub(".", key).strip(".") or "message"
    left = re.sub(r"\.{2,}", ".", left)
    return f"<{left}@{domain}>"


def to_mime(email: Email, *, sender: str, date: datetime | None = None) -> EmailMessage:
    """Build the message. Raises :class:`PermanentMailError` for a header that cannot be encoded."""
    require_one_recipient(email)
    msg = EmailMessage(policy=POLICY)
    try:
        msg["From"] = sender
        msg["To"] = email.to
        msg["Subject"] = email.subject
        msg["Date"] = format_datetime(date or datetime.now(UTC))
        msg["Message-ID"] = message_id(email.idempotency_key, sender)
        # RFC 3834: tells autoresponders (vacation replies) not to answer.
        msg["Auto-Submitted"] = "auto-generated"
    except (ValueError, TypeError) as exc:
        raise PermanentMailError(f"cannot build the message headers: {exc}") from exc
    msg.set_content(email.text)
    msg.add_alternative(email.html, subtype="html")
    return msg
