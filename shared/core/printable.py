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


def json_printable(document: str) -> str:
    """A JSON document (``json.dumps`` with ``ensure_ascii=False``, which escapes only the characters
    below U+0020) with every other control and bidi character, and lone surrogate, as its ``\\uXXXX``
    escape: the same JSON value, and a line that holds no U+2028, U+0085 or U+202E of its own. A lone
    surrogate is written as the text :func:`printable` gives it (an escaped backslash): as an escape, a
    high one followed by a low one would read back as the one character the pair makes."""
    return _UNPRINTABLE.sub(lambda m: f"\\\\u{ord(m.group()):04x}" if "\ud800" <= m.group() <= "\udfff"
                            else f"\\u{ord(m.group()):04x}", document)


def has_unprintable(text: str) -> bool:
    """Whether ``text`` holds a character :func:`printable` would escape (a control or bidi character)."""
    return _UNPRINTABLE.search(text) is not None


# The longest username Grove Export takes, in characters: the gateway refuses a token whose username is
# longer (and `token --username` will not mint one), an ExportRequested carrying one is refused, and so
# is an archive whose manifest.json names one (`grove-export import`, where it becomes the tenant row's
# username and display name: a crafted archive gave it tens of MiB). Generous for a person's name, and
# well inside a token the gateway can read (8,000 characters: a username of non-ASCII text is about 8
# token characters a character).
USERNAME_MAX_CHARS = 256


def username_problem(value: object) -> str | None:
    """Why ``value`` is not a username Grove Export takes, in words after the name (``username is
    empty``), or None: text, not empty, at most :data:`USERNAME_MAX_CHARS` characters, no control or
    bidi character (:func:`has_unprintable`). The one rule of the gateway's token, ExportRequested,
    the ``token`` and ``seed`` commands' ``--username`` and an imported manifest's username."""
    if not isinstance(value, str):
        return "is not text"
    if not value.strip():
        return "is empty"
    if len(value) > USERNAME_MAX_CHARS:
        return f"is {len(value):,} characters long, more than the {USERNAME_MAX_CHARS} a username may have"
    if has_unprintable(value):
        return "holds a control or bidi character"
    return None
