"""Markdown files with YAML frontmatter: `---\\n<yaml>---\\n<body>`.

The YAML is emitted by PyYAML (never by string templates), and every accepted value round-trips
exactly through `yaml.safe_load`. PyYAML already quotes strings that would read back as something
else ("yes", "null", "~", "123", "1e3", "---", ": ", leading/trailing spaces). What it gets wrong is
line breaks: in plain or single-quoted style it folds `\\n`, `\\r`, U+0085 and trailing spaces
around breaks, and it wraps long lines. So any string containing a line-break character is forced to
double-quoted style, where every such character is an escape, and lines are never wrapped. As a
consequence no YAML line can be exactly `---`, so the first `\\n---\\n` closes the frontmatter and
bodies may contain `---` freely.

Accepted values: str, int, bool, None, date/datetime (rendered as ISO-8601 strings, UTC with `Z`),
and lists/tuples and str-keyed dicts of those. Strings must be valid Unicode (no lone surrogates),
else ValueError; other types (float, bytes, sets...) raise TypeError rather than guess a format.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import yaml

from shared.archive.layout import FRONT_MATTER_NODES, TAGS_LIMIT

OPEN = "---\n"
CLOSE = "\n---\n"
_LINE_BREAKS = frozenset("\n\r\x85\u2028\u2029")
# Scalars that YAML 1.2 (and 1.1 readers such as go-yaml v2) resolve to non-strings while PyYAML's
# 1.1 resolver does not (e.g. `1e3`, `0o17`, `y`): quoted so other frontmatter readers agree.
_OTHER_READERS_NON_STR = re.compile(
    r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|[yYnN]|[Oo]n|ON|[Oo]ff|OFF|[Yy]es|YES|[Nn]o|NO"
    r"|[Tt]rue|TRUE|[Ff]alse|FALSE|[Nn]ull|NULL|~|"
)
# go-yaml (v2 and v3: Hugo's front matter reader) takes a plain scalar that starts with a digit or a
# sign for a number when, its underscores removed, Go's strconv reads it as one: a base prefix in
# either case, signed or not (`0X1F`, `0O17`, `-0o17`, `0B11`, `0o1_7`), or a float (`1e1_0`). Hugo
# showed the title `0X1F` as "31" and made the tag an integer.
_GO_YAML_NUMBER = re.compile(
    r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)")


def _other_readers_non_str(value: str) -> bool:
    """Whether a YAML reader other than PyYAML may read the plain scalar ``value`` as no string."""
    return bool(_OTHER_READERS_NON_STR.fullmatch(value)) or (
        value[:1] in tuple("+-0123456789") and _GO_YAML_NUMBER.fullmatch(value.replace("_", "")) is not None)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if any(c in _LINE_BREAKS for c in value):
        style: str | None = '"'
    elif _other_readers_non_str(value):
        style = "'"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def iso_utc(moment: datetime | date) -> str:
    """`2024-05-01T12:00:00Z`; naive datetimes are taken as UTC; dates stay `2024-05-01`."""
    if not isinstance(moment, datetime):
        return moment.isoformat()
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat() + "Z"


def _plain(value: Any) -> Any:
    """The value with dates turned into strings, after checking every part is accepted."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("frontmatter strings must not contain lone surrogates") from None
        return value
    if isinstance(value, (datetime, date)):
        return iso_utc(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("frontmatter keys must be strings")
        return {_plain(key): _plain(item) for key, item in value.items()}
    raise TypeError(f"unsupported frontmatter value type: {type(value).__name__}")


def render_markdown(meta: dict[str, Any], body: str) -> str:
    """Frontmatter (keys in the given order) followed by the body, byte for byte.

    Uses PyYAML's pure-Python SafeDumper (as `yaml.safe_dump` does) on purpose, not the libyaml one,
    so the bytes do not depend on whether libyaml is installed.
    """
    if not isinstance(meta, dict) or not isinstance(body, str):
        raise TypeError("render_markdown(meta: dict, body: str)")
    # Common metadata is already plain (text, numbers, flags, lists of those): written directly,
    # without the checked copy :func:`_plain` makes. ASCII text holds no surrogate, and whatever the
    # direct writer does not take (a date, a tuple, a key that is not text) is copied and checked.
    document = _simple_document(meta)
    if document is None:
        plain = _plain(meta)
        document = _simple_document(plain)
        if document is None:
            document = yaml.dump(
                plain,
                Dumper=_Dumper,
                sort_keys=False,
                allow_unicode=True,
                default_flow_style=False,
                width=float("inf"),
            )
    return OPEN + document + OPEN + _plain(body)


# The common frontmatter — short ASCII words, slugs, URLs, ISO dates, numbers, flags, lists of
# those — written directly, byte for byte what the SafeDumper above writes for it (PyYAML's emitter
# is most of a small export's catalog CPU). Anything else goes through PyYAML.
_SIMPLE = re.compile(r"(?!\.\.\.)[A-Za-z0-9_./][A-Za-z0-9_./=+~,'!?()&-]*(?:[ :][A-Za-z0-9_./=+~,'!?()&-]+)*")
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"
# PyYAML's implicit resolvers of a plain scalar, as ``Resolver.resolve`` tries them: those of its
# first character, then the wildcard ones (none today). Looked up here directly: ``resolve`` is a
# general method (any node kind, path resolvers) and was a third of the direct writer's time.
_WILDCARD = tuple(_RESOLVER.yaml_implicit_resolvers.get(None, []))
_IMPLICIT = {first: tuple(resolvers) + _WILDCARD for first, resolvers in _RESOLVER.yaml_implicit_resolvers.items()
             if first is not None}
assert not _RESOLVER.yaml_path_resolvers  # else resolve() would also consult the node's path


def _resolves_to_str(value: str) -> bool:
    """``_RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG``."""
    for tag, regexp in _IMPLICIT.get(value[:1], _WILDCARD):
        if regexp.match(value):
            return tag == _STR_TAG
    return True


SIMPLE_KEY = 123  # PyYAML writes a shorter key as `key: value`: its length plus `!!str` under 128 (check_simple_key)
CACHED_LENGTH = 64  # keys, flags, dates, short words: the same few come back in every document


def _simple_text(value: str) -> str | None:
    if type(value) is str and len(value) <= CACHED_LENGTH:  # a subclass may format itself: not shared
        return _simple_text_cached(value)
    return _simple_text_of(value)


def _simple_text_of(value: str) -> str | None:
    if not _SIMPLE.fullmatch(value):
        return None
    if _resolves_to_str(value) and not _other_readers_non_str(value):
        return value  # plain
    if "'" in value:
        return None
    return f"'{value}'"  # reads back as something else: single-quoted


# bounded, pure, thread-safe; only short text, so no tenant's long text stays in memory after the export
_simple_text_cached = lru_cache(maxsize=4096)(_simple_text_of)


def _simple_scalar(value: Any) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _simple_text(value)
    return None


def _simple_document(meta: dict[str, Any]) -> str | None:
    if not meta:
        return None
    lines = []
    for key, value in meta.items():
        if not isinstance(key, str):  # render_markdown refuses it (TypeError), as _plain does
            return None
        k = _simple_text(key) if len(key) < SIMPLE_KEY else None
        if k is None:  # PyYAML writes a key of SIMPLE_KEY characters or more as an explicit `? key`
            return None
        if isinstance(value, list):
            if not value:
                lines.append(f"{k}: []")
                continue
            lines.append(f"{k}:")
            for item in value:
                v = _simple_scalar(item)
                if v is None:
                    return None
                lines.append(f"- {v}")
            continue
        v = _simple_scalar(value)
        if v is None:
            return None
        lines.append(f"{k}: {v}")
    return "\n".join(lines) + "\n"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases, and of no more values than an export writes. An alias is its
    anchor's value again, shared, not copied: nine lines of lists of ten aliases each are a list of
    10**9 items, which load in a moment and cost whatever walks them in full (verify's tags, as JSON
    text, took 166 s and 10 GB for a post of 700 bytes). :func:`render_markdown` never writes one
    (:func:`_plain` copies every value). And PyYAML reads some 20,000 values a second, holding each:
    past :data:`layout.FRONT_MATTER_NODES` (two lists of at most TAGS_LIMIT tags, and the keys) it
    stops (a post of 4 MiB of ``- é`` lines took verify 52 s and 700 MB)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"an alias (*{event.anchor}; an export never writes one)",
                                              event.start_mark)
        self.nodes += 1
        if self.nodes > FRONT_MATTER_NODES:
            raise yaml.composer.ComposerError(None, None, f"more than {FRONT_MATTER_NODES:,} values (an export writes "
                                              f"at most {TAGS_LIMIT:,} tags in each of tags and tags_original)",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def flatten_mapping(self, node: Any) -> None:
        """A merge key (``<<: {title: B}``) is refused, as an alias is: PyYAML gives a key written
        beside it precedence over the merged one, go-yaml (Hugo) the one read last, so ``title: A``
        then ``<<: {title: B}`` was A to verify and import and B on the Hugo site. An export writes
        ``<<`` as text only, quoted."""
        for key, _ in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(None, None, "a merge key (<<; an export never writes one)",
                                                        key.start_mark)
        super().flatten_mapping(node)


def parse_markdown(text: str) -> tuple[dict[str, Any], str]:
    """(meta, body) from `render_markdown` output; text without frontmatter gives ({}, text).
    Frontmatter that is not closed, not YAML (a syntax error, an unknown tag, nesting too deep for
    the parser, an alias: see :class:`_Loader`) or not a mapping is a one-line ValueError: the text
    may come from any archive."""
    if not text.startswith(OPEN):
        return {}, text
    end = text.find(CLOSE, len(OPEN) - 1)
    if end < 0:
        raise ValueError("frontmatter is not closed by a `---` line")
    document = text[len(OPEN):end + 1]
    simple = _simple_meta(document)
    if simple is not None:
        return simple, text[end + len(CLOSE):]
    try:
        meta = yaml.load(document, Loader=_Loader)  # a SafeLoader, without aliases
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"frontmatter is not valid YAML: {getattr(e, 'problem', None) or e}{where}") from None
    except RecursionError:
        raise ValueError("frontmatter is not valid YAML: nested too deep") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ValueError("frontmatter is not a mapping")
    return meta, text[end + len(CLOSE):]


_INT = re.compile(r"-?[1-9][0-9]*|0")


def _simple_value(token: str) -> Any:
    """A scalar as the direct writer (:func:`_simple_scalar`) writes it; whatever else comes out, the
    round trip in :func:`_simple_meta` rejects."""
    if token == "null":
        return None
    if token in ("true", "false"):
        return token == "true"
    if len(token) >= 2 and token[0] == token[-1] == "'":
        return token[1:-1]
    if _INT.fullmatch(token):
        return int(token)
    return token


def _simple_meta(document: str) -> dict[str, Any] | None:
    """The front matter ``document`` when it is exactly what the direct writer (:func:`_simple_document`)
    writes for some metadata — that metadata; else None (PyYAML reads it). Linear in its length, a few
    lines of Python a line: a real export's front matter of a hundred thousand tags is read in a
    moment, where PyYAML took seconds and hundreds of megabytes. Exact: the writer is held to PyYAML
    (its output loads back as the values it was given), and only a document the writer gives back
    byte for byte from the values read here is taken, so PyYAML would read those very values."""
    if not document.endswith("\n") or "\r" in document:
        return None
    meta: dict[str, Any] = {}
    items: list[Any] | None = None
    for line in document[:-1].split("\n"):
        if line.startswith("- "):
            if items is None:
                return None
            items.append(_simple_value(line[2:]))
            continue
        key, colon, rest = line.partition(": ") if ": " in line else line.rpartition(":")
        if not colon or not key:
            return None
        name = key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key
        if name in meta:
            return None
        if rest == "" and line.endswith(":"):
            items = meta[name] = []
        elif rest == "[]":
            meta[name], items = [], None
        else:
            meta[name], items = _simple_value(rest), None
    return meta if meta and _simple_document(meta) == document else None
