"""The archive's JSON documents as people read them: ``json.dumps(doc, indent=2, ensure_ascii=False)``,
byte for byte, at the speed of a compiled serializer.

Why: with ``indent`` set, the standard library encodes in pure Python (its C encoder is used only
for compact output), and index.json, feed.json and the manifest's entries were about a tenth of the
catalog's and a few per cent of the assembler's CPU per small export (py-spy, GIL samples).
pydantic-core's ``to_json`` (already a dependency) writes the same text for strings, integers,
booleans, null, lists and objects with string keys; not for floats (``1e-07`` against ``1e-7``).
So a document holding anything else takes the standard library's path (which also keeps its
errors), and a Hypothesis test holds both paths equal over arbitrary JSON values. One difference
stays: a string with a lone surrogate makes ``to_json`` raise (``PydanticSerializationError``, a
``ValueError``) where ``json.dumps`` returns it and the UTF-8 encoding after it raises
(``UnicodeEncodeError``, a ``ValueError`` too); no caller catches either.

A big document (a tenant's index.json and feed.json) is written in pieces: :func:`pretty_pieces`
writes a dict whose long lists are :class:`Items`, each item encoded on its own as it comes
(:func:`indented`), so no list is ever held as values; the bytes are :func:`pretty`'s (a Hypothesis
test holds them equal).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from pydantic_core import to_json

_SCALARS = frozenset({str, int, bool, type(None)})  # exact types: a subclass json.dumps may format its own way
_CONTAINERS = frozenset({dict, list, tuple})


def _compiled_writes_the_same(doc: Any) -> bool:
    """Whether ``doc`` holds nothing but dicts with str keys, lists, tuples and :data:`_SCALARS`.
    A container's scalars are checked where they are met, only containers are stacked: an index.json
    of a small export holds some 700 scalars, each a stack round trip before."""
    if type(doc) in _SCALARS:
        return True
    if type(doc) not in _CONTAINERS:
        return False
    stack = [doc]
    while stack:
        value = stack.pop()
        if type(value) is dict:
            for key in value:
                if type(key) is not str:
                    return False
            value = value.values()
        for member in value:
            kind = type(member)
            if kind not in _SCALARS:
                if kind not in _CONTAINERS:
                    return False
                stack.append(member)
    return True


def dumps(doc: Any) -> str:
    """``json.dumps(doc, indent=2, ensure_ascii=False)``."""
    if _compiled_writes_the_same(doc):
        return to_json(doc, indent=2).decode()
    return json.dumps(doc, indent=2, ensure_ascii=False)


def pretty(doc: Any) -> bytes:
    """The document as a file: :func:`dumps` with a final newline, in UTF-8."""
    if _compiled_writes_the_same(doc):
        return to_json(doc, indent=2) + b"\n"
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def indented(value: Any, depth: int) -> bytes:
    """``value`` as :func:`pretty` writes it ``depth`` containers deep in a document, without the
    indent before its first line (its container's): :func:`dumps` in UTF-8 with every line break
    followed by ``depth`` more steps of two spaces. Exact, since JSON text breaks lines only between
    tokens (a line break in a string is written ``\\n``), and in UTF-8 no byte of another character
    is a line feed. Each value takes its own path (compiled or standard): both write the same text."""
    data = to_json(value, indent=2) if _compiled_writes_the_same(value) else \
        json.dumps(value, indent=2, ensure_ascii=False).encode()
    return data.replace(b"\n", b"\n" + b"  " * depth) if depth else data


class Sink(Protocol):
    """Where :class:`Items` keeps its text: written in order, then read back once, in order."""

    def write(self, data: bytes, /) -> object: ...
    def chunks(self) -> Iterable[bytes]: ...


class _Memory:
    def __init__(self) -> None:
        self._buffer = io.BytesIO()

    def write(self, data: bytes, /) -> object:
        return self._buffer.write(data)

    def chunks(self) -> Iterable[bytes]:
        return (self._buffer.getvalue(),)


ITEM_DEPTH = 2  # an item of a list that is a value of the document's top-level dict
_ITEM_SEPARATOR = b",\n" + b"  " * ITEM_DEPTH


class Items:
    """A list of a :func:`pretty_pieces` document, written item by item: each value is encoded when
    appended (:func:`indented`) and only its text is kept, in ``sink`` (in memory by default)."""

    def __init__(self, sink: Sink | None = None) -> None:
        self.sink: Sink = sink if sink is not None else _Memory()
        self.count = 0

    def append(self, value: Any) -> None:
        text = indented(value, ITEM_DEPTH)  # first: a value that cannot be written leaves no separator
        if self.count:
            self.sink.write(_ITEM_SEPARATOR)
        self.sink.write(text)
        self.count += 1

    def __len__(self) -> int:
        return self.count


def pretty_pieces(doc: dict[str, Any]) -> Iterator[bytes]:
    """:func:`pretty` of ``doc`` (a dict with str keys), in pieces: a value that is :class:`Items` is
    written from its items' text, any other value as :func:`pretty` writes it there."""
    if not doc:
        yield b"{}\n"
        return
    step = b"  "
    for i, (key, value) in enumerate(doc.items()):
        yield (b",\n" if i else b"{\n") + step + indented(key, 1) + b": "
        if not isinstance(value, Items):
            yield indented(value, 1)
        elif not value.count:
            yield b"[]"
        else:
            yield b"[\n" + step * ITEM_DEPTH
            yield from value.sink.chunks()
            yield b"\n" + step + b"]"
    yield b"\n}\n"
