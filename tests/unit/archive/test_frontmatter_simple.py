"""The direct writer of common frontmatter writes exactly what PyYAML's SafeDumper writes (it only
exists because the dumper is most of a small export's catalog CPU), and it is the one used for a
typical post; anything it is not sure of goes to PyYAML."""

from __future__ import annotations

import random
from typing import Any

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
