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
