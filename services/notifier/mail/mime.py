"""An :class:`Email` as an RFC 5322 message (multipart/alternative: text, then HTML).

The Message-ID is derived from the idempotency key, so a redelivered event yields the same id and
mail systems (and people) can recognise the repeat.

:func:`mime_bytes` writes the message itself rather than through ``email.message.EmailMessage``:
building and flattening one with the standard library took a third of the notifier's CPU per email
in a burst (its header objects are parsed on set and refolded on write, its bodies encoded by pure
Python). What varies per email is either checked to be safe as it is (``To``: one bare address) or
made safe by construction (``Date``, ``Message-ID``); ``From`` and ``Subject`` are still parsed and
folded by the standard library's policy, once per distinct value. Bodies are 7-bit as they are, or
quoted-printable (``binascii``), so the message is 7-bit clean for any transport. A unit test holds
what a recipient reads — every header and both bodies — equal to the ``EmailMessage`` build's.

An address that is not ASCII (RFC 6531): one whose domain alone is not ASCII is written with its
domain as A-labels (``anna@xn--bcher-kva.de``), which every server and mail program takes; one whose
local part is not ASCII can only go to a server that offers SMTPUTF8, in a message whose headers are
UTF-8 (RFC 6532: ``utf8=True``, the ``To`` as it is and ``From`` and ``Subject`` by the standard
library's SMTPUTF8 policy); the bodies stay 7-bit either way.
"""

from __future__ import annotations

import binascii
import random
import re
from datetime import UTC, datetime
from email import policy
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from shared.core.mailaddr import is_single_address, with_ascii_domain

from .errors import PermanentMailError
from .message import Email

_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_SEVEN_BIT = re.compile(rb"[\t\r\n\x20-\x7e]*")  # printable ASCII, tab and line breaks: sent as it is
_MAX_LINE = 78  # octets per body line sent as it is (RFC 5322's "should"); longer lines: quoted-printable
CRLF = b"\r\n"


def envelope_address(header_value: str) -> str:
    """``Grove Export <exports@grove.local>`` → ``exports@grove.local``."""
    return parseaddr(header_value)[1] or header_value


def require_one_recipient(email: Email) -> None:
    """Refuse to send unless ``To`` is one bare address (no list, display name or header break):
    the gateway checks the token's claim, and every adapter checks again before sending."""
    if not is_single_address(email.to):
        raise PermanentMailError("the recipient is not exactly one email address")


@lru_cache(maxsize=64)  # the sender: one per mailer
def _id_domain(sender: str) -> str:
    _, at, domain = envelope_address(sender).rpartition("@")
    return domain if at and _DOMAIN.match(domain) else "grove-export"


def message_id(key: str, sender: str) -> str:
    """``<exp_1.ready@grove.local>``: the key made dot-atom safe, at the sender's domain."""
    left = _NOT_ATEXT.sub(".", key).strip(".") or "message"
    left = re.sub(r"\.{2,}", ".", left)
    return f"<{left}@{_id_domain(sender)}>"


@lru_cache(maxsize=64)  # From and Subject: one sender, two subjects
def _header(name: str, value: str, utf8: bool = False) -> bytes:
    """``Name: value`` CRLF as the standard library's SMTP policy parses and folds it (an encoded
    word for what is not ASCII; with ``utf8``, its SMTPUTF8 policy: UTF-8 as it is). Raises
    :class:`PermanentMailError` for a value that cannot be a header (a line break in it)."""
    rules = policy.SMTPUTF8 if utf8 else policy.SMTP
    try:
        return rules.fold_binary(*rules.header_store_parse(name, value))
    except (ValueError, TypeError) as exc:
        raise PermanentMailError(f"cannot build the message headers: {exc}") from exc


def _body(text: str) -> tuple[bytes, bytes]:
    """(Content-Transfer-Encoding, body with CRLF line breaks, ending in one). Line breaks are
    normalised as ``EmailMessage.set_content`` does (``\\r``, ``\\n`` and ``\\r\\n`` are each one)."""
    lines = text.encode("utf-8").splitlines()
    data = CRLF.join(lines) + CRLF
    if max(map(len, lines), default=0) <= _MAX_LINE and _SEVEN_BIT.fullmatch(data):
        return b"7bit", data
    return b"quoted-printable", binascii.b2a_qp(data, istext=True)  # line breaks kept; every line ≤ 76


def _boundary(*bodies: bytes) -> bytes:
    """The standard library's form, random, and in no body (a quoted-printable body cannot hold
    ``==``; a 7-bit one is checked)."""
    while True:
        boundary = b"===============%019d==" % random.randrange(10**19)
        if not any(boundary in body for body in bodies):
            return boundary


def recipient_header(email: Email, *, utf8: bool = False) -> bytes:
    """What ``To:`` holds: the address in ASCII, its domain as A-labels; with ``utf8`` (SMTPUTF8,
    RFC 6532) the address as it is, in UTF-8. Raises :class:`PermanentMailError` for a recipient that
    is not one address, or one whose local part is not ASCII without ``utf8``."""
    require_one_recipient(email)  # so "To: <it>" is one line that names one address
    if utf8:
        return email.to.encode("utf-8")
    to = with_ascii_domain(email.to)
    if not to.isascii():
        raise PermanentMailError("the recipient's address is not ASCII before its @: it can only be sent "
                                 "with SMTPUTF8")
    return to.encode("ascii")


def mime_bytes(email: Email, *, sender: str, date: datetime | None = None, utf8: bool = False) -> bytes:
    """The message, CRLF line breaks; 7-bit, or with ``utf8`` (for SMTPUTF8) its headers in UTF-8 and
    its bodies 7-bit. Raises :class:`PermanentMailError` for a recipient that is not one address (or
    needs ``utf8``: :func:`recipient_header`) or a header that cannot be encoded."""
    head = [
        _header("From", sender, utf8),
        b"To: %s\r\n" % recipient_header(email, utf8=utf8),
        _header("Subject", email.subject, utf8),
        b"Date: %s\r\n" % format_datetime(date or datetime.now(UTC)).encode("ascii"),
        b"Message-ID: %s\r\n" % message_id(email.idempotency_key, sender).encode("ascii"),
        b"Auto-Submitted: auto-generated\r\n",  # RFC 3834: tells autoresponders (vacation replies) not to answer
        b"MIME-Version: 1.0\r\n",
    ]
    text_cte, text = _body(email.text)
    html_cte, html = _body(email.html)
    boundary = _boundary(text, html)
    return b"".join([
        *head,
        b'Content-Type: multipart/alternative;\r\n boundary="%s"\r\n\r\n' % boundary,
        b'--%s\r\nContent-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: %s\r\n\r\n'
        % (boundary, text_cte), text,
        b'\r\n--%s\r\nContent-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: %s\r\n\r\n'
        % (boundary, html_cte), html,
        b"\r\n--%s--\r\n" % boundary,
    ])
