"""Text from outside, made safe to print on a terminal: archive member names (``verify``, ``import``)
and what an event's publisher wrote (a username, a reason) in the operator's commands; and the rule
that the person's own names (a token's ``sub`` and ``username``, an ExportRequested's ``user_id`` and
``username``) hold none of those characters at all (:func:`has_unprintable`), that a token's ``sub``
holds no invisible format character either and is not only whitespace (:func:`name_problem`), and that
a token's ``username`` is taken as it shows, its invisible format characters left out
(:func:`shown_name`, :func:`username_problem`)."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

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


# Format characters (Unicode category Cf) a name may hold: the zero-width non-joiner and joiner, which
# some scripts' spelling (Persian, Indic) and emoji sequences need.
_JOINERS = frozenset("\u200c\u200d")
# Tag characters (U+E0020–U+E007E, Cf) spell a subdivision flag after U+1F3F4 WAVING BLACK FLAG, ended
# by U+E007F CANCEL TAG (🏴 g b s c t CANCEL: Scotland's flag): a subdivision code, two lower-case letters
# and one to three lower-case letters or digits (Unicode TS #51); anywhere else, and any other tag run
# after the flag (a tag space, capitals, punctuation: any ASCII text, invisibly), they are invisible text.
_TAG_FLAG = re.compile("\U0001F3F4[\U000E0061-\U000E007A]{2}[\U000E0030-\U000E0039\U000E0061-\U000E007A]{1,3}"
                       "\U000E007F")


# Unicode's default-ignorable code points (Default_Ignorable_Code_Point, DerivedCoreProperties.txt):
# what a renderer that does not support them shows as nothing. Most are format characters (Cf), caught
# as such; the others are letters and marks that show as nothing or as a blank — U+034F COMBINING
# GRAPHEME JOINER, the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, the Khmer inherent vowels
# U+17B4/5 — and the variation selectors, which pick a glyph for the character before them.
_IGNORABLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
                        "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
                        "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")
# Default-ignorable characters a name may hold, beside the joiners: the variation selectors (an emoji's
# presentation, U+FE0F in "❤️"; a CJK ideograph's variant, U+E0100…, in a Japanese name) and Mongolian's
# free variation selectors, which its spelling needs. Like the joiners, never a name on their own.
_SELECTORS = re.compile("[\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def _hidden(c: str) -> bool:
    """``c`` is a format character (Cf) that no script or emoji a name is written in needs. The other
    default-ignorable characters — letters and marks (a Hangul filler, U+3164, in Korean nicknames;
    U+034F in Hebrew text) — are taken within a name (never as the whole of one: :func:`blank`):
    refused, they locked a person whose identity provider gives such a name out of every export
    (review rev2), where a name that shows as nothing is the only harm (the email's "Hi ,")."""
    if c in _JOINERS or _SELECTORS.match(c):
        return False
    return unicodedata.category(c) == "Cf"


def invisible(text: str) -> str | None:
    """The first invisible format character in ``text``, or None: Unicode category Cf (U+200B ZERO
    WIDTH SPACE, U+2060 WORD JOINER, U+FEFF, a soft hyphen, a bidi control, a tag character…) other
    than the joiners, the variation selectors (:data:`_SELECTORS`) and the tag characters of a
    subdivision flag (:func:`_hidden`)."""
    if text.isascii():  # no default-ignorable character is ASCII: the common case costs one scan
        return None
    text = _TAG_FLAG.sub("\U0001F3F4", text)
    return next((c for c in text if _hidden(c)), None)


def blank(text: str) -> bool:
    """``text`` shows no character: only whitespace and default-ignorable ones (:data:`_IGNORABLE`: the
    joiners, the variation selectors, a Hangul filler, which a name may hold among others: a name of
    U+200D or U+3164 alone is an email's "Hi ,")."""
    return not (text if text.isascii() else _IGNORABLE.sub("", text)).strip()


def name_problem(value: str) -> str | None:
    """Why ``value`` is not text naming a person by identity (a token's ``sub``: owner checks compare
    it exactly), in words after the name, or None: not empty or only whitespace, no control or bidi
    character (:func:`has_unprintable`), no invisible format character (:func:`invisible`: taken, or
    left out, ``u1\u200b`` would be another key than ``u1`` that shows as it, or the same key as
    another person's). A ``username``, a name for display only, is held to :func:`username_problem`."""
    if not value.strip():
        return "is empty"
    if has_unprintable(value):
        return "holds a control or bidi character"
    if (c := invisible(value)) is not None:
        return f"holds an invisible format character (U+{ord(c):04X})"
    if blank(value):  # only characters a name may hold among others, none it may be made of (joiners alone)
        return "is empty"
    return None


def shown_name(value: str) -> str:
    """``value`` as a reader sees it: without its invisible format characters (:func:`invisible`'s that
    show as nothing: U+200B, U+2060, U+FEFF, a soft hyphen, tag characters that spell no subdivision
    flag…; a format character that shows, U+06DD ARABIC END OF AYAH, is kept), which the
    email, the manifest, the archive's README and the operator's output then show as they are. The
    bidi controls, format characters too, are kept: they reorder what follows, so they are never
    taken unseen (:func:`has_unprintable` refuses them; :func:`printable` escapes them). Applied
    twice, it gives what applying it once gave."""
    if value.isascii():  # no default-ignorable character is ASCII
        return value
    kept: list[str] = []
    start = 0
    for flag in _TAG_FLAG.finditer(value):  # a subdivision flag's tag characters are its own: kept whole
        kept.append(_drop_hidden(value[start:flag.start()]))
        kept.append(flag.group())
        start = flag.end()
    kept.append(_drop_hidden(value[start:]))
    return "".join(kept)


def left_out(value: str) -> str | None:
    """What :func:`shown_name` leaves out of ``value``, in words after the name (``--username
    'ann\\u200b' is taken as 'ann', …``), or None when it leaves out nothing: what the ``token`` and
    ``seed`` commands say of a ``--username`` they take as the gateway would."""
    shown = shown_name(value)
    if shown == value:
        return None
    gone = sorted(ord(c) for c in Counter(value) - Counter(shown))  # a flag's own tag characters stay
    codes = ", ".join(f"U+{code:04X}" for code in gone)
    return (f"is taken as {shown!r}, without its invisible format character{'s' if len(gone) > 1 else ''} "
            f"({codes}), as the gateway takes a token's username")


def _drop_hidden(text: str) -> str:
    """``text`` without the characters :func:`_hidden` names that show as nothing (default-ignorable:
    :data:`_IGNORABLE`), bidi controls kept (:func:`shown_name`). The format characters that show — the
    prepended marks U+0600–U+0605, U+06DD ARABIC END OF AYAH, U+070F, U+08E2, U+110BD…, the Egyptian
    hieroglyph format controls (their signs' layout), U+FFF9–U+FFFB — are what a reader sees: kept; so is
    U+180E MONGOLIAN VOWEL SEPARATOR (:data:`_SHAPING`)."""
    return "".join(c for c in text if not (_hidden(c) and _IGNORABLE.match(c)) or c in _SHAPING or has_unprintable(c))


# A default-ignorable format character a username keeps (:func:`shown_name`) though :func:`_hidden` names
# it: U+180E MONGOLIAN VOWEL SEPARATOR gives the vowel after it its separated final form ("qar\u180ea",
# black), as Mongolian spelling needs — left out, the name shows another letter form. (A sub holding one
# is still refused, as an invisible character: :func:`name_problem`.)
_SHAPING = frozenset("\u180e")


def username_problem(value: object) -> str | None:
    """Why ``value`` is not a username Grove Export takes, in words after the name (``username is
    empty``), or None: text, no control or bidi character (:func:`has_unprintable`), and once its
    invisible format characters are left out (:func:`shown_name`, what is then used) at most
    :data:`USERNAME_MAX_CHARS` characters and not only whitespace and default-ignorable characters
    (:func:`blank`). The one rule of the gateway's token and the ``token`` and ``seed`` commands'
    ``--username``. An invisible character is left out, not refused: a username is a name to show,
    not an identity (``sub`` is), so ``ann\u200b`` showing as "ann" gives nobody what choosing "ann"
    would not, and refusing it locked out a person whose identity provider's name held a stray U+200B
    or U+FEFF. (ExportRequested holds only to :func:`has_unprintable`: the requests already in the log
    must still be read; an archive's, :func:`archived_username_problem`.)"""
    if not isinstance(value, str):
        return "is not text"
    if not value.strip():
        return "is empty"
    shown = shown_name(value)
    if len(shown) > USERNAME_MAX_CHARS:
        return f"is {len(shown):,} characters long, more than the {USERNAME_MAX_CHARS} a username may have"
    if has_unprintable(value):
        return "holds a control or bidi character"
    if blank(shown):  # nothing a reader would see: only whitespace, joiners, a Hangul filler… once U+200B is out
        return "is empty"
    return None


# What a name given on a command line must be, in the words of every refusal of one there: a user (a
# token's sub, held exactly: :func:`name_problem`) and a username (shown: :func:`username_problem`).
NAME_RULE = "must be non-empty text without control or bidi characters, nor invisible format characters"
USERNAME_RULE = f"must be non-empty text without control or bidi characters, at most {USERNAME_MAX_CHARS} characters"
SHOWN_NAME_CHARS = 64  # a refused name is shown cut to this many characters (one can be tens of thousands)


def name_refusal(label: str, value: str, problem: str, rule: str = NAME_RULE) -> str:
    """The one line a name typed on a command line gets when it is refused (``token --user``, ``token``'s
    and ``seed``'s ``--username``): which one, as given (cut, escaped), its ``rule`` (:data:`NAME_RULE`,
    :data:`USERNAME_RULE`), and the problem
    in :func:`name_problem`'s and :func:`username_problem`'s words — the gateway's 401 for a token that
    carried it says the same problem (``The token's username claim is empty.``)."""
    shown = repr(value[:SHOWN_NAME_CHARS]) + ("…" if len(value) > SHOWN_NAME_CHARS else "")
    return f"{label} {shown} {rule}: it {problem}"


def archived_username_problem(value: object) -> str | None:
    """Why an archive's manifest username is not one import takes, or None: text, not empty, at most
    :data:`USERNAME_MAX_CHARS` characters, no control or bidi character — what a request is held to
    (ExportRequested), not :func:`username_problem`'s whole rule, which is for new tokens and has
    changed (names of joiners alone refused; invisible characters refused, then left out): an archive
    exported under an earlier release's rule must still import, as it was written (``ann\u200b``
    included), or a person is locked out of their own data."""
    if not isinstance(value, str):
        return "is not text"
    if not value:
        return "is empty"
    if len(value) > USERNAME_MAX_CHARS:
        return f"is {len(value):,} characters long, more than the {USERNAME_MAX_CHARS} a username may have"
    if has_unprintable(value):
        return "holds a control or bidi character"
    return None
