"""The direct writer of common frontmatter writes exactly what PyYAML's SafeDumper writes (it only
exists because the dumper is most of a small export's catalog CPU), and it is the one used for a
typical post; anything it is not sure of goes to PyYAML."""

from __future__ import annotations

import random
from typing import Any

import pytest
import yaml

from shared.archive import frontmatter as fm

PIECES = ["a", "B", "z9", "_x", "1", "0", "12", "1e3", "0x1F", "0o17", "yes", "no", "y", "n", "on", "Off", "true",
          "NULL", "null", "~", "=", "<<", "-", "--", "---", "...", "..", ".", "./", "../m.jpg", ".5", "1.5", ".inf",
          ".NaN", "2024-05-01", "2024-05-01T12:00:00Z", "12:30", "1:2", "https://cdn.example/a b.jpg", "a:b", "a: b",
          "a #b", "#x", "a,b", "[x]", "é", "'q'", '"d"', " ", "", ":", "a.b", "+1", "-1", "~x", "inf", "NaN", "Yes",
          "0b101", "1_000", "1:30:00", "@x", "%x", "!x", "&x", "*x", "|x", ">x", "?x", "x\n", ",", ",x", "x,", "'",
          "it's", "?", "!", "(a)", "&", "a&b", "? x", "- x", "x?", "1,000", "1'2", "/", "/a", ".x"]
TYPICAL = {"title": "Quiet morning, again", "description": "It's a short note about the lake and the hills.",
           "slug": "quiet-morning-again", "tags": ["lake", "walks"], "status": "published",
           "featured_image": "../media/lake.jpg", "featured_image_original": "https://cdn.example/t/lake.jpg",
           "published_at": "2024-05-01T12:00:00Z", "created_at": "2024-05-01T12:00:00Z",
           "updated_at": "2024-05-02T08:00:00Z", "date": "2024-05-01T12:00:00Z", "lastmod": "2024-05-02T08:00:00Z",
           "draft": False, "display_order": 3, "description_2": None, "empty": []}


def _pyyaml(meta: dict[str, Any]) -> str:
    return yaml.dump(meta, Dumper=fm._Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=float("inf"))


def test_a_typical_post_takes_the_direct_writer_and_gets_pyyamls_bytes() -> None:
    direct = fm._simple_document(TYPICAL)
    assert direct is not None and direct == _pyyaml(TYPICAL)
    assert fm.render_markdown(TYPICAL, "body\n") == fm.OPEN + direct + fm.OPEN + "body\n"


def test_whatever_the_direct_writer_accepts_it_writes_as_pyyaml_does() -> None:
    rnd = random.Random(21)

    def text() -> str:
        return rnd.choice(["", " ", ":", ",", ".", " "]).join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 4)))

    def value() -> Any:
        r = rnd.random()
        if r < 0.55:
            return text()
        if r < 0.62:
            return rnd.choice([None, True, False, 0, -3, 42])
        if r < 0.85:
            return [text() for _ in range(rnd.randint(0, 3))]
        return rnd.choice(["", {"a": 1}, [[1]], [None, 1]])

    accepted = 0
    for _ in range(20_000):
        meta = {rnd.choice(["title", "slug", "tags", "a b", "1", "yes", "x:y", text()]): value()
                for _ in range(rnd.randint(0, 6))}
        direct = fm._simple_document(meta)
        if direct is not None:
            accepted += 1
            assert direct == _pyyaml(meta), meta
    assert accepted > 1000  # the comparison covered many documents, not a handful


def test_the_direct_resolver_lookup_answers_as_pyyamls_resolver() -> None:
    rnd = random.Random(5)
    texts = PIECES + [rnd.choice(["", " ", ":", ".", "-"]).join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 3)))
                      for _ in range(5_000)]
    for text in texts:
        expected = fm._RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == fm._STR_TAG
        assert fm._resolves_to_str(text) == expected, text


def test_text_that_is_not_a_plain_str_is_written_as_before() -> None:
    class Word(str):
        def __format__(self, spec: str) -> str:
            return "formatted"

    fm.render_markdown({"k": "x"}, "")  # a plain "x" in the cache must not stand for the subclass's text
    meta = {"title": Word("x"), "tags": ("a", "b"), "k": Word("x")}
    assert fm.render_markdown(meta, "") == "---\ntitle: formatted\ntags:\n- a\n- b\nk: formatted\n---\n"


# -- reading: the direct form without PyYAML -----------------------------------------------------------
def _load(document: str) -> Any:
    return yaml.load(document, Loader=yaml.SafeLoader)


def test_front_matter_in_the_direct_form_reads_as_pyyaml_reads_it_and_anything_else_goes_to_pyyaml() -> None:
    """The direct reader takes a document only when the direct writer gives it back byte for byte,
    so it reads what PyYAML reads: held here over the writer's own documents and over near misses
    (a number, a flag, a date PyYAML resolves, a key twice, a list after a scalar) written by hand."""
    rnd = random.Random(34)
    documents = []
    for _ in range(5_000):
        meta = {rnd.choice(["title", "slug", "tags", "a b", "1", "yes", "x:y", rnd.choice(PIECES)]):
                rnd.choice([rnd.choice(PIECES), [rnd.choice(PIECES) for _ in range(rnd.randint(0, 3))],
                            None, True, 7, -2]) for _ in range(rnd.randint(1, 5))}
        if (direct := fm._simple_document(meta)) is not None:
            documents.append(direct)
    documents += ["n: 012\n", "n: 0x1F\n", "n: 1_000\n", "b: yes\n", "b: Yes\n", "d: 2024-05-01\n", "k: ~\n",
                  "t: a\nt: b\n", "t: a\n- b\n", "t:\n- 1\n- '1'\n- null\n- ''\n", "'yes': 1\n", "k: '0x1F'\n",
                  "k: -0\n", "k: +1\n", "k: 1.5\n", "k: .inf\n", "tags: []\n", "tags:\n", "t: a\r\n", ": x\n", "k: 'a'b'\n"]
    taken = 0
    for document in documents:
        try:
            expected = _load(document)
        except yaml.YAMLError:  # not YAML: refused either way
            with pytest.raises(ValueError):
                fm.parse_markdown(fm.OPEN + document + fm.OPEN + "body")
            assert fm._simple_meta(document) is None
            continue
        if not isinstance(expected, dict):
            continue  # not a mapping: refused (another test's)
        meta, body = fm.parse_markdown(fm.OPEN + document + fm.OPEN + "body")
        assert (meta, body) == (expected, "body"), document
        taken += fm._simple_meta(document) is not None
    assert taken > 1000  # most went the direct way, not PyYAML's


def test_a_real_export_with_a_hundred_thousand_tags_verifies_without_pyyaml(monkeypatch: Any) -> None:
    """An export writes one line a tag: 262,144 plain tags (1 MiB of front matter) are read directly,
    where PyYAML took 7 s and 200 MB."""
    tags = [f"t{i}" for i in range(1 << 18)]
    text = fm.render_markdown({"title": "Many", "tags": tags}, "body\n")

    def no_pyyaml(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("PyYAML read the direct form")

    monkeypatch.setattr(fm.yaml, "load", no_pyyaml)
    meta, body = fm.parse_markdown(text)
    assert meta == {"title": "Many", "tags": tags} and body == "body\n"


def test_a_key_pyyaml_writes_as_an_explicit_key_is_not_written_or_read_directly() -> None:
    """PyYAML's emitter writes a key of 123 characters or more as `? key` / `: value`, and its loader
    reads a plain `key: value` only up to 1,024 characters: the direct writer wrote any length, so its
    bytes were not PyYAML's there and a key over 1,024 made front matter no reader takes — and the
    direct reader took it back (a document verify refused before it, found by the review helper)."""
    for n in (122, 123, 1025):
        meta = {"k" * n: "v", "title": "Hello"}
        text = fm.render_markdown(meta, "body")
        assert text == fm.OPEN + _pyyaml(meta) + fm.OPEN + "body"
        assert fm.parse_markdown(text) == (meta, "body")
    long_plain = "k" * 1025 + ": v\ntitle: Hello\n"
    assert fm._simple_meta(long_plain) is None
    with pytest.raises(ValueError, match="not valid YAML"):
        fm.parse_markdown(fm.OPEN + long_plain + fm.OPEN + "body")
