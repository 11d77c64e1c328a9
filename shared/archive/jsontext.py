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
"""

from __future__ import annotations

import json
from typing import Any

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
