"""Text from outside, made safe to print on a terminal: archive member names (``verify``, ``import``)
and what an event's publisher wrote (a username, a reason) in the operator's commands."""

from __future__ import annotations

import re

# Control characters (an escape sequence repaints or retitles a terminal, a line break forges a line)
# and bidi controls (they reorder what follows): shown as their escapes, never as is.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control and bidi character as its escape (``\\x1b``, ``\\u202e``).

    A backslash is left as is, so escaping twice gives what escaping once gave."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), text)
