"""Text from outside, made safe to print on a terminal: archive member names (``verify``, ``import``)
and what an event's publisher wrote (a username, a reason) in the operator's commands; and the rule
that the person's own names (a token's ``sub`` and ``username``, an ExportRequested's ``user_id`` and
``username``) hold none of those characters at all (:func:`has_unprintable`)."""

from __future__ import annotations

import re

# Control characters (an escape sequence repaints or retitles a terminal, a line break forges a line),
# bidi controls (they reorder what follows: U+061C, U+200E/F, U+202A–E, U+2066–9, Unicode's whole set)
# and lone surrogates (half a UTF-16 pair, from a JSON
# "\ud800" escape: no character, no UTF-8; printing one raised UnicodeEncodeError, and a token's
# username holding one made ExportRequested unencodable, a 500): shown as their escapes, never as is.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with every control and bidi character as its escape (``\\x1b``, ``\\u202e``).

    A backslash is left as is, so escaping twice gives what escaping once gave."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def has_unprintable(text: str) -> bool:
    """Whether ``text`` holds a character :func:`printable` would escape (a control or bidi character)."""
    return _UNPRINTABLE.search(text) is not None
