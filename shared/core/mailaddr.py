"""One rule for the requester's email address: exactly one bare address, ASCII or internationalised.

The address comes from the token's ``email`` claim and ends up in a ``To:`` header, an SMTP envelope
and the mail service's ``to`` field, so anything that could name a second recipient or inject a header
is refused: a display name (``Name <a@b>``), a list (``a@b, c@d``), CR or LF, whitespace, quotes,
comments, and an RFC 2047 encoded word (``=?utf-8?b?…?=``: atext, but Python's ``email`` decodes it,
so ``=?utf-8?b?YUBldmlsLmNvbSwgYkBldmlsLmNvbQ==?=@x.co`` became ``To: a@evil.com, b@evil.com@x.co``;
RFC 2047 forbids one in an address). Checked by the gateway when it reads the token, by the
ExportRequested event, and again by every mail adapter.

An address that is not ASCII (RFC 6531) is taken: ``josé@example.com``, ``anna@bücher.de``,
``用户@例子.广告``. Refused, its person could not export at all (every route was a 401), where the email
is only a courtesy. Past ASCII the local part may hold what RFC 6531 adds to atext (UTF8-non-ascii)
except what could hide or break a line or a header: Unicode's controls (Cc: NEL U+0085 too), format
characters (Cf: U+200B, the bidi controls U+202E…; not the joiners U+200C and U+200D), separators (Zs: U+00A0…; Zl, Zp: U+2028, U+2029),
private-use, unassigned and surrogate code points, and a compatibility form of an ASCII special
(``＠``, ``，``, ``＜``: NFKC makes them ``@ , <``), nor a character whose decomposition holds one
(``≮`` and ``≯``: NFD makes them ``<`` and ``>`` with U+0338). Each label of the domain is an ASCII
letter-digit-hyphen label, or a U-label IDNA 2008 (the ``idna`` package: not Python's own codec, which
is IDNA 2003) encodes into an A-label (``bücher`` → ``xn--bcher-kva``) of at most 63 octets. Lengths
are counted in UTF-8 octets, as RFC 6531 does: at most 64 for the local part and 254 for the whole
address, in its UTF-8 form and in its form with A-labels (:func:`with_ascii_domain`), which is what an
SMTP server without SMTPUTF8 is sent.
"""

from __future__ import annotations

import re
import unicodedata

import idna

MAX_LENGTH = 254  # octets of the address (UTF-8)
MAX_LOCAL = 64  # octets of the local part (UTF-8)
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"  # as a regex class's content
_LOCAL = re.compile(rf"[{_ATEXT}\u0080-\U0010ffff]+(?:\.[{_ATEXT}\u0080-\U0010ffff]+)*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_NOT_ATEXT = re.compile(rf"[^{_ATEXT}]")
_JOINERS = "\u200c\u200d"  # U+200C, U+200D (one character is `in` it; str.strip takes it whole)


def _allowed(c: str) -> bool:
    """``c``, a character past ASCII, may be in an address: not a control, format, separator,
    private-use, unassigned or surrogate code point (categories C* and Z*), and no compatibility form
    of an ASCII character that is not atext (U+FF20 ``＠`` is ``@`` to whatever normalises it). The
    joiners (U+200C, U+200D) are format characters that words need — Persian writes U+200C inside
    words, as the ``sub`` and ``username`` rules know — so they are taken (a domain's by IDNA 2008's
    own rule for them, CONTEXTJ)."""
    if c in _JOINERS:
        return True
    if unicodedata.category(c)[0] in "CZ":
        return False
    # NFKD, not NFKC: NFKC composes ``<`` U+0338 back into ``≮``, which NFD (and NFKD) make ``<`` again
    return not _NOT_ATEXT.search("".join(ch for ch in unicodedata.normalize("NFKD", c) if ch.isascii()))


def _a_label(label: str) -> str | None:
    """``label`` as DNS carries it: an ASCII letter-digit-hyphen label as it is, a U-label as its
    A-label (capitals lowered first, as in an ASCII label, where case does not count); None for
    anything else (a label IDNA 2008 refuses, or one whose A-label is over 63 octets)."""
    if label.isascii():
        return label if _LABEL.fullmatch(label) else None
    try:
        return idna.alabel(label.lower()).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None


def _ascii_domain(domain: str) -> str | None:
    labels = [_a_label(label) for label in domain.split(".")]
    if len(labels) < 2 or None in labels:
        return None
    return ".".join(label for label in labels if label is not None)


def is_single_address(value: object) -> bool:
    """``value`` is one ``local@domain.tld`` address and nothing else (ASCII or RFC 6531)."""
    if not isinstance(value, str) or not value or "=?" in value:
        return False
    if not value.isascii() and not all(c.isascii() or _allowed(c) for c in value):
        return False  # before any encode: a lone surrogate has no UTF-8
    local, at, domain = value.rpartition("@")
    if not at or len(local.encode("utf-8")) > MAX_LOCAL or _LOCAL.fullmatch(local) is None:
        return False
    if not local.isascii() and any(not part.strip(_JOINERS) for part in local.split(".")):
        return False  # a part of nothing but joiners: an address that shows no name there (\u200c@x.co)
    ascii_domain = _ascii_domain(domain)
    return (ascii_domain is not None and len(value.encode("utf-8")) <= MAX_LENGTH
            and len(local.encode("utf-8")) + 1 + len(ascii_domain) <= MAX_LENGTH)


def with_ascii_domain(address: str) -> str:
    """``anna@bücher.de`` → ``anna@xn--bcher-kva.de``: the domain's labels as A-labels, the local
    part as it is. Only for an address :func:`is_single_address` takes (raises ``ValueError`` else)."""
    local, _, domain = address.rpartition("@")
    ascii_domain = _ascii_domain(domain) if is_single_address(address) else None
    if ascii_domain is None:
        raise ValueError("not exactly one email address")
    return f"{local}@{ascii_domain}"


def with_unicode_domain(address: str) -> str:
    """``anna@xn--bcher-kva.de`` → ``anna@bücher.de``: each A-label of the domain as its U-label (one
    that does not decode stays as it is), the local part as it is. Only for an address
    :func:`is_single_address` takes (raises ``ValueError`` else)."""
    if not is_single_address(address):
        raise ValueError("not exactly one email address")
    local, _, domain = address.rpartition("@")
    return f"{local}@{'.'.join(_u_label(label) for label in domain.split('.'))}"


def _u_label(label: str) -> str:
    if not label.lower().startswith("xn--"):
        return label
    try:
        return idna.ulabel(label)
    except (idna.IDNAError, UnicodeError):
        return label


def needs_smtputf8(address: str) -> bool:
    """Whether ``address`` can only be sent with SMTPUTF8 (RFC 6531): its local part is not ASCII. A
    domain that is not ASCII alone is sent as its A-labels (:func:`with_ascii_domain`), which every
    SMTP server takes."""
    return not address.rpartition("@")[0].isascii()
