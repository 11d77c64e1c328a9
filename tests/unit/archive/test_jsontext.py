"""The archive's pretty JSON is json.dumps(indent=2, ensure_ascii=False) byte for byte, on either path."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.archive import jsontext

TEXT = st.text(st.characters(codec="utf-8"))  # control characters, quotes, backslashes, U+2028, astral
SCALARS = st.none() | st.booleans() | st.integers() | TEXT
VALUES = st.recursive(SCALARS | st.floats(allow_nan=False, allow_infinity=False),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                      max_leaves=30)


def standard(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


@settings(max_examples=300)
@given(VALUES)
def test_pretty_is_json_dumps_indent_2(doc: Any) -> None:
    assert jsontext.dumps(doc) == standard(doc)
    assert jsontext.pretty(doc) == (standard(doc) + "\n").encode()


@given(st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=30))
def test_documents_without_floats_take_the_compiled_path(doc: Any) -> None:
    assert jsontext._compiled_writes_the_same(doc)
    assert jsontext.pretty(doc) == (standard(doc) + "\n").encode()


def test_floats_and_other_keys_take_the_standard_path() -> None:
    assert not jsontext._compiled_writes_the_same({"a": [1, 1e-07]})
    assert not jsontext._compiled_writes_the_same({1: "a"})
    assert jsontext.pretty({"a": [1e-07], "b": {}}) == b'{\n  "a": [\n    1e-07\n  ],\n  "b": {}\n}\n'


def test_a_lone_surrogate_is_refused_on_either_path() -> None:
    import pytest

    for doc in ({"a": "x\udc80"}, {"a": "x\udc80", "f": 0.5}):
        with pytest.raises(ValueError):
            jsontext.pretty(doc)


def test_only_exact_json_types_anywhere_take_the_compiled_path() -> None:
    class Text(str):
        pass

    deep = {"a": [{"b": ({"c": [None, True, 3, "x"]},)}]}
    assert jsontext._compiled_writes_the_same(deep) and jsontext._compiled_writes_the_same("top")
    for odd in (Text("s"), 1.5, b"x", {1}, object()):
        assert not jsontext._compiled_writes_the_same({"a": [{"b": ({"c": [None, odd]},)}]}), odd
        assert not jsontext._compiled_writes_the_same(odd), odd
    assert not jsontext._compiled_writes_the_same([{"a": 1}, {Text("k"): 1}])


# ---- documents written in pieces (index.json and feed.json of a big tenant) ------------------------

def in_pieces(doc: dict[str, Any], as_items: list[bool]) -> bytes:
    """``doc`` through :func:`jsontext.pretty_pieces`, each list value chosen by ``as_items`` written
    as :class:`jsontext.Items` (its entries appended one by one), the other values as they are."""
    chosen = iter(as_items)
    pieces: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, list) and next(chosen, True):
            items = jsontext.Items()
            for entry in value:
                items.append(entry)
            value = items
        pieces[key] = value
    return b"".join(jsontext.pretty_pieces(pieces))


ENTRIES = st.lists(VALUES, max_size=5)  # empty lists too; floats send an entry down the standard path
DOCS = st.dictionaries(TEXT, ENTRIES | VALUES, max_size=5)


@settings(max_examples=300)
@given(DOCS, st.lists(st.booleans()))
def test_a_document_written_in_pieces_is_pretty_byte_for_byte(doc: dict[str, Any], as_items: list[bool]) -> None:
    assert in_pieces(doc, as_items) == jsontext.pretty(doc) == (standard(doc) + "\n").encode()


@given(VALUES, st.integers(0, 4))
def test_a_value_indented_to_its_depth_is_how_pretty_writes_it_there(value: Any, depth: int) -> None:
    doc: Any = value
    for _ in range(depth):
        doc = [doc]
    opened = "".join("[\n" + "  " * (d + 1) for d in range(depth))
    closed = "".join("\n" + "  " * d + "]" for d in reversed(range(depth)))
    assert opened + jsontext.indented(value, depth).decode() + closed == standard(doc)


def test_the_catalogs_documents_written_in_pieces_are_the_whole_documents_bytes() -> None:
    entry = {"id": "p1", "title": "Ünïcödé \u2028 \"quoted\"\n", "tags": [], "meta": {}, "n": 1.5, "links": [{"u": "x"}]}
    doc = {"format": "grove-export-index", "version": 1, "posts": [entry, {**entry, "id": None}], "pages": [],
           "media": [{"size": 3}]}
    assert in_pieces(doc, []) == jsontext.pretty(doc)
    assert in_pieces({}, []) == jsontext.pretty({}) == b"{}\n"


def test_an_entry_that_cannot_be_written_leaves_the_items_as_they_were() -> None:
    items = jsontext.Items()
    items.append({"a": 1})
    import pytest

    with pytest.raises(ValueError):
        items.append({"a": "x\udc80"})
    assert len(items) == 1
    assert b"".join(jsontext.pretty_pieces({"l": items})) == jsontext.pretty({"l": [{"a": 1}]})
