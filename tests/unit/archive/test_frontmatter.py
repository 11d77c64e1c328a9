from __future__ import annotations

import html
import subprocess
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.archive.frontmatter import parse_markdown, render_markdown
from tests.unit.archive.tools import require_tool

TRICKY = [
    "yes", "no", "on", "off", "y", "n", "true", "False", "null", "Null", "~", "", "123", "-1", "0o17", "0x1F",
    "1e3", "1_000", ".5", "+.inf", ".nan", "2024-05-01", "2024-05-01T12:00:00Z", "---", "...", ": ", "- x",
    "? x", "#hash", "a #b", "&anchor", "*alias", "!tag", "%", "@", "`", "|", ">", "'", '"', "{}", "[]", "<<",
    "=", " lead", "trail ", "\ttab", "multi\nline", "trailing space \nnext", "cr\r\nlf", "\r", "nel\x85",
    "ls\u2028ps\u2029", "bom\ufeff", "del\x7f", "nul\x00", "emoji 🎉", "\U0010ffff", "é e\u0301", "a" * 300,
]


def test_render_puts_yaml_between_dashes_then_the_body() -> None:
    text = render_markdown({"title": "Hello", "tags": ["a", "b"], "draft": False, "image": None}, "Body\n")
    assert text == "---\ntitle: Hello\ntags:\n- a\n- b\ndraft: false\nimage: null\n---\nBody\n"


def test_datetimes_become_utc_iso_strings_with_z() -> None:
    paris = timezone(timedelta(hours=2))
    meta = {"published": datetime(2024, 5, 1, 14, 0, tzinfo=paris), "naive": datetime(2024, 1, 2, 3, 4, 5),
            "day": date(2024, 5, 1)}
    parsed, _ = parse_markdown(render_markdown(meta, ""))
    assert parsed == {
        "published": "2024-05-01T12:00:00Z", "naive": "2024-01-02T03:04:05Z", "day": "2024-05-01",
    }


@pytest.mark.parametrize("value", TRICKY)
def test_tricky_strings_round_trip_as_values_and_keys(value: str) -> None:
    meta = {value: value, "list": [value, value], "nested": {value: [value]}}
    assert parse_markdown(render_markdown(meta, value)) == (meta, value)


def test_strings_other_yaml_readers_would_retype_are_quoted() -> None:
    text = render_markdown({"a": "1e3", "b": "y", "c": "0o17", "d": "plain words"}, "")
    assert "a: '1e3'" in text and "b: 'y'" in text and "c: '0o17'" in text and "d: plain words" in text


def test_a_body_containing_frontmatter_fences_survives() -> None:
    body = "---\nnot: meta\n---\n\n---\n"
    assert parse_markdown(render_markdown({"title": "---"}, body)) == ({"title": "---"}, body)


def test_empty_meta_still_renders_a_parseable_block() -> None:
    assert parse_markdown(render_markdown({}, "x")) == ({}, "x")


def test_the_yaml_is_what_a_yaml_library_emits_and_reads() -> None:
    text = render_markdown({"title": "Hi: there", "n": 3}, "")
    assert yaml.safe_load(text.split("---\n")[1]) == {"title": "Hi: there", "n": 3}


@pytest.mark.parametrize("bad", [{"f": 1.5}, {"b": b"x"}, {"s": {1, 2}}, {1: "x"}])
def test_unsupported_types_are_refused(bad: dict) -> None:
    with pytest.raises(TypeError):
        render_markdown(bad, "")


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(ValueError):
        render_markdown({"t": "\ud800"}, "")
    with pytest.raises(ValueError):
        render_markdown({}, "\udfff")


def test_text_without_frontmatter_is_all_body() -> None:
    assert parse_markdown("# Title\n") == ({}, "# Title\n")
    with pytest.raises(ValueError):
        parse_markdown("---\ntitle: x\n")


def test_rendering_is_deterministic_and_keeps_key_order() -> None:
    meta = {"z": 1, "a": 2, "m": [3]}
    assert render_markdown(meta, "b") == render_markdown(dict(meta), "b")
    assert list(parse_markdown(render_markdown(meta, ""))[0]) == ["z", "a", "m"]


values = st.one_of(
    st.text(), st.lists(st.text(), max_size=5), st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(), st.none(), st.sampled_from(TRICKY),
)


@settings(max_examples=300)
@given(st.dictionaries(st.one_of(st.text(), st.sampled_from(TRICKY)), values, max_size=8),
       st.one_of(st.text(), st.sampled_from(["---\n", "a\n---\nb", "\n---\n---\n"])))
def test_any_metadata_and_body_round_trip_exactly(meta: dict, body: str) -> None:
    assert parse_markdown(render_markdown(meta, body)) == (meta, body)


@given(st.datetimes(timezones=st.just(UTC)))
def test_any_utc_datetime_reads_back_as_its_iso_string(moment: datetime) -> None:
    meta, _ = parse_markdown(render_markdown({"at": moment}, ""))
    assert datetime.fromisoformat(meta["at"].replace("Z", "+00:00")) == moment


GO_YAML_NUMBERS = ["0X1F", "-0X1F", "+0x1F", "0O17", "-0o17", "+0o17", "0o1_7", "0B11", "-0b1", "1e1_0", "1_2.5"]


@pytest.mark.parametrize("value", GO_YAML_NUMBERS)
def test_strings_go_yaml_reads_as_numbers_are_quoted(value: str) -> None:
    # Hugo's reader (go-yaml) takes a plain scalar starting with a digit or sign for a number when Go's
    # strconv reads it, underscores removed: a post titled `0X1F` was "31" in Hugo, its tag the integer 31.
    text = render_markdown({"title": value, "tags": [value]}, "")
    assert f"title: '{value}'\n" in text and f"- '{value}'\n" in text
    assert parse_markdown(text)[0] == {"title": value, "tags": [value]}


def test_hugo_reads_such_titles_and_tags_as_the_text_they_are(tmp_path: Path) -> None:
    hugo = require_tool("hugo", "hugo")
    subprocess.run([hugo, "new", "site", str(tmp_path)], check=True, capture_output=True, timeout=60)
    (tmp_path / "layouts" / "_default").mkdir(parents=True, exist_ok=True)
    (tmp_path / "layouts" / "_default" / "single.html").write_text(
        '{{ printf "%T %v" .Params.title .Params.title }}|{{ range .Params.tags }}{{ printf "%T %v" . . }}{{ end }}\n')
    (tmp_path / "layouts" / "_default" / "list.html").write_text("\n")
    (tmp_path / "content" / "posts").mkdir(parents=True, exist_ok=True)
    for i, value in enumerate(GO_YAML_NUMBERS):
        (tmp_path / "content" / "posts" / f"p{i}.md").write_text(render_markdown({"title": value, "tags": [value]}, ""))
    subprocess.run([hugo, "-s", str(tmp_path)], check=True, capture_output=True, timeout=120)
    shown = [html.unescape((tmp_path / "public" / "posts" / f"p{i}" / "index.html").read_text().strip())
             for i in range(len(GO_YAML_NUMBERS))]
    assert shown == [f"string {v}|string {v}" for v in GO_YAML_NUMBERS]


def test_the_most_values_an_export_writes_are_read_and_one_more_is_refused() -> None:
    """An export writes at most TAGS_LIMIT tags in each of tags and tags_original (words PyYAML reads,
    not the direct writer's), beside every key: that front matter reads back; one more value is refused
    (layout.FRONT_MATTER_NODES bounds what PyYAML builds: 4 MiB of ``- é`` lines took 52 s and 700 MB)."""
    from shared.archive.layout import FRONT_MATTER_KEYS, FRONT_MATTER_NODES, POSTS, TAGS_LIMIT

    tags = [f"é{i}" for i in range(TAGS_LIMIT)]
    meta: dict[str, object] = {key: "x" for key in sorted(FRONT_MATTER_KEYS[POSTS])}
    meta |= {"tags": tags, "tags_original": tags,
             "unreadable": {"published_at": 1, "created_at": 2, "updated_at": 3, "tags": "é"}}
    text = render_markdown(meta, "body")
    assert parse_markdown(text) == (meta, "body")
    spare = FRONT_MATTER_NODES - (1 + 2 * len(meta) + 2 * TAGS_LIMIT + 2 * 4)  # the mapping, keys, values, items
    assert spare >= 0
    bigger = render_markdown(meta | {"tags": tags + ["é"] * (spare + 1)}, "body")
    with pytest.raises(ValueError, match=f"more than {FRONT_MATTER_NODES:,} values"):
        parse_markdown(bigger)
